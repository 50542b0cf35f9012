"""Serving HTTP within fixed bounds: threads, connections, time and header bytes.

One thread (the caller of `serve`) owns every connection: it accepts them, reads each
request, head and body, without blocking, and hands only complete requests to a fixed
pool of worker threads through a bounded queue. A slow client therefore costs a buffer
and a file descriptor, never a thread, and only until its deadline; the workers stay
free for the requests that have arrived. Beyond the bounds the loop answers 503 with
`Retry-After` itself.

Why not a server from Debian's packages: the image holds only python3 and
python3-redis, and the standard library's own servers have a thread per connection with
a per-read timeout (a client sending a byte every few seconds holds its thread, and the
pod's shutdown, for ever).
"""

from __future__ import annotations

import collections
import http.client
import io
import json
import queue
import re
import selectors
import socket
import sys
import threading
import time
import traceback
from email.message import Message
from http import HTTPStatus
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

#: Requests run at once. The work is mostly waiting on Redis (each call bounded by
#: its 2 s timeout), so threads rather than cores; 32 keep the pod's memory flat.
WORKERS = 32
#: Complete requests waiting for a worker. A full queue means the workers are
#: behind by seconds: the next request is refused (503) rather than kept waiting.
QUEUED_REQUESTS = 64
#: Open connections, whatever their state. Each costs a file descriptor and at most
#: MAX_HEAD_BYTES + the body limit of memory; 768 stay below the common soft limit of
#: 1024 descriptors with room for the Redis connections of every worker.
MAX_CONNECTIONS = 768
#: A request, request line to last body byte, arrives within this from its connection's
#: accept (or its first byte, on a kept-alive connection), or is cut with 408.
REQUEST_SECONDS = 10.0
#: A kept-alive connection may wait this long for its next request. Longer than the
#: edge proxies' own idle timeouts (ingress-nginx 60 s, Traefik 90 s), so that the
#: proxy, not us, closes an idle connection: no request is sent on one we are closing.
IDLE_SECONDS = 120.0
#: Request line and headers together (the count is capped at 100 by http.client).
MAX_HEAD_BYTES = 16 * 1024
#: An answer is sent within this from its first byte: a client that stops reading
#: cannot hold a worker longer.
SEND_SECONDS = 10.0
#: From SIGTERM to exit, at most: the last request accepted gets its REQUEST_SECONDS,
#: then its Redis calls and its answer. Fits the pod's grace period after its preStop
#: sleep (tests/unit/test_program.py checks it).
SHUTDOWN_SECONDS = 20.0
#: What a refused client is told to wait: the queue moves within a second or two.
RETRY_AFTER_SECONDS = 1
#: A refused body up to this size is read and dropped before the connection closes,
#: so that the client sees our 4xx instead of a connection reset.
MAX_DRAIN_BYTES = 1 << 20
#: How often deadlines are checked: their precision, for a cost that does not grow
#: with the traffic.
SWEEP_SECONDS = 0.1
LISTEN_BACKLOG = 128
#: The headers every answer carries.
JSON_TYPE = "application/json; charset=utf-8"
COMMON_HEADERS = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))

# The end of the head: an empty line (http.server accepts bare "\n" line ends too).
_HEAD_END = re.compile(rb"\r?\n\r?\n")

_log_lock = threading.Lock()


def log(message: str) -> None:
    with _log_lock:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


