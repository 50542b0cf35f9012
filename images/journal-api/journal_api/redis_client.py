"""Connections to Redis through redis-py (Debian's python3-redis 4.3), and the rules for
retrying a command.

Two kinds of endpoint, each a connection pool:
  - `direct(host, port)`: one server (or a Service in front of several);
  - `via_sentinel(sentinels, name)`: the current master of `name`, as the Sentinels
    report it; a connection that fails or meets a demoted master is replaced by one to
    the master the Sentinels name then.
Every connect, name lookup and reply is bounded by the timeout (2 s), except WAIT's
reply, which may take the acknowledgement timeout longer.

Failures reach the HTTP layer as errors.Unavailable (no connection, no answer in time,
an unreadable reply) or errors.ReplyError (Redis refused: READONLY, OOM, WRONGPASS...,
only the error class is kept). The password is read from its file when a connection
authenticates, and again whenever Redis refuses it (WRONGPASS, NOAUTH), so a rotated
Secret is followed without a restart. It is never part of an exception, a repr or a log
line built here.

Retries, at most one per request, and only when they cannot repeat a write:
  - a read (idempotent), after a connection error (not after a timeout);
  - a write through Sentinel, after the Sentinels are asked again for the master, when
    the connection failed before anything was sent (refused, not timed out), or when
    Redis answered READONLY (the old master was demoted: nothing was executed; the
    retry goes to the server it follows now if the Sentinels still name it).
A write is never retried after a timeout or a connection lost while the command was on
its way: it may have been executed.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, TypeVar, Union

import redis
from redis.connection import Connection, ConnectionPool, PythonParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelManagedConnection

from .errors import ReplyError, StoreFailure, Unavailable

T = TypeVar("T")

#: Error classes that mean "the password we hold is not the one Redis wants".
AUTH_REFUSALS = ("WRONGPASS", "NOAUTH")
#: Before each new try of a connection that could not be made: a second in all, well
#: inside a request's bound when the store is really gone.
CONNECT_RETRY_PAUSES = (0.25, 0.75)


class PasswordUnreadable(RedisConnectionError):
    """The password file cannot be read (raised while a connection authenticates)."""


class PasswordFile:
    """The mounted Secret, read once and again whenever Redis refuses what we hold.

    The kubelet updates the file when the Secret changes, so a refused password is the
    signal to look at it again.
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

    def forget(self) -> None:
        """Read the file again at the next connection."""
        with self._lock:
            self._cached = None

    def _read(self) -> bytes:
        try:
            value = self.path.read_bytes()
        except OSError as exc:
            # The OS error names the path and the reason, never the content.
            raise PasswordUnreadable(f"cannot read the Redis password file: {exc.strerror}") from None
        # One trailing newline, as `echo` or an editor leaves it; nothing more.
        if value.endswith(b"\r\n"):
            return value[:-2]
        if value.endswith(b"\n"):
            return value[:-1]
        return value


def error_kind(error: RedisError) -> str:
    """The error class Redis put first in its reply (READONLY, OOM, WRONGPASS, ERR...)."""
    return getattr(error, "redis_kind", None) or "ERR"


class _Parser(PythonParser):
    """redis-py's own parser, keeping the error class it strips from some messages
    (it turns `READONLY You can't write...` into ReadOnlyError("You can't write..."))."""

    def parse_error(self, response: str) -> Any:
        error = super().parse_error(response)
        kind = response.split(" ", 1)[0]
        setattr(error, "redis_kind", kind if kind.isascii() and kind.isalpha() and kind.isupper() else "ERR")
        return error


