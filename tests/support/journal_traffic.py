"""A bounded stream of journal API traffic, recorded request by request, for tests that
break the store under load (a master deleted, hung or cut off, a Redis rollout) and must
then show three figures: no acknowledged entry lost, no id handed out twice, and how long
writes were unavailable.

    with JournalTraffic(through_api(api), max_seconds=10) as traffic:
        time.sleep(2)
        break_something()
        traffic.mark("master stopped")
        ...
        traffic.wait()
    report, verification = traffic.report(), traffic.verify()
    assert verification.ok, verification.summary()
    print(report.summary())

Writes (POST /api, each with a text of its own), reads (GET /api) and, when asked for,
page loads (GET of a file server's path, "/" by default) are sent by a few threads each,
paced by a schedule (request k at start + k / rate) rather than one after another, so
one slow request delays nothing else. At most `writers` writes are in flight:
while the store hangs, the failures number about writers x (hang / the API's own Redis
timeout) and the slots meanwhile are skipped, so the figure for how long writes were
unavailable is the write gap, not the failure count. Requests go only through the `send`
callable the recorder is given; it never sees a password, and keeps no response body
beyond the entries' ids and texts.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import statistics
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal, Optional

if TYPE_CHECKING:  # only for the adapters' annotations: importing either starts nothing
    from support.edge_client import EdgeClient
    from support.journal_api_process import Api

#: One HTTP request: (method, path, body or None) -> (status, body). It carries its own
#: timeout, and raises OSError (TimeoutError among them) or http.client.HTTPException on failure.
Send = Callable[[str, str, Optional[bytes]], tuple[int, bytes]]
Kind = Literal["write", "read", "page"]

#: What a request that fails in the transport, not with a status, may raise (a timeout
#: is an OSError: TimeoutError, socket.timeout).
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)
#: The error recorded for a 201 whose body is not the entry that was sent.
UNEXPECTED_ANSWER = "UnexpectedAnswer"
#: How long stop() and wait() wait for the requests in flight, beyond the schedule: the
#: callable's own timeout should end each well before.
JOIN_ALLOWANCE = 60.0


def through_api(api: Api) -> Send:
    """`send` for a local `python -m journal_api` process (support.journal_api_process)."""

    def send(method: str, path: str, body: Optional[bytes]) -> tuple[int, bytes]:
        headers = {"Content-Type": "text/plain; charset=utf-8"} if body is not None else {}
        response = api.request(method, path, body, headers)
        return response.status, response.body

    return send


def through_edge(client: EdgeClient, https: bool = True) -> Send:
    """`send` for a deployed stack, through its ingress (support.edge_client)."""

    def send(method: str, path: str, body: Optional[bytes]) -> tuple[int, bytes]:
        status, _headers, answer = client.request(method, path, body, https=https)
        return status, answer

    return send


@dataclass(frozen=True)
class Request:
    """One request as it went: times are time.monotonic()."""

    kind: Kind
    started: float
    ended: float
    #: None when the transport failed.
    status: Optional[int]
    #: The exception's class name, UNEXPECTED_ANSWER, the API's reason for a refusal
    #: (its digits as "#"), or None.
    error: Optional[str]
    #: An acknowledged write's id and text; None otherwise.
    entry_id: Optional[int] = None
    text: Optional[str] = None

    @property
    def acknowledged(self) -> bool:
        return self.entry_id is not None

    @property
    def outcome(self) -> str:
        """"201", "503", "TimeoutError", "201 UnexpectedAnswer"...: how failures are counted."""
        if self.status is None:
            return self.error or "no answer"
        return f"{self.status} {self.error}" if self.error else str(self.status)


@dataclass(frozen=True)
class MarkFigure:
    label: str
    #: Seconds after the traffic began.
    at: float
    #: Seconds from the mark to the completion of the first acknowledged write sent after
    #: it; None when none was before the traffic ended.
    first_write_after: Optional[float]


@dataclass(frozen=True)
class TrafficReport:
    seconds: float
    writes_sent: int
    writes_acknowledged: int
    #: Failed writes by outcome ("503", "TimeoutError", ...).
    write_failures: dict[str, int]
    reads_sent: int
    read_failures: dict[str, int]
    pages_sent: int
    page_failures: dict[str, int]
    #: Scheduled requests never sent because every thread of their kind was still busy
    #: when their time had passed (the stream keeps its rate rather than bursting after).
    slots_skipped: int
    #: The longest stretch without an acknowledged write completing, counted from the
    #: start and to the end of the traffic too, and from each mark to its first_write_after;
    #: and where (seconds after the start) it began.
    longest_write_gap: float
    longest_write_gap_from: float
    marks: tuple[MarkFigure, ...]
    #: Of acknowledged writes, in seconds; None without any.
    write_latency_median: Optional[float]
    write_latency_max: Optional[float]

    def summary(self) -> str:
        def counts(failures: dict[str, int]) -> str:
            return ", ".join(f"{n}x {outcome}" for outcome, n in sorted(failures.items())) or "none"

        def ms(seconds: Optional[float]) -> str:
            return "-" if seconds is None else f"{seconds * 1000:.0f} ms"

        marks = "".join(
            f"; {mark.label!r} at {mark.at:.2f} s: first acknowledged write "
            + ("never" if mark.first_write_after is None else f"{mark.first_write_after:.2f} s later")
            for mark in self.marks)
        return (f"{self.seconds:.1f} s: writes {self.writes_acknowledged}/{self.writes_sent} acknowledged "
                f"(failed: {counts(self.write_failures)}), reads {self.reads_sent} (failed: "
                f"{counts(self.read_failures)}), pages {self.pages_sent} (failed: {counts(self.page_failures)}), "
                f"{self.slots_skipped} slots skipped; latency median "
                f"{ms(self.write_latency_median)}, max {ms(self.write_latency_max)}\n"
                f"longest write gap {self.longest_write_gap:.2f} s from {self.longest_write_gap_from:.2f} s{marks}")


@dataclass(frozen=True)
class Missing:
    """An acknowledged write its id does not give back."""

    entry_id: int
    text: str
    #: What reading the id gave last: "404", "503", "TimeoutError", "text '...'".
    found: str


@dataclass(frozen=True)
class Misplaced:
    """An acknowledged write's text seen under another id than the one it was given."""

    text: str
    acknowledged_id: int
    seen_id: int


