"""Who may write: whoever presents the stack's write credential.

POST and DELETE carry `Authorization: Bearer <credential>` (RFC 6750); reads stay
anonymous. The credential is a file, the mounted Secret, compared in constant time with
what a request presents. The file is looked at again whenever it changes, so a rotated
Secret takes effect without a restart: the kubelet replaces a Secret volume's files
atomically (a new file behind the same path), which one stat per write notices.

The credential is never logged and never part of an answer, an exception or a repr.
"""

from __future__ import annotations

import enum
import hmac
import os
import threading
from pathlib import Path
from typing import Optional, Sequence, Union


class CredentialUnreadable(Exception):
    """The credential file cannot be read or holds nothing: no write can be let through.

    The message names the reason, never the content.
    """


class Presented(enum.Enum):
    NOTHING = "nothing"
    """No `Authorization: Bearer` header."""
    WRONG = "wrong"
    """A credential that is not the current one (or several Authorization headers)."""
    RIGHT = "right"


#: The file's identity: a replaced file has another inode, a rewritten one another
#: modification time or size.
_Version = tuple[int, int, int, int]


class WriteCredential:
    """The mounted credential, read at the first write and again after it changes."""

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._version: Optional[_Version] = None
        self._value = b""

    def __repr__(self) -> str:
        return f"WriteCredential({str(self.path)!r})"

    def check(self, authorization: Sequence[str]) -> Presented:
        """What the request's Authorization header values present."""
        expected = self._current()
        if not authorization:
            return Presented.NOTHING
        if len(authorization) > 1:
            return Presented.WRONG  # which one would count is anyone's guess
        scheme, _, token = authorization[0].strip().partition(" ")
        if scheme.lower() != "bearer":
            return Presented.NOTHING
        # Header values arrive decoded as ISO-8859-1: encoding them back is lossless.
        presented = token.strip().encode("latin-1")
        return Presented.RIGHT if hmac.compare_digest(presented, expected) else Presented.WRONG

    def _current(self) -> bytes:
        try:
            status = os.stat(self.path)
            version = (status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size)
            with self._lock:
                if version != self._version:
                    self._value, self._version = self._read(), version
                return self._value
        except OSError as exc:
            # The OS error names the path and the reason, never the content.
            raise CredentialUnreadable(f"cannot read the write credential file: {exc.strerror}") from None

    def _read(self) -> bytes:
        value = self.path.read_bytes()
        # One trailing newline, as `echo` or an editor leaves it; nothing more.
        value = value[:-2] if value.endswith(b"\r\n") else value[:-1] if value.endswith(b"\n") else value
        if not value:
            # An empty credential would let an empty `Bearer` through.
            raise CredentialUnreadable("the write credential file is empty")
        return value
