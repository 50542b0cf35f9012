"""The HTTP side: routes, input checks, JSON answers, one log line per request."""

from __future__ import annotations

import contextlib
import json
import re
import socketserver
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

from .config import Settings
from .resp import PasswordFile, Pool, ReplyError, Unavailable
from .store import Journal

#: Longest entry, in bytes of UTF-8 text.
MAX_TEXT_BYTES = 4096
#: Longest body read: JSON may spell each byte of the text as a 6-byte \u escape.
MAX_BODY_BYTES = 6 * MAX_TEXT_BYTES + 1024
#: A refused body up to this size is read and dropped before the connection closes,
#: so that the client sees our 4xx instead of a connection reset.
MAX_DRAIN_BYTES = 1 << 20
ENTRY_PATH = re.compile(r"/api/([^/]+)")
ENTRY_ID = re.compile(r"[0-9]{1,15}")  # ids stay far below 2**53, the sorted set's exact range

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


def _path_of(target: str) -> str:
    """The request target without its query (urlsplit raises on some odd targets)."""
    return target.partition("?")[0].partition("#")[0]


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class Handler(BaseHTTPRequestHandler):
    server_version = "journal-api"
    # Bounds how long a connection may take to send its request: a slow or idle
    # client costs one thread for this long, and never blocks shutdown for longer.
    timeout = 10

    def version_string(self) -> str:
        return self.server_version

    @property
    def journal_server(self) -> JournalServer:
        # The standard library types `server` as any server; this handler only serves a JournalServer.
        assert isinstance(self.server, JournalServer)
        return self.server

    # --- dispatch ------------------------------------------------------------

    def dispatch(self) -> None:
        started = time.monotonic()
        self._status: Optional[int] = None
        self._body_read = False
        path = _path_of(self.path)
        try:
            try:
                self._route(path)
            except ApiError as exc:
                self._send(exc.status, {"error": exc.message}, exc.headers)
            except Unavailable as exc:
                self._send(503, {"error": f"the journal store is unavailable: {exc}"})
            except ReplyError as exc:
                # Only Redis's error class: enough to act on, and nothing else of the reply.
                self._send(503, {"error": f"the journal store refused the request ({exc.kind})"})
        except OSError:
            # The client went away (Redis failures never surface as OSError: see resp.py).
            self.close_connection = True
        except Exception:
            log(traceback.format_exc().rstrip())
            with contextlib.suppress(OSError):
                self._send(500, {"error": "internal error"})
        finally:
            self._drain_unread_body()
            duration = (time.monotonic() - started) * 1000
            # Status "-": the client left before the answer.
            log(f"{self.client_address[0]} {printable(self.command)} {printable(path)} "
                f"{self._status or '-'} {duration:.1f}ms")

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = dispatch

    def _route(self, path: str) -> None:
        entry_id: Optional[str] = None
        methods: dict[str, Callable[..., None]]
        if path == "/api/healthz":
            methods = {"GET": self.healthz}
        elif path == "/api":
            methods = {"GET": self.list_entries, "POST": self.add_entry}
        elif match := ENTRY_PATH.fullmatch(path):
            entry_id = match.group(1)
            methods = {"GET": self.get_entry, "DELETE": self.delete_entry}
        else:
            raise ApiError(404, f"no such path: {printable(path, 100)}")
        if "GET" in methods:
            methods["HEAD"] = methods["GET"]  # _send() leaves the body out
        action = methods.get(self.command)
        if action is None:
            allow = ", ".join(sorted(methods))
            raise ApiError(405, f"{printable(self.command)} is not allowed here; allowed: {allow}",
                           (("Allow", allow),))
        if entry_id is None:
            action()
        else:
            action(self._entry_id(entry_id))

    # --- the API ---------------------------------------------------------------

    def healthz(self) -> None:
        # Never touches Redis: a Redis outage must not restart every API pod.
        self._send(200, {"status": "ok"})

    def list_entries(self) -> None:
        self._send(200, self.journal_server.journal.latest(self.journal_server.settings.journal_entries))

    def get_entry(self, entry_id: int) -> None:
        entry = self.journal_server.journal.get(entry_id)
        if entry is None:
            raise ApiError(404, f"no entry {entry_id}")
        self._send(200, entry)

    def add_entry(self) -> None:
        text = self._entry_text()
        entry = self.journal_server.journal.add(text)
        self._send(201, entry, (("Location", f"/api/{entry['id']}"),))

    def delete_entry(self, entry_id: int) -> None:
        if not self.journal_server.journal.delete(entry_id):
            raise ApiError(404, f"no entry {entry_id}")
        self._send(204)

    # --- input -------------------------------------------------------------------

    @staticmethod
    def _entry_id(raw: str) -> int:
        if not ENTRY_ID.fullmatch(raw):
            raise ApiError(400, "an entry id is a whole number, e.g. /api/42")
        return int(raw)

    def _content_type(self) -> str:
        mime, _, params = self.headers.get("Content-Type", "").partition(";")
        mime = mime.strip().lower()
        if mime not in ("text/plain", "application/json"):
            raise ApiError(415, 'send the entry as text/plain, or as application/json {"text": "..."}')
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
                raise ApiError(415, "the only charset accepted is utf-8")
        return mime

    def _read_body(self) -> bytes:
        if "Transfer-Encoding" in self.headers:
            raise ApiError(411, "send the body with a Content-Length header, not chunked")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            raise ApiError(411, "a Content-Length header is required")
        if len(lengths) > 1 or not (lengths[0].isascii() and lengths[0].strip().isdigit()):
            raise ApiError(400, "Content-Length must be one whole number of bytes")
        length = int(lengths[0])
        if length > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        self._body_read = True  # read or not, nothing of it is left to drain
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            raise ApiError(408, "the body did not arrive in time") from None
        if len(body) != length:
            raise ApiError(400, "the body is shorter than its Content-Length")
        return body

    def _entry_text(self) -> str:
        mime = self._content_type()
        body = self._read_body()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "the body is not valid UTF-8") from None
        if mime == "application/json":
            try:
                document = json.loads(text)
            except (ValueError, RecursionError):
                raise ApiError(400, "the body is not valid JSON") from None
            if not isinstance(document, dict) or not isinstance(document.get("text"), str):
                raise ApiError(400, 'the JSON body must be an object with a string "text"')
            text = document["text"]
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate escaped in JSON, e.g. "\ud800"
            raise ApiError(400, "the text is not valid Unicode") from None
        if not text.strip():
            raise ApiError(400, "the entry text is empty")
        if size > MAX_TEXT_BYTES:
            raise ApiError(413, f"the entry text is longer than {MAX_TEXT_BYTES} bytes")
        return text

    def _drain_unread_body(self) -> None:
        if self._body_read or self.command in (None, "GET", "HEAD"):
            return
        raw = self.headers.get("Content-Length", "") if self.headers else ""
        if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_DRAIN_BYTES:
            try:
                self.rfile.read(int(raw))
            except OSError:
                pass

    # --- output ------------------------------------------------------------------

    def _send(self, status: int, payload: object = None, headers: tuple[tuple[str, str], ...] = ()) -> None:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        if status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """The standard library's errors (bad request line, unknown method), as JSON."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self._send(code, {"error": message or HTTPStatus(code).phrase})
        log(f"{self.client_address[0]} {printable(self.command or '-')} "
            f"{printable(_path_of(getattr(self, 'path', '-')))} {code}")

    def log_request(self, code: object = "-", size: object = "-") -> None:
        pass  # dispatch() logs each request once, with its duration

    def log_message(self, format: str, *args: object) -> None:
        log(f"{self.client_address[0]} {printable(format % args)}")


class JournalServer(ThreadingHTTPServer):
    # Request threads are joined by server_close(): a SIGTERM lets in-flight
    # requests finish instead of cutting them off.
    daemon_threads = False
    block_on_close = True
    request_queue_size = 64

    def __init__(self, settings: Settings, journal: Journal) -> None:
        self.settings = settings
        self.journal = journal
        super().__init__((settings.listen_host, settings.port), Handler)

    def server_bind(self) -> None:
        # HTTPServer's own would look its address up in DNS (getfqdn) at startup.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.socket.getsockname()[:2]


def build_server(settings: Settings) -> JournalServer:
    password = PasswordFile(settings.password_file)
    writer = Pool(settings.write_host, settings.redis_port, password, settings.redis_timeout)
    reader = Pool(settings.read_host, settings.redis_port, password, settings.redis_timeout)
    return JournalServer(settings, Journal(writer=writer, reader=reader))
