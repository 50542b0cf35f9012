"""The journal in Redis.

One sorted set, `journal:entries`, holds every entry as a JSON member
`{"created", "id", "text"}` scored by its id, and `journal:next-id` is the counter
ids come from. So:
  - listing the newest N is one ZREVRANGE, on the read host;
  - deleting by id is one ZREMRANGEBYSCORE id id (O(log n)), whose count says whether
    the id existed;
  - adding is one MULTI/EXEC transaction on the master, INCR of the counter and ZADD of
    the entry together, so that one cannot land without the other, nor on another
    server. The entry holds its id, so the counter is WATCHed and read first: if
    another writer moved it before EXEC, nothing is executed and the transaction runs
    again. The id comes from the master's counter: ids are unique, with gaps where a
    transaction's ZADD failed after its INCR.

What an answer means, with REDIS_MIN_REPLICA_ACKS = N (every write, POST and DELETE,
is then followed by WAIT N REDIS_ACK_TIMEOUT_MS on the same connection):
  - 201: the entry is on the master and on at least N replicas;
  - 503 on POST: the entry may or may not be stored (on the master only, say, if the
    replicas did not acknowledge it in time), and the answer carries no id (an entry
    that survives shows in listings like any other);
  - so nothing a client saw succeed is lost while at most N Redis pods fail at once,
    provided a failover promotes a replica that has it (Sentinel promotes the one with
    the highest replication offset it saw); with N = 0, a master lost before its
    replicas copied the entry loses it;
  - 204 on DELETE: the removal is on the master and N replicas; a 503 may or may not
    have removed the entry.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from redis.connection import Connection
from redis.exceptions import ResponseError

from .config import Settings
from .entries import Entry, member, utc_now
from .errors import NotAcknowledged, ReplyError, Unavailable
from .redis_client import Endpoint, PasswordFile, call, direct, error_kind, reply_or_error, via_sentinel

ENTRIES_KEY = "journal:entries"
NEXT_ID_KEY = "journal:next-id"
#: Transactions an add may run before it gives up: each one that fails does so because
#: another add succeeded, so this bounds the wait of a request among that many writers.
MAX_ADD_ATTEMPTS = 100


def _decode(stored: Any) -> Optional[Entry]:
    """An entry from its stored member; None for anything this program did not write."""
    try:
        entry = json.loads(stored)
    except (TypeError, ValueError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
        return None
    return {"id": entry["id"], "text": entry.get("text"), "created": entry.get("created")}


# A replica acknowledges the master's offset every second; one silent for longer than
# this is not in step.
REPLICA_ACK_LAG_SECONDS = 2


def _replicas_in_step(info: Any) -> int:
    """Of INFO replication's "slaveN:ip=...,state=online,offset=...,lag=L" lines, the
    replicas online that acknowledged within REPLICA_ACK_LAG_SECONDS."""
    text = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
    count = 0
    for line in text.splitlines():
        name, _, fields = line.partition(":")
        if not (name.startswith("slave") and name[5:].isdigit()):
            continue
        values = dict(field.split("=", 1) for field in fields.strip().split(",") if "=" in field)
        if values.get("state") == "online" and values.get("lag", "").isdigit() \
                and int(values["lag"]) <= REPLICA_ACK_LAG_SECONDS:
            count += 1
    return count


class Journal:
    def __init__(self, writer: Endpoint, reader: Endpoint, min_replica_acks: int = 0,
                 ack_timeout_ms: int = 1000) -> None:
        self.writer = writer
        self.reader = reader
        self.min_replica_acks = min_replica_acks
        self.ack_timeout_ms = ack_timeout_ms

    # --- writes, on the master -------------------------------------------------------

    def add(self, text: str) -> Entry:
        return self.writer.run(lambda conn: self._add(conn, text), idempotent=False)

    def _add(self, conn: Any, text: str) -> Entry:
        for _attempt in range(MAX_ADD_ATTEMPTS):
            entry = self._transaction(conn, text)
            if entry is not None:
                self._wait_for_replicas(conn)
                return entry
        raise Unavailable(f"{MAX_ADD_ATTEMPTS} attempts to add the entry met other writers; try again")

    def _transaction(self, conn: Connection, text: str) -> Optional[Entry]:
        """WATCH the counter, read it, then INCR and ZADD in MULTI/EXEC; None if the
        counter moved meanwhile (nothing was executed)."""
        try:
            call(conn, "WATCH", NEXT_ID_KEY)
            current = call(conn, "GET", NEXT_ID_KEY)
            try:
                entry_id = int(current or 0) + 1
            except ValueError:
                raise ReplyError("ERR", f"{NEXT_ID_KEY} does not hold a number") from None
            entry = {"id": entry_id, "text": text, "created": utc_now()}
            # Sent at once; a transaction cut off before its EXEC arrives is discarded by Redis.
            conn.send_packed_command(conn.pack_commands(
                [("MULTI",), ("INCR", NEXT_ID_KEY), ("ZADD", ENTRIES_KEY, entry_id, member(entry)), ("EXEC",)]))
        except BaseException:
            conn.disconnect()  # and with it the WATCH
            raise
        queued = [reply_or_error(conn) for _ in range(3)]
        executed = reply_or_error(conn)
        if isinstance(executed, ResponseError):
            # EXECABORT: a command was refused as it was queued (READONLY on a demoted
            # master, OOM, NOREPLICAS...), so none ran: raise that refusal.
            raise next((reply for reply in queued if isinstance(reply, ResponseError)), executed)
        if executed is None:
            return None  # another writer took the id first
        counted, _added = executed
        for result in executed:
            if isinstance(result, ResponseError):
                # A command failed as it ran (the others did): never a retry.
                raise ReplyError(error_kind(result))
        if counted != entry_id:
            raise Unavailable(f"{NEXT_ID_KEY} moved under a WATCH (now {counted}, expected {entry_id})")
        return entry

    def delete(self, entry_id: int) -> bool:
        def remove(conn: Any) -> bool:
            removed = call(conn, "ZREMRANGEBYSCORE", ENTRIES_KEY, entry_id, entry_id)
            self._wait_for_replicas(conn)
            return removed > 0

        return self.writer.run(remove, idempotent=False)

    def _wait_for_replicas(self, conn: Any) -> None:
        """WAIT until every replica in step with the master has this connection's writes,
        and at least REDIS_MIN_REPLICA_ACKS of them.

        Every one, not just the minimum: a failover promotes whichever replica Sentinel
        finds furthest ahead, by offsets it read up to a second (or ten) before, so an
        entry that only one replica held could be lost with the master. A replica that
        stopped acknowledging (hung, cut off, still syncing) is not waited for; the
        master itself refuses writes once none is left (min-replicas-to-write)."""
        if self.min_replica_acks <= 0:
            return
        wanted = max(self.min_replica_acks, _replicas_in_step(call(conn, "INFO", "replication")))
        conn.send_command("WAIT", wanted, self.ack_timeout_ms)
        acknowledged = conn.read_slow_response(self.ack_timeout_ms / 1000)
        if acknowledged < self.min_replica_acks:
            raise NotAcknowledged(acknowledged, self.min_replica_acks, self.ack_timeout_ms)

    # --- reads, on the read host ------------------------------------------------------

    def latest(self, count: int) -> list[Entry]:
        members = self.reader.run(lambda conn: call(conn, "ZREVRANGE", ENTRIES_KEY, 0, count - 1), idempotent=True)
        return [entry for entry in map(_decode, members or []) if entry is not None]

    def get(self, entry_id: int) -> Optional[Entry]:
        members = self.reader.run(lambda conn: call(conn, "ZRANGEBYSCORE", ENTRIES_KEY, entry_id, entry_id),
                                  idempotent=True)
        entries = [entry for entry in map(_decode, members or []) if entry is not None]
        return entries[0] if entries else None


def open_journal(settings: Settings) -> Journal:
    """The journal the settings describe: writes to the master, reads from the read host."""
    password = PasswordFile(settings.password_file)
    user = settings.username or None
    if settings.sentinels:
        writer = via_sentinel(settings.sentinels, settings.master_name, password, settings.redis_timeout, user)
    else:
        writer = direct(settings.write_host, settings.redis_port, password, settings.redis_timeout, user)
    reader = direct(settings.read_host, settings.redis_port, password, settings.redis_timeout, user)
    return Journal(writer, reader, settings.min_replica_acks, settings.ack_timeout_ms)
