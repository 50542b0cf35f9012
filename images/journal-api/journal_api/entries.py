"""An entry as the store keeps it: one JSON member of the sorted set.

Nothing here imports redis: the HTTP layer (server.py) measures an entry's stored form
with the very encoding the store (store.py) writes, before anything reaches Redis.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

#: An entry as stored and answered: {"id": int, "text": str, "created": str}.
Entry = dict[str, Any]

#: Longest entry, in bytes of UTF-8 text.
MAX_TEXT_BYTES = 4096
#: Most bytes an entry's member may take in Redis. Non-ASCII text is stored as is, and
#: only `"`, `\` and the characters below U+0020 are escaped: tabs and line breaks in
#: two bytes, the other control characters in six (\u0001). So any text within
#: MAX_TEXT_BYTES without those other control characters fits (twice its size at the
#: very most, plus 69 bytes of id and date), while one stored up to six times over (24 KiB
#: for 4096 control characters) is refused.
MAX_STORED_BYTES = 9 * 1024
#: The largest id an entry is measured with: the id is only known once Redis hands it
#: out, and ids stay far below 2**53 (the sorted set's exact range), 15 digits at most.
LARGEST_ID = 10**15 - 1


def utc_now() -> str:
    """RFC 3339 UTC to the millisecond: always 24 characters."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def member(entry: Entry) -> str:
    """The JSON the sorted set holds for `entry`: compact, keys sorted, and non-ASCII
    characters as themselves rather than \\u escapes."""
    return json.dumps(entry, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def stored_bytes(text: str) -> int:
    """The bytes an entry of `text` takes as stored, with the longest id it could get."""
    return len(member({"id": LARGEST_ID, "text": text, "created": utc_now()}).encode("utf-8"))