def printable(text: str, limit: int = 200) -> str:
    """A client-controlled string made safe for a log line: no control characters, bounded."""
    text = text[:limit]
    return "".join(c if c.isprintable() and c != "\\" else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def path_of(target: str) -> str:
    """The request target without its query (urlsplit raises on some odd targets)."""
    return target.partition("?")[0].partition("#")[0]


def log_request(client: str, method: str, path: str, status: object, started: float) -> None:
    """The one line of a request: `<client> <method> <path> <status> <ms>ms`."""
    duration = (time.monotonic() - started) * 1000
    log(f"{client} {printable(method)} {printable(path)} {status} {duration:.1f}ms")


def whole_answer(status: int, document: object, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A whole JSON answer that closes the connection, for the loop to send unaided."""
    body = json.dumps(document).encode()
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
             f"Content-Type: {JSON_TYPE}", f"Content-Length: {len(body)}",
             *(f"{name}: {value}" for name, value in (*COMMON_HEADERS, *headers)), "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def error_answer(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    return whole_answer(status, {"error": message}, headers)


#: What the kubelet's probes ask (server.py answers it without Redis).
HEALTH_PATH = "/api/healthz"
#: A probe that arrives while every worker and queue place is taken: a busy server is
#: alive and serving, so the loop says so itself. Refused like any request (503), the
#: probes would take the pod out of its Service (its clients then meet the proxy's 404)
#: and, six times over, restart it: overload would become an outage.
STILL_SERVING = whole_answer(200, {"status": "busy"})
BUSY = error_answer(503, "the server is busy; try again shortly", (("Retry-After", str(RETRY_AFTER_SECONDS)),))
TOO_SLOW = error_answer(408, "the request did not arrive in time")
HEAD_TOO_LARGE = error_answer(431, f"the request line and headers are larger than {MAX_HEAD_BYTES} bytes")
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Connection:
    """A client connection and the request arriving on it."""

    def __init__(self, sock: socket.socket, client_address: tuple[str, int], now: float) -> None:
        self.sock, self.client_address = sock, client_address
        self.buffer = bytearray()
        #: The request as the worker gets it, once complete.
        self.request = b""
        self.started = now
        self.deadline = now + REQUEST_SECONDS
        self.idle = False
        #: Where the head ends in the buffer, once it has.
        self.head_end: Optional[int] = None
        #: Bytes of head and body, once the head says; None: its body is not framed by a
        #: Content-Length the server accepts, so none of it is read, and the
        #: connection closes after the answer.
        self.size: Optional[int] = 0
        self.eof = False
        #: With a worker: the loop leaves the socket alone.
        self.busy = False
        self.keep_alive = False
        #: Lingering before the close: bytes still to read and drop.
        self.discard = 0

    def request_line(self) -> tuple[str, str]:
        """Method and path, as far as they arrived, for the log."""
        words = bytes(self.buffer.partition(b"\n")[0]).decode("latin-1").split()
        return (words[0] if words else "-"), (path_of(words[1]) if len(words) > 1 else "-")

    def next_request(self, now: float, *, arriving: bool = False) -> None:
        """Ready for the next request on a kept-alive connection: idle until it starts
        arriving (some of it may be here already, pipelined)."""
        self.request, self.head_end, self.size, self.eof = b"", None, 0, False
        self.started = now
        self.idle = not (self.buffer or arriving)
        self.deadline = now + (IDLE_SECONDS if self.idle else REQUEST_SECONDS)


class DeadlineWriter(io.BufferedIOBase):
    """A socket's writer that sends everything within SEND_SECONDS of the first write,
    however slowly the client reads (the socket timeout shrinks to the time left)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._deadline: Optional[float] = None

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer, /) -> int:
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + SEND_SECONDS
        if now >= self._deadline:
            raise TimeoutError("the client did not read the answer in time")
        self._sock.settimeout(self._deadline - now)
        self._sock.sendall(data)
        return memoryview(data).nbytes


class BoundedServer:
    """The loop and the workers; a subclass runs each request (`run_request`)."""

    def __init__(self, host: str, port: int) -> None:
        self.listener = socket.create_server((host, port), backlog=LISTEN_BACKLOG)
        self.listener.setblocking(False)
        self.server_address: tuple[str, int] = self.listener.getsockname()[:2]
        #: Set once SIGTERM came: answers say `Connection: close`.
        self.stopping = False
        self._selector = selectors.DefaultSelector()
        self._connections: set[Connection] = set()
        # Kept-alive connections in the order they went idle: the oldest makes room.
        self._idle: dict[Connection, None] = {}
        self._ready: queue.Queue[Optional[Connection]] = queue.Queue(QUEUED_REQUESTS)
        self._returned: collections.deque[Connection] = collections.deque()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._selector.register(self.listener, selectors.EVENT_READ)
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        self._workers = [threading.Thread(target=self._work, name=f"worker-{n}", daemon=True)
                         for n in range(WORKERS)]

    # --- for subclasses --------------------------------------------------------------

    def body_length(self, headers: Message) -> Optional[int]:
        """How many body bytes follow the head; None when the request's body is refused unread."""
        raise NotImplementedError

    def run_request(self, conn: Connection) -> bool:
        """Answer `conn.request` on `conn.sock`; whether the connection may stay open."""
        raise NotImplementedError

    # --- the loop ----------------------------------------------------------------------

    def serve(self, stopping: threading.Event) -> bool:
        """Serve until `stopping` is set, then drain; whether every request was finished."""
        for worker in self._workers:
            worker.start()
        shutdown_deadline = float("inf")
        next_sweep = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                if stopping.is_set() and not self.stopping:
                    self._stop_accepting()
                    shutdown_deadline = now + SHUTDOWN_SECONDS
                if self.stopping and not self._connections:
                    return True
                if now >= shutdown_deadline:
                    log(f"journal-api: {len(self._connections)} connection(s) cut at the shutdown deadline")
                    return False
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + SWEEP_SECONDS
                for key, _events in self._selector.select(max(0.0, next_sweep - now)):
                    if key.fileobj is self.listener:
                        self._accept()
                    elif key.fileobj is self._wake_reader:
                        self._take_back()
                    else:
                        self._read(key.data)
        finally:
            for _worker in self._workers:
                # Idle workers stop; one stuck past the shutdown deadline dies with the process.
                try:
                    self._ready.put_nowait(None)
                except queue.Full:
                    break
            for conn in list(self._connections):
                self._close(conn)
            self._selector.close()
            self._wake_reader.close()
            self._wake_writer.close()

    def _stop_accepting(self) -> None:
        self.stopping = True
        self._selector.unregister(self.listener)
        self.listener.close()
        for conn in list(self._idle):
            self._close(conn)

    def _accept(self) -> None:
        while True:
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, or the client already gone
                log(f"journal-api: accept failed: {exc.strerror}")
                return
            sock.setblocking(False)
            # An answer is written as its head, then its body: with Nagle's algorithm the
            # body would wait for the client's delayed ACK of the head (40 ms on Linux).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            now = time.monotonic()
            if len(self._connections) >= MAX_CONNECTIONS and self._idle:
                self._close(next(iter(self._idle)))
            if len(self._connections) >= MAX_CONNECTIONS:
                # What the client sent already is read and dropped: closing on unread
                # data would reset the connection before the client reads the 503.
                conn = Connection(sock, address, now)
                try:
                    conn.buffer += sock.recv(MAX_HEAD_BYTES)
                except OSError:
                    pass
                self._refuse(conn, BUSY, 503)
                sock.close()
                continue
            conn = Connection(sock, address, now)
            self._connections.add(conn)
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _read(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if conn.discard:
            conn.discard -= len(data)
            if not data or conn.discard <= 0:
                self._close(conn)
            return
        if not data:
            conn.eof = True
            if conn.buffer:
                self._dispatch(conn)  # what arrived is answered (400 for a body cut short)
            else:
                self._close(conn)
            return
        if conn.idle:
            self._idle.pop(conn, None)
            conn.next_request(time.monotonic(), arriving=True)
        conn.buffer += data
        self._advance(conn)

    def _advance(self, conn: Connection) -> None:
        """Hand the request over once complete; refuse a head too large."""
        if conn.head_end is None:
            end = _HEAD_END.search(conn.buffer)
            if end is None or end.end() > MAX_HEAD_BYTES:
                if end is not None or len(conn.buffer) > MAX_HEAD_BYTES:
                    self._refuse(conn, HEAD_TOO_LARGE, 431)
                    self._linger(conn)
                return
            conn.head_end = end.end()
            head = bytes(conn.buffer[:conn.head_end])
            try:
                headers = http.client.parse_headers(io.BytesIO(head.partition(b"\n")[2]))
            except http.client.HTTPException:
                conn.size = None  # too many headers: the handler answers 431
            else:
                length = self.body_length(headers)
                conn.size = None if length is None else conn.head_end + length
                if (conn.size is not None and len(conn.buffer) < conn.size
                        and headers.get("Expect", "").lower() == "100-continue"):
                    self._send_now(conn, CONTINUE)
        if conn.size is None or len(conn.buffer) >= conn.size:
            self._dispatch(conn)

    def _dispatch(self, conn: Connection) -> None:
        if conn.size is None or conn.eof:
            conn.request, conn.buffer = bytes(conn.buffer), bytearray()
        else:
            conn.request, conn.buffer = bytes(conn.buffer[:conn.size]), conn.buffer[conn.size:]
        try:
            self._ready.put_nowait(conn)
        except queue.Full:
            if conn.request.startswith(f"GET {HEALTH_PATH} ".encode()):
                self._refuse(conn, STILL_SERVING, 200)
            else:
                self._refuse(conn, BUSY, 503)
            self._close(conn)
            return
        conn.busy = True
        self._selector.unregister(conn.sock)

    def _take_back(self) -> None:
        """Connections whose answer was sent: keep alive, linger or close."""
        try:
            while self._wake_reader.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while self._returned:
            conn = self._returned.popleft()
            conn.busy = False
            if conn.size is None and not conn.eof:
                self._linger(conn)
            elif not conn.keep_alive or conn.eof or self.stopping:
                self._close(conn)
            else:
                conn.sock.setblocking(False)
                conn.next_request(time.monotonic())
                self._selector.register(conn.sock, selectors.EVENT_READ, conn)
                if conn.idle:
                    self._idle[conn] = None
                else:
                    self._advance(conn)  # pipelined: the next request is (partly) here

    def _sweep(self, now: float) -> None:
        """Close what outlived its deadline: idle, lingering, or still sending its request."""
        for conn in [c for c in self._connections if not c.busy and now >= c.deadline]:
            if conn.buffer and not conn.discard:
                self._refuse(conn, TOO_SLOW, 408)
            self._close(conn)

    # --- answers and endings -------------------------------------------------------------

    def _send_now(self, conn: Connection, answer: bytes) -> None:
        """One try, never blocking the loop: these answers fit any empty socket buffer."""
        try:
            conn.sock.send(answer)
        except OSError:
            pass

    def _refuse(self, conn: Connection, answer: bytes, status: int) -> None:
        self._send_now(conn, answer)
        method, path = conn.request_line()
        log_request(conn.client_address[0], method, path, status, conn.started)

    def _linger(self, conn: Connection) -> None:
        """Read and drop what the client still sends, so that it sees the answer rather
        than a reset; until it stops, MAX_DRAIN_BYTES or the request's deadline."""
        conn.discard, conn.buffer = MAX_DRAIN_BYTES, bytearray()
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        if conn.sock.fileno() not in self._selector.get_map():
            conn.sock.setblocking(False)
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)

    def _close(self, conn: Connection) -> None:
        if conn.sock.fileno() in self._selector.get_map():
            self._selector.unregister(conn.sock)
        self._connections.discard(conn)
        self._idle.pop(conn, None)
        conn.sock.close()

    # --- the workers --------------------------------------------------------------------

    def _work(self) -> None:
        while (conn := self._ready.get()) is not None:
            try:
                conn.keep_alive = self.run_request(conn)
            except OSError:
                conn.keep_alive = False  # the client went away
            except Exception:
                log(traceback.format_exc().rstrip())
                conn.keep_alive = False
            self._returned.append(conn)
            try:
                self._wake_writer.send(b"\0")
            except OSError:
                pass  # the loop has wake-ups pending already, or has stopped
