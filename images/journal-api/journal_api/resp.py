"""A small Redis client speaking RESP2, with a connection pool per server.

Failures come in two kinds, and the API answers both with 503:
  - Unavailable: the server could not be reached or did not answer in time; the
    connection is dropped.
  - ReplyError: the server answered with an error (READONLY, OOM, WRONGPASS...);
    the connection stays usable.
The password is only ever written to the socket: no exception, repr or log line
built here contains it.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from pathlib import Path
from typing import BinaryIO, Optional, Union

Reply = Union[None, int, bytes, str, list["Reply"], "ReplyError"]
# What a command answers when it succeeds: an error reply is raised instead.
Value = Union[None, int, bytes, str, list[Reply]]
# socket.getaddrinfo's entries: family, type, protocol, canonical name, address.
AddressInfo = tuple[
    socket.AddressFamily, socket.SocketKind, int, str, Union[tuple[str, int], tuple[str, int, int, int], tuple[int, bytes]]
]

# A reply line longer than this is not Redis talking.
MAX_LINE = 64 * 1024
# Entries are a few KiB; anything this large is a protocol error, not data.
MAX_BULK = 64 * 2**20
MAX_IDLE_CONNECTIONS = 8


class RedisFailure(Exception):
    """Base of everything this module raises."""


class Unavailable(RedisFailure):
    """The server is down, unreachable, too slow or spoke something other than RESP2."""


class TimedOut(Unavailable):
    """The server did not connect or answer within the timeout."""


class ReplyError(RedisFailure):
    """An error reply, e.g. `READONLY You can't write against a read only replica.`"""

    @property
    def kind(self) -> str:
        """The error class Redis puts first: READONLY, OOM, WRONGPASS, ERR..."""
        return str(self).split(" ", 1)[0] or "ERR"


class ProtocolError(Unavailable):
    """The bytes read are not a RESP2 reply."""


def encode_command(*args: Union[bytes, str, int]) -> bytes:
    """A command as RESP2 sends it: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode("utf-8")
        elif isinstance(arg, int):
            arg = b"%d" % arg
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def _line(stream: BinaryIO) -> bytes:
    line = stream.readline(MAX_LINE)
    if not line:
        raise Unavailable("connection closed by the server")
    if not line.endswith(b"\r\n"):
        raise ProtocolError("reply line not terminated by CRLF")
    return line[:-2]


def _length(text: bytes) -> int:
    try:
        return int(text)
    except ValueError:
        raise ProtocolError(f"bad length {text[:20]!r}") from None


def read_reply(stream: BinaryIO) -> Reply:
    """One reply from a buffered binary stream.

    Error replies are returned (not raised), so that an error nested in an array
    (EXEC's) does not abandon the rest of the reply on the stream.
    """
    line = _line(stream)
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode("utf-8", "replace")
    if kind == b"-":
        return ReplyError(rest.decode("utf-8", "replace"))
    if kind == b":":
        return _length(rest)
    if kind == b"$":
        size = _length(rest)
        if size == -1:
            return None
        if not 0 <= size <= MAX_BULK:
            raise ProtocolError(f"bulk string of length {size}")
        data = stream.read(size + 2)
        if len(data) != size + 2:
            raise Unavailable("connection closed in the middle of a reply")
        if data[-2:] != b"\r\n":
            raise ProtocolError("bulk string not terminated by CRLF")
        return data[:-2]
    if kind == b"*":
        count = _length(rest)
        if count == -1:
            return None
        if count < 0:
            raise ProtocolError(f"array of length {count}")
        return [read_reply(stream) for _ in range(count)]
    raise ProtocolError(f"unknown reply type {kind!r}")


class PasswordFile:
    """The mounted Secret, read once and again whenever Redis refuses what we hold.

    The kubelet updates the file when the Secret changes, so a refused password is
    the signal to look at it again.
    """

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cached: Optional[bytes] = None

    def __repr__(self) -> str:
        return f"PasswordFile({str(self.path)!r})"

    def get(self, reread: bool = False) -> bytes:
        with self._lock:
            if self._cached is None or reread:
                self._cached = self._read()
            return self._cached

    def _read(self) -> bytes:
        try:
            value = self.path.read_bytes()
        except OSError as exc:
            # The OS error names the path and the reason, never the content.
            raise Unavailable(f"cannot read the Redis password file: {exc.strerror}") from None
        # One trailing newline, as `echo` or an editor leaves it; nothing more.
        if value.endswith(b"\r\n"):
            return value[:-2]
        if value.endswith(b"\n"):
            return value[:-1]
        return value


