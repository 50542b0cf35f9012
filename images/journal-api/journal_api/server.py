"""The HTTP side: routes, input checks, JSON answers, one log line per request."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import time
import traceback
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Callable, Optional

from .auth import CredentialUnreadable, Presented, WriteCredential
from .config import Settings
from .entries import MAX_STORED_BYTES, MAX_TEXT_BYTES, stored_bytes
from .errors import NotAcknowledged, ReplyError, Unavailable
from .ratelimit import WriteRateLimit, client_address
from .serving import (
    COMMON_HEADERS,
    HEALTH_PATH,
    JSON_TYPE,
    BoundedServer,
    Connection,
    DeadlineWriter,
    log,
    log_request,
    path_of,
    printable,
)

if TYPE_CHECKING:  # the store needs redis-py; this module (and its limits) does not
    from .store import Journal

#: Longest body read: JSON may spell each byte of the text as a 6-byte \u escape.
MAX_BODY_BYTES = 6 * MAX_TEXT_BYTES + 1024
ENTRY_PATH = re.compile(r"/api/([^/]+)")
ENTRY_ID = re.compile(r"[0-9]{1,15}")  # ids stay far below 2**53, the sorted set's exact range
#: What changes the journal: only with the write credential. Reads stay anonymous.
WRITE_METHODS = ("POST", "DELETE")
REALM = 'Bearer realm="journal"'

Headers = tuple[tuple[str, str], ...]


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: Headers = ()) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def declared_length(headers: Message) -> int:
    """The body's length, from its one Content-Length; ApiError when it has none we take."""
    if "Transfer-Encoding" in headers:
        raise ApiError(411, "send the body with a Content-Length header, not chunked")
    lengths = headers.get_all("Content-Length") or []
    if not lengths:
        raise ApiError(411, "a Content-Length header is required")
    if len(lengths) > 1 or not (lengths[0].isascii() and lengths[0].strip().isdigit()):
        raise ApiError(400, "Content-Length must be one whole number of bytes")
    length = int(lengths[0])
    if length > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    return length


