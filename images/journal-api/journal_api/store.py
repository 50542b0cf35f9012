"""The journal in Redis.

One sorted set, `journal:entries`, holds every entry as a JSON member
`{"created", "id", "text"}` scored by its id, and `journal:next-id` is the counter
INCR hands ids out from. So:
  - listing the newest N is one ZREVRANGE, on a replica;
  - deleting by id is one ZREMRANGEBYSCORE id id (O(log n)), whose count says
    whether the id existed;
  - each read or delete is a single command, atomic without MULTI or Lua.
An id is taken even if the ZADD after it fails: ids have gaps, never duplicates.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Optional

from .resp import Pool, ProtocolError, Reply, Value

ENTRIES_KEY = "journal:entries"
NEXT_ID_KEY = "journal:next-id"


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Entry = dict[str, object]


def _decode(member: Reply) -> Optional[Entry]:
    """An entry from its stored member; None for anything this program did not write."""
    if not isinstance(member, (bytes, str)):
        return None
    try:
        entry = json.loads(member)
    except ValueError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
        return None
    return {"id": entry["id"], "text": entry.get("text"), "created": entry.get("created")}


def _integer(reply: Value) -> int:
    if not isinstance(reply, int):
        raise ProtocolError(f"an integer reply expected, not {type(reply).__name__}")
    return reply


def _members(reply: Value) -> list[Reply]:
    """The members of an array reply; none for a nil one."""
    if reply is None:
        return []
    if not isinstance(reply, list):
        raise ProtocolError(f"an array reply expected, not {type(reply).__name__}")
    return reply


class Journal:
    def __init__(self, writer: Pool, reader: Pool) -> None:
        self.writer = writer
        self.reader = reader

    def add(self, text: str) -> Entry:
        entry_id = _integer(self.writer.execute("INCR", NEXT_ID_KEY))
        entry = {"id": entry_id, "text": text, "created": _utc_now()}
        member = json.dumps(entry, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        self.writer.execute("ZADD", ENTRIES_KEY, entry_id, member)
        return entry

    def latest(self, count: int) -> list[Entry]:
        members = _members(self.reader.execute("ZREVRANGE", ENTRIES_KEY, 0, count - 1))
        return [entry for entry in map(_decode, members) if entry is not None]

    def get(self, entry_id: int) -> Optional[Entry]:
        members = _members(self.reader.execute("ZRANGEBYSCORE", ENTRIES_KEY, entry_id, entry_id))
        entries = [entry for entry in map(_decode, members) if entry is not None]
        return entries[0] if entries else None

    def delete(self, entry_id: int) -> bool:
        return _integer(self.writer.execute("ZREMRANGEBYSCORE", ENTRIES_KEY, entry_id, entry_id)) > 0