def _resolve(host: str, port: int, timeout: float) -> list[AddressInfo]:
    """getaddrinfo, within `timeout`.

    getaddrinfo ignores socket timeouts, and with the cluster DNS down it can stall
    for tens of seconds: a name is looked up in a daemon thread, abandoned on timeout.
    """
    # What the lookup found or the error it met: nothing yet while it still runs.
    addresses: list[list[AddressInfo]] = []
    errors: list[OSError] = []

    def lookup() -> None:
        try:
            addresses.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            errors.append(exc)

    try:
        ipaddress.ip_address(host)
        lookup()  # an address: nothing to wait for
    except ValueError:
        worker = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
        worker.start()
        worker.join(timeout)
    if addresses:
        return addresses[0]
    if errors:
        exc = errors[0]
        raise Unavailable(f"cannot resolve {host}: {getattr(exc, 'strerror', None) or exc}")
    raise TimedOut(f"timed out resolving {host}")


class Connection:
    """One authenticated socket to one server."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.where = f"{host}:{port}"
        error: Optional[OSError] = None
        for family, kind, proto, _name, address in _resolve(host, port, timeout):
            sock = socket.socket(family, kind, proto)
            # The timeout stays on the socket: every read is bounded, so a server
            # that accepts and never answers costs one timeout, not a hung request.
            sock.settimeout(timeout)
            try:
                sock.connect(address)
                break
            except OSError as exc:
                sock.close()
                error = exc
        else:
            if isinstance(error, socket.timeout):
                raise TimedOut(f"timed out connecting to {self.where}")
            raise Unavailable(f"cannot connect to {self.where}: "
                              f"{getattr(error, 'strerror', None) or error or 'no address'}")
        self.sock = sock
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stream = self.sock.makefile("rb")

    def call(self, *args: Union[bytes, str, int]) -> Reply:
        """Send one command and return its reply; error replies are returned, not raised."""
        try:
            self.sock.sendall(encode_command(*args))
            return read_reply(self.stream)
        except socket.timeout:
            self.close()
            raise TimedOut(f"{self.where} did not answer in time") from None
        except Unavailable:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise Unavailable(f"connection to {self.where} failed: {exc.strerror or exc}") from None

    def authenticate(self, password: PasswordFile) -> None:
        secret = password.get()
        if not secret:
            return  # an empty file: a server without a password
        reply = self.call(b"AUTH", secret)
        if isinstance(reply, ReplyError):
            # Perhaps the Secret was rotated since we read it.
            fresh = password.get(reread=True)
            if fresh and fresh != secret:
                reply = self.call(b"AUTH", fresh)
        if isinstance(reply, ReplyError):
            self.close()
            # Redis's own message (WRONGPASS invalid username-password pair...)
            # never echoes the password.
            raise reply

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            self.sock.close()


class Pool:
    """Reusable connections to one server, shared by the request threads."""

    def __init__(self, host: str, port: int, password: PasswordFile, timeout: float = 2.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.password = password
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Pool({self.host}:{self.port})"

    def _fresh(self) -> Connection:
        conn = Connection(self.host, self.port, self.timeout)
        try:
            conn.authenticate(self.password)
        except BaseException:
            conn.close()
            raise
        return conn

    def execute(self, *args: Union[bytes, str, int]) -> Value:
        """Run one command; raise ReplyError for an error reply, Unavailable when unreachable."""
        with self._lock:
            idle = self._idle.pop() if self._idle else None
        conn: Optional[Connection] = None
        reply: Reply = None
        if idle is not None:
            try:
                reply = idle.call(*args)
                conn = idle
            except TimedOut:
                # The server is slow, not gone: waiting twice would double the delay.
                raise
            except Unavailable:
                # An idle connection may have been closed by a restarted server:
                # retry once on a new one. (Had the lost command run after all, the
                # retry costs an unused id or a 404, never a duplicate entry.)
                pass
        if conn is None:
            conn = self._fresh()
            reply = conn.call(*args)
        with self._lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append(conn)
                conn = None
        if conn is not None:
            conn.close()
        if isinstance(reply, ReplyError):
            raise reply
        return reply