@dataclass(frozen=True)
class Verification:
    #: Acknowledged writes read back.
    checked: int
    #: Not found (404 to the end), or found holding another text.
    lost: tuple[Missing, ...]
    #: Still unreadable (503, transport errors) to the end: neither found nor known lost.
    unreadable: tuple[Missing, ...]
    #: Ids acknowledged to more than one write, with those writes' texts.
    duplicate_ids: dict[int, tuple[str, ...]]
    misplaced: tuple[Misplaced, ...]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.unreadable or self.duplicate_ids or self.misplaced)

    def summary(self) -> str:
        return (f"{self.checked} acknowledged writes read back: {len(self.lost)} lost {list(self.lost)}, "
                f"{len(self.unreadable)} unreadable {list(self.unreadable)}, "
                f"{len(self.duplicate_ids)} ids handed out twice {self.duplicate_ids}, "
                f"{len(self.misplaced)} under another id {list(self.misplaced)}")


class _Schedule:
    """The slots of one kind of request: slot k is due at start + k / rate."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.next_slot = 0


class JournalTraffic:
    """Writes at `write_rate` and reads at `read_rate` per second through `send`, for at
    most `max_seconds` and `max_requests`, until then or stop(); every request recorded."""

    def __init__(self, send: Send, *, max_seconds: float, write_rate: float = 25.0, read_rate: float = 10.0,
                 writers: int = 4, readers: int = 2, page_rate: float = 0.0, page_path: str = "/",
                 max_requests: int = 10_000) -> None:
        self.send = send
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        #: In every text, so that this run's entries are told from any others in the journal.
        self.run_id = uuid.uuid4().hex[:12]
        self.page_path = page_path
        self._schedules: dict[Kind, _Schedule] = {
            "write": _Schedule(write_rate), "read": _Schedule(read_rate), "page": _Schedule(page_rate)}
        threads: dict[Kind, int] = {"write": writers, "read": readers, "page": readers if page_rate else 0}
        self._threads = [threading.Thread(target=self._work, args=(kind,), name=f"journal-{kind}-{n}", daemon=True)
                         for kind, count in threads.items() for n in range(count)]
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: list[Request] = []
        self._marks: list[tuple[str, float]] = []
        #: (id, text) pairs of this run's entries seen in listings.
        self._listed: set[tuple[int, str]] = set()
        self._claimed = 0
        self._skipped = 0
        self._started: Optional[float] = None
        self._ended: Optional[float] = None
        self._failure: Optional[BaseException] = None

    # --- running ----------------------------------------------------------------------

    def start(self) -> "JournalTraffic":
        assert self._started is None, "a JournalTraffic runs once"
        self._started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """End the stream now; the requests in flight finish (within their own timeout)."""
        self._stopping.set()
        self._join(JOIN_ALLOWANCE)

    def wait(self) -> None:
        """Wait for the stream to end by itself, after max_seconds (or max_requests)."""
        assert self._started is not None, "start() first"
        self._join(self._started + self.max_seconds + JOIN_ALLOWANCE - time.monotonic())

    def __enter__(self) -> "JournalTraffic":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def mark(self, label: str) -> None:
        """Note the moment of a fault (or of anything): report() measures from it."""
        with self._lock:
            self._marks.append((label, time.monotonic()))

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def _join(self, allowance: float) -> None:
        deadline = time.monotonic() + max(allowance, 0)
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(max(deadline - time.monotonic(), 0))
        if any(thread.is_alive() for thread in self._threads):
            raise TimeoutError("journal traffic: a request outlived its timeout")
        if self._ended is None:
            ends = [request.ended for request in self.requests]
            self._ended = max(ends, default=time.monotonic())
        if self._failure is not None:
            raise self._failure

    def _claim(self, kind: Kind) -> Optional[tuple[int, float]]:
        """The next slot of `kind` and when it is due; None once the run is over."""
        assert self._started is not None
        with self._lock:
            schedule = self._schedules[kind]
            # A slot whose time has passed by more than a period is skipped, not sent late.
            now_slot = math.floor((time.monotonic() - self._started) * schedule.rate)
            slot = max(schedule.next_slot, now_slot)
            due = self._started + slot / schedule.rate
            if self._claimed >= self.max_requests or due >= self._started + self.max_seconds:
                return None
            self._skipped += slot - schedule.next_slot
            schedule.next_slot = slot + 1
            self._claimed += 1
            return slot, due

    def _work(self, kind: Kind) -> None:
        try:
            while not self._stopping.is_set():
                claimed = self._claim(kind)
                if claimed is None:
                    return
                slot, due = claimed
                if self._stopping.wait(max(due - time.monotonic(), 0)):
                    return
                request = self._write(slot) if kind == "write" else self._read() if kind == "read" else self._page()
                with self._lock:
                    self._requests.append(request)
        except BaseException as failure:  # a bug or a failed check in `send`: stop() raises it
            self._failure = failure
            self._stopping.set()

    def _write(self, slot: int) -> Request:
        text = f"traffic {self.run_id} write {slot}"
        started = time.monotonic()
        try:
            status, body = self.send("POST", "/api", text.encode())
        except TRANSPORT_ERRORS as error:
            return Request("write", started, time.monotonic(), None, type(error).__name__)
        ended = time.monotonic()
        if status != 201:
            return Request("write", started, ended, status, _reason(body))
        entry = _entry(body)
        if entry is None or entry[1] != text:
            return Request("write", started, ended, status, UNEXPECTED_ANSWER)
        return Request("write", started, ended, status, None, entry[0], text)

    def _read(self) -> Request:
        started = time.monotonic()
        try:
            status, body = self.send("GET", "/api", None)
        except TRANSPORT_ERRORS as error:
            return Request("read", started, time.monotonic(), None, type(error).__name__)
        ended = time.monotonic()
        if status != 200:
            return Request("read", started, ended, status, _reason(body))
        try:
            listed = json.loads(body)
        except ValueError:
            return Request("read", started, ended, status, UNEXPECTED_ANSWER)
        if not isinstance(listed, list):
            return Request("read", started, ended, status, UNEXPECTED_ANSWER)
        prefix = f"traffic {self.run_id} "
        seen = {entry for entry in map(_entry_of, listed) if entry is not None and entry[1].startswith(prefix)}
        with self._lock:
            self._listed |= seen
        return Request("read", started, ended, status, None)

    def _page(self) -> Request:
        started = time.monotonic()
        try:
            status, body = self.send("GET", self.page_path, None)
        except TRANSPORT_ERRORS as error:
            return Request("page", started, time.monotonic(), None, type(error).__name__)
        return Request("page", started, time.monotonic(), status, None if body else UNEXPECTED_ANSWER)

    # --- figures ----------------------------------------------------------------------

    def report(self) -> TrafficReport:
        """The figures so far (all of them once the traffic has ended)."""
        assert self._started is not None, "start() first"
        start = self._started
        end = self._ended if self._ended is not None else time.monotonic()
        requests = self.requests
        writes = [request for request in requests if request.kind == "write"]
        reads = [request for request in requests if request.kind == "read"]
        pages = [request for request in requests if request.kind == "page"]
        acknowledged = sorted((w for w in writes if w.acknowledged), key=lambda w: w.ended)
        successes = [w.ended for w in acknowledged]
        with self._lock:
            marks = list(self._marks)
        # After a mark, only a write sent after it shows that writes work again: one sent
        # before may have been answered before the fault took hold.
        recoveries = [(label, at, next((w.ended for w in acknowledged if w.started >= at), None))
                      for label, at in marks]
        # From the start and to the end too: a stream that never recovers shows as a gap.
        bounds = [start, *successes, end]
        gap, gap_from = max([(b - a, a) for a, b in zip(bounds, bounds[1:])]
                            + [((end if done is None else done) - at, at) for _label, at, done in recoveries])
        figures = tuple(MarkFigure(label, at - start, None if done is None else done - at)
                        for label, at, done in recoveries)
        latencies = [w.ended - w.started for w in acknowledged]
        return TrafficReport(
            seconds=end - start,
            writes_sent=len(writes),
            writes_acknowledged=len(acknowledged),
            write_failures=dict(Counter(w.outcome for w in writes if not w.acknowledged)),
            reads_sent=len(reads),
            read_failures=_failed_gets(reads),
            pages_sent=len(pages),
            page_failures=_failed_gets(pages),
            slots_skipped=self._skipped,
            longest_write_gap=gap,
            longest_write_gap_from=gap_from - start,
            marks=figures,
            write_latency_median=statistics.median(latencies) if latencies else None,
            write_latency_max=max(latencies, default=None),
        )

    def verify(self, send: Optional[Send] = None, patience: float = 5.0, threads: int = 4) -> Verification:
        """Read every acknowledged write back by its id (through `send`, by default the
        recorder's own), asking again after a 404, a 503 or a transport error for up to
        `patience` seconds: a replica may not have it yet, or the store may be recovering."""
        assert self._ended is not None, "stop() or wait() first"
        read = send or self.send
        writes = [request for request in self.requests if request.acknowledged]
        by_id: dict[int, list[str]] = {}
        for write in writes:
            assert write.entry_id is not None and write.text is not None
            by_id.setdefault(write.entry_id, []).append(write.text)
        acknowledged_id = {text: entry_id for entry_id, texts in by_id.items() for text in texts}

        # Each id: (status text, the text it holds) as last read.
        found: dict[int, tuple[str, Optional[str]]] = {}
        pending = sorted(by_id)
        deadline = time.monotonic() + patience
        with ThreadPoolExecutor(threads) as pool:
            while True:
                for entry_id, answer in zip(pending, pool.map(lambda entry_id: _read_entry(read, entry_id), pending)):
                    found[entry_id] = answer
                pending = [entry_id for entry_id in pending if found[entry_id][1] is None]
                if not pending or time.monotonic() >= deadline:
                    break
                time.sleep(0.2)

        lost: list[Missing] = []
        unreadable: list[Missing] = []
        for entry_id, texts in sorted(by_id.items()):
            status, held = found[entry_id]
            for text in texts:
                if held is None:
                    (lost if status == "404" else unreadable).append(Missing(entry_id, text, status))
                elif held != text:
                    lost.append(Missing(entry_id, text, f"text {held!r}"))
        with self._lock:
            seen = set(self._listed)
        seen |= {(entry_id, held) for entry_id, (_status, held) in found.items() if held is not None}
        misplaced = sorted((Misplaced(text, acknowledged_id[text], seen_id)
                            for seen_id, text in seen if text in acknowledged_id and acknowledged_id[text] != seen_id),
                           key=lambda m: (m.acknowledged_id, m.seen_id))
        return Verification(
            checked=len(writes),
            lost=tuple(lost),
            unreadable=tuple(unreadable),
            duplicate_ids={entry_id: tuple(texts) for entry_id, texts in by_id.items() if len(texts) > 1},
            misplaced=tuple(misplaced),
        )


def _failed_gets(requests: list[Request]) -> dict[str, int]:
    """GETs (reads, page loads) that did not end in a 200 with the expected answer, by outcome."""
    return dict(Counter(r.outcome for r in requests if r.status != 200 or r.error))


def _reason(body: bytes) -> Optional[str]:
    """Why the API refused, from its JSON error, in a form that counts alike across
    hosts and timings: "the journal store refused the request (READONLY)", "the journal
    store is unavailable: redis-#.redis-write...:# did not answer within # s"."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, str):
        return None
    return re.sub(r"\d+(\.\d+)?", "#", error)[:120]


def _entry_of(document: object) -> Optional[tuple[int, str]]:
    """(id, text) of an entry as the API answers it (store.py's {"id", "text", "created"})."""
    if not isinstance(document, dict):
        return None
    entry_id, text = document.get("id"), document.get("text")
    if isinstance(entry_id, int) and not isinstance(entry_id, bool) and isinstance(text, str):
        return entry_id, text
    return None


def _entry(body: bytes) -> Optional[tuple[int, str]]:
    try:
        return _entry_of(json.loads(body))
    except ValueError:
        return None


def _read_entry(send: Send, entry_id: int) -> tuple[str, Optional[str]]:
    """GET /api/<id>: what it answered ("200", "404", "TimeoutError"...) and the text, if any."""
    try:
        status, body = send("GET", f"/api/{entry_id}", None)
    except TRANSPORT_ERRORS as error:
        return type(error).__name__, None
    entry = _entry(body) if status == 200 else None
    if status == 200 and (entry is None or entry[0] != entry_id):
        return f"200 {UNEXPECTED_ANSWER}", None
    return str(status), entry[1] if entry else None