def _resolve(host: str, port: int, timeout: float) -> list[Any]:
    """getaddrinfo, within `timeout`.

    getaddrinfo ignores socket timeouts, and with the cluster DNS down it can stall for
    tens of seconds: a name is looked up in a daemon thread, abandoned on timeout.
    """
    result: dict[str, Any] = {}

    def lookup() -> None:
        try:
            result["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            result["error"] = exc

    try:
        ipaddress.ip_address(host)
        lookup()  # an address: nothing to wait for
    except ValueError:
        worker = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
        worker.start()
        worker.join(timeout)
    if "addresses" in result:
        return result["addresses"]
    if "error" in result:
        raise result["error"]
    raise socket.timeout(f"timed out resolving {host}")


class BoundedConnection(Connection):
    """A connection whose name lookup is bounded too, and that authenticates with the
    password file's current content."""

    def __init__(self, *, password_file: PasswordFile, socket_timeout: float, **kwargs: Any) -> None:
        # One timeout for the name lookup, the connect and each reply.
        super().__init__(socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout, **kwargs)
        self.password_file = password_file
        self.timeout = socket_timeout

    def _connect(self) -> socket.socket:
        timeout = self.timeout
        error: Optional[OSError] = None
        for family, kind, proto, _name, address in _resolve(self.host, self.port, timeout):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(timeout)
                sock.connect(address)
                return sock  # the timeout stays on the socket: each reply is bounded too
            except OSError as exc:
                sock.close()
                error = exc
        raise error or OSError("no address")

    def on_connect(self) -> None:
        secret = self.password_file.get()
        try:
            self._authenticate(secret)
        except ResponseError:
            # Perhaps the Secret was rotated since we read it.
            fresh = self.password_file.get(reread=True)
            if not fresh or fresh == secret:
                raise
            self._authenticate(fresh)

    def _authenticate(self, secret: bytes) -> None:
        # redis-py sends AUTH from `password` in on_connect; it is not kept afterwards.
        self.password = secret or None
        try:
            super().on_connect()
        finally:
            self.password = None

    def read_response(self, disable_decoding: bool = False) -> Any:
        try:
            return super().read_response(disable_decoding=disable_decoding)
        except (ValueError, IndexError):
            # The parser meets a non-number where RESP has a length (it has already
            # dropped the connection).
            raise InvalidResponse(f"unreadable reply from {self.host}:{self.port}") from None

    def read_slow_response(self, extra_seconds: float) -> Any:
        """One reply that may take `extra_seconds` longer than the timeout (WAIT blocks on purpose)."""
        sock = self._sock
        if sock is not None:
            sock.settimeout(self.timeout + extra_seconds)
        try:
            return self.read_response()
        finally:
            if self._sock is not None:
                self._sock.settimeout(self.timeout)


class MasterConnection(SentinelManagedConnection, BoundedConnection):
    """A connection to the master the Sentinels name."""

    def read_response(self, disable_decoding: bool = False) -> Any:
        # SentinelManagedConnection turns READONLY into a ConnectionError, which would hide
        # that nothing was executed: Endpoint.run handles it instead.
        return BoundedConnection.read_response(self, disable_decoding=disable_decoding)


class SentinelGroup(Sentinel):
    """The Sentinels, asked in turn which server is the master, starting with the last
    that knew.

    redis-py's own discover_master swaps the list's items to put the one that answered
    first, which concurrent request threads can interleave into a list that lost one.

    A master that hands its role over (the StatefulSet's preStop hook) follows its
    successor the moment that one is promoted, but the Sentinels name the successor
    only once they have asked it for its role, up to a second later. Meanwhile a
    server that answered READONLY and says whom it follows (`follow_demotion`) is
    trusted over Sentinels that still name it: writes go to its successor at once.
    Safety does not rest on this (a server that is not the master refuses the write,
    and a write counts only once its replicas hold it); only the pause is shorter.
    """

    def __init__(self, sentinels: Sequence[redis.Redis]) -> None:
        super().__init__([])
        self.sentinels = list(sentinels)
        self._first = 0
        #: (demoted master, the master it follows), until the Sentinels name another.
        self._succession: Optional[tuple[tuple[str, int], tuple[str, int]]] = None

    def follow_demotion(self, demoted: tuple[str, int], successor: tuple[str, int]) -> None:
        """`demoted` answered READONLY and follows `successor`."""
        if successor != demoted:
            self._succession = (demoted, successor)

    def discover_master(self, service_name: str) -> tuple[str, int]:
        count = len(self.sentinels)
        start = self._first
        failures = []
        for index in (start + offset for offset in range(count)):
            sentinel = self.sentinels[index % count]
            try:
                masters = sentinel.sentinel_masters()
            except RedisError as error:  # down, silent, or refusing us (WRONGPASS...): ask the next
                failures.append(getattr(error, "redis_kind", None) or type(error).__name__)
                continue
            state = masters.get(service_name)
            if state and self.check_master_state(state, service_name):
                self._first = index % count
                named = (state["ip"], int(state["port"]))
                succession = self._succession
                if succession is not None and succession[0] == named:
                    return succession[1]  # the Sentinels have not seen the hand-over yet
                self._succession = None
                return named
            failures.append("no master up")
        raise MasterNotFoundError(f"no Sentinel names a master for {service_name!r} "
                                  f"({', '.join(failures) or 'no Sentinel'})")


def call(conn: Connection, *args: Union[str, bytes, int]) -> Any:
    """One command on `conn`; raises ResponseError for an error reply."""
    conn.send_command(*args)
    return conn.read_response()


def reply_or_error(conn: Connection) -> Any:
    """One reply, an error reply returned rather than raised (the connection stays in step)."""
    try:
        return conn.read_response()
    except ResponseError as error:
        return error


def _options(password: PasswordFile, timeout: float, username: Optional[str]) -> dict[str, Any]:
    return {
        "password_file": password,
        # AUTH <username> <password> when set (an ACL user), else AUTH <password>.
        "username": username or None,
        "socket_timeout": timeout,
        "parser_class": _Parser,
        # No automatic retries: Endpoint.run decides.
        "retry_on_timeout": False,
    }


class Endpoint:
    """A pool of connections to one role (the master, or the read host) and its retry rule."""

    def __init__(self, pool: ConnectionPool, password: PasswordFile, timeout: float, *,
                 where: str, sentinels: Optional[SentinelGroup] = None) -> None:
        self.pool = pool
        self.password = password
        self.timeout = timeout
        self.where = where
        #: Through Sentinel: a retry may find another master.
        self.sentinels = sentinels
        self.follows_master = sentinels is not None

    def __repr__(self) -> str:
        return f"Endpoint({self.where})"

    def run(self, operation: Callable[[Any], T], *, idempotent: bool) -> T:
        """`operation(connection)` on a pooled connection, retried at most once when safe;
        a connection that could not be made at all is tried again after short pauses."""
        pauses = list(CONNECT_RETRY_PAUSES)
        for attempt in (1, 2):
            last = attempt == 2
            conn = self._connect(pauses)
            try:
                return operation(conn)
            except StoreFailure:
                raise  # raised by the operation, with the connection in step
            except RedisError as error:
                failure = self._failure(error, conn)
                # READONLY: a demoted master, which executed nothing; this connection
                # and the idle ones go to it.
                demoted = isinstance(error, ReadOnlyError) and self.follows_master
                if demoted:
                    self._follow_demotion(conn)
                    conn.disconnect()
                    self.pool.disconnect(inuse_connections=False)
                if not last and (demoted or (idempotent and _connection_failed(error, failure))):
                    continue
                raise failure from None
            except BaseException:
                conn.disconnect()  # its state is unknown
                raise
            finally:
                self.pool.release(conn)
        raise AssertionError("unreachable")

    def _connect(self, pauses: list[float]) -> Connection:
        """A pooled connection. Nothing of the request is sent yet, so a fast failure to
        connect (a name not resolving yet, a refused connection, every Sentinel
        unreachable) is tried again after the next of `pauses`, which the caller's tries
        share: a new pod's first requests may meet its network before the cluster has
        finished setting it up."""
        while True:
            try:
                return self.pool.get_connection("_")
            except RedisError as error:
                failure = self._failure(error, None)
                if not (_connection_failed(error, failure) and pauses):
                    raise failure from None
                time.sleep(pauses.pop(0))

    def _follow_demotion(self, conn: Connection) -> None:
        """Learn from a demoted master (its reply to ROLE) which server it follows now."""
        if self.sentinels is None:
            return
        try:
            role = call(conn, "ROLE")
        except RedisError:
            return  # cut off or refusing: the Sentinels' answer stands
        if isinstance(role, list) and len(role) >= 3 and role[0] in (b"slave", "slave"):
            host, port = role[1], role[2]
            host = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
            if host and isinstance(port, int):
                self.sentinels.follow_demotion((str(conn.host), int(conn.port)), (host, port))

    def _failure(self, error: RedisError, conn: Optional[Connection]) -> StoreFailure:
        where = f"{conn.host}:{conn.port}" if conn is not None and conn.host else self.where
        kind = getattr(error, "redis_kind", None)
        if kind is not None or isinstance(error, ResponseError):
            # An error reply (redis-py makes some of them, NOAUTH for one, ConnectionErrors).
            kind = kind or "ERR"
            if kind in AUTH_REFUSALS:
                self.password.forget()
                if conn is not None:
                    conn.disconnect()  # authenticate again, with the file's content
            # Only the class: the rest of Redis's message is not ours to pass on.
            return ReplyError(kind)
        if isinstance(error, RedisTimeoutError):
            return Unavailable(f"{where} did not answer within {self.timeout:g} s")
        # redis-py's messages name the server and the OS error; some span lines.
        return Unavailable(" ".join(str(error).split()) or f"{where}: {type(error).__name__}")


def _connection_failed(error: RedisError, failure: StoreFailure) -> bool:
    """A connection that failed, but not by a timeout (the server may still be working on
    the command) nor by Redis's answer."""
    return (isinstance(failure, Unavailable) and isinstance(error, RedisConnectionError)
            and not isinstance(error, RedisTimeoutError))


def direct(host: str, port: int, password: PasswordFile, timeout: float, username: Optional[str] = None) -> Endpoint:
    """Connections to one host."""
    pool = ConnectionPool(connection_class=BoundedConnection, host=host, port=port,
                          **_options(password, timeout, username))
    return Endpoint(pool, password, timeout, where=f"{host}:{port}")


def via_sentinel(sentinels: Sequence[tuple[str, int]], master_name: str, password: PasswordFile,
                 timeout: float, username: Optional[str] = None) -> Endpoint:
    """Connections to the master of `master_name`, as the first Sentinel that knows it says."""
    # The Sentinels know the same user and password as the servers and, like them,
    # authenticate from the file and bound their name lookups: clients of our own,
    # since redis-py builds its from sentinel_kwargs, which cannot name a connection class.
    manager = SentinelGroup([
        redis.Redis(connection_pool=ConnectionPool(connection_class=BoundedConnection, host=host, port=port,
                                                   **_options(password, timeout, username)))
        for host, port in sentinels
    ])
    client = manager.master_for(master_name, connection_class=MasterConnection,
                                **_options(password, timeout, username))
    where = f"the master {master_name!r} of Sentinel {' '.join(f'{h}:{p}' for h, p in sentinels)}"
    return Endpoint(client.connection_pool, password, timeout, where=where, sentinels=manager)