class Handler(BaseHTTPRequestHandler):
    """One request, already read whole by the connection loop (serving.py)."""

    server_version = "journal-api"
    # Keep-alive, so that the edge proxies reuse their connections: an idle one costs
    # no thread (serving.py). Every answer but 204 carries its Content-Length.
    protocol_version = "HTTP/1.1"

    # Not BaseRequestHandler's constructor: there is no socket stream to read the
    # request from, only its bytes; the answer goes to the socket within SEND_SECONDS.
    def __init__(self, conn: Connection, server: JournalServer) -> None:
        self.journal_server = server
        # Its body (or its headers) refused unread: the connection cannot carry another request.
        self.refused_unread = conn.size is None
        self.request = self.connection = conn.sock
        self.client_address = conn.client_address
        self.rfile = io.BytesIO(conn.request)
        self.wfile = DeadlineWriter(conn.sock)
        self.handle_one_request()

    @property
    def journal(self) -> Journal:
        return self.journal_server.journal

    @property
    def settings(self) -> Settings:
        return self.journal_server.settings

    def version_string(self) -> str:
        return self.server_version

    # --- dispatch ------------------------------------------------------------

    def dispatch(self) -> None:
        started = time.monotonic()
        self._status: Optional[int] = None
        path = path_of(self.path)
        try:
            try:
                self._route(path)
            except ApiError as exc:
                self._send(exc.status, {"error": exc.message}, exc.headers)
            except Unavailable as exc:
                self._send(503, {"error": f"the journal store is unavailable: {exc}"})
            except NotAcknowledged as exc:
                self._send(503, {"error": f"the journal store did not confirm the write ({exc.kind}): {exc.detail}"})
            except ReplyError as exc:
                # Only Redis's error class: enough to act on, and nothing else of the reply.
                self._send(503, {"error": f"the journal store refused the request ({exc.kind})"})
        except OSError:
            # The client went away (Redis failures never surface as OSError: see redis_client.py).
            self.close_connection = True
        except Exception:
            log(traceback.format_exc().rstrip())
            with contextlib.suppress(OSError):
                self._send(500, {"error": "internal error"})
        finally:
            # Status "-": the client left before the answer.
            log_request(self.client_address[0], self.command, path, self._status or "-", started)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = dispatch

    def _route(self, path: str) -> None:
        entry_id: Optional[str] = None
        methods: dict[str, Callable[..., None]]
        if path == HEALTH_PATH:
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
        if self.command in WRITE_METHODS:
            # The rate first: a client guessing the credential spends its own budget.
            self._limit_writes()
            self._authorize_write()
        if entry_id is None:
            action()
        else:
            action(self._entry_id(entry_id))

    # --- the API ---------------------------------------------------------------

    def healthz(self) -> None:
        # Never touches Redis: a Redis outage must not restart every API pod.
        self._send(200, {"status": "ok"})

    def list_entries(self) -> None:
        self._send(200, self.journal.latest(self.settings.journal_entries))

    def get_entry(self, entry_id: int) -> None:
        entry = self.journal.get(entry_id)
        if entry is None:
            raise ApiError(404, f"no entry {entry_id}")
        self._send(200, entry)

    def add_entry(self) -> None:
        text = self._entry_text()
        entry = self.journal.add(text)
        self._send(201, entry, (("Location", f"/api/{entry['id']}"),))

    def delete_entry(self, entry_id: int) -> None:
        if not self.journal.delete(entry_id):
            raise ApiError(404, f"no entry {entry_id}")
        self._send(204)

    # --- who may write ---------------------------------------------------------------

    def _limit_writes(self) -> None:
        client = client_address(self.client_address[0], self.headers.get_all("X-Forwarded-For") or [])
        limit = self.journal_server.write_rate
        wait = limit.wait_seconds(client)
        if wait > 0:
            seconds = math.ceil(wait)
            raise ApiError(429, f"too many writes from {client}: {limit.per_minute} a minute, {limit.burst} at once; "
                                f"try again in {seconds} s", (("Retry-After", str(seconds)),))

    def _authorize_write(self) -> None:
        try:
            presented = self.journal_server.write_credential.check(self.headers.get_all("Authorization") or [])
        except CredentialUnreadable as exc:
            raise ApiError(503, f"writes are unavailable: {exc}") from None
        if presented is Presented.NOTHING:
            raise ApiError(401, "writing needs the journal's write credential: "
                                "send it as the header Authorization: Bearer <credential>",
                           (("WWW-Authenticate", REALM),))
        if presented is Presented.WRONG:
            raise ApiError(401, "the write credential is wrong (it may have been rotated)",
                           (("WWW-Authenticate", f'{REALM}, error="invalid_token"'),))

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
        length = declared_length(self.headers)
        body = self.rfile.read(length)
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
        # What Redis would hold, not what was sent: JSON escapes control characters.
        stored = stored_bytes(text)
        if stored > MAX_STORED_BYTES:
            raise ApiError(413, f"the entry would take {stored} bytes as stored, more than {MAX_STORED_BYTES}: "
                                "control characters other than tabs and line breaks are stored as 6-byte escapes")
        return text

    # --- output ------------------------------------------------------------------

    def _send(self, status: int, payload: object = None, headers: Headers = ()) -> None:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", JSON_TYPE)
        if status != 204:
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection or self.refused_unread or self.journal_server.stopping:
            self.send_header("Connection", "close")  # also sets close_connection
        for name, value in (*COMMON_HEADERS, *headers):
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
            f"{printable(path_of(getattr(self, 'path', '-')))} {code}")

    def handle_expect_100(self) -> bool:
        return True  # the loop sent "100 Continue" when it waited for the body

    def log_request(self, code: object = "-", size: object = "-") -> None:
        pass  # dispatch() logs each request once, with its duration

    def log_message(self, format: str, *args: object) -> None:
        log(f"{self.client_address[0]} {printable(format % args)}")


class JournalServer(BoundedServer):
    def __init__(self, settings: Settings, journal: Journal) -> None:
        self.settings = settings
        self.journal = journal
        self.write_credential = WriteCredential(settings.write_credential_file)
        self.write_rate = WriteRateLimit(settings.writes_per_minute, settings.write_burst)
        super().__init__(settings.listen_host, settings.port)

    def body_length(self, headers: Message) -> Optional[int]:
        if "Transfer-Encoding" not in headers and "Content-Length" not in headers:
            return 0  # a request without either has no body (RFC 9112, 6.3)
        try:
            return declared_length(headers)
        except ApiError:
            return None  # the handler refuses it, with the same ApiError

    def run_request(self, conn: Connection) -> bool:
        return not Handler(conn, self).close_connection


def build_server(settings: Settings, journal: Journal) -> JournalServer:
    return JournalServer(settings, journal)
