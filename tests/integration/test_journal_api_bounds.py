"""The journal API as a bounded server (images/journal-api/journal_api/serving.py): slow
clients, floods, oversized heads and SIGTERM, against one real `python3 -m journal_api`
process each, on loopback, with the module's real master and replica.

Every test is bounded in time (its sockets time out) and in count (connections opened
are the API's own bounds and a few more).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import resource
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from support.journal_api_process import HTTP_TIMEOUT, MASTER, Api, Response
from support.redis_nodes import RedisNodes, wait_for

# As in test_journal_api.py: no __pycache__ in the package, as in its image.
_write_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
from journal_api.serving import (  # noqa: E402
    MAX_CONNECTIONS,
    MAX_HEAD_BYTES,
    QUEUED_REQUESTS,
    REQUEST_SECONDS,
    RETRY_AFTER_SECONDS,
    SHUTDOWN_SECONDS,
    WORKERS,
)

sys.dont_write_bytecode = _write_bytecode

pytestmark = pytest.mark.journalapi

SLOW_CLIENTS = 500
#: The process's threads: the loop (its main thread) and the workers; a spare for a
#: Redis name lookup (none here: the hosts are addresses).
MAX_THREADS = WORKERS + 2
#: Resident memory with SLOW_CLIENTS held (about 25 MiB measured; the interpreter and
#: redis-py are most of it).
MAX_RSS_KIB = 64 * 1024
#: How fast a request must be answered while slow clients hold connections.
ANSWER_WITHIN = 2.0
#: A slow client sends a byte this often.
TRICKLE_SECONDS = 0.5
#: Slack on a deadline: the loop checks deadlines every 0.1 s; the rest is scheduling.
DEADLINE_SLACK = 1.0
SLOW_HEAD = b"GET /api HTTP/1.1\r\nHost: journal\r\nX-Slow: "


@pytest.fixture(autouse=True, scope="module")
def enough_descriptors() -> None:
    """The tests hold MAX_CONNECTIONS and more sockets at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * MAX_CONNECTIONS + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


@pytest.fixture
def fresh_api(clean: RedisNodes, tmp_path: Path) -> Iterator[Api]:
    with Api(tmp_path, clean.password_file, [clean.secret], redis_port=clean.master.port) as api:
        yield api


def connect(api: Api) -> socket.socket:
    return socket.create_connection(("127.0.0.1", api.port), timeout=HTTP_TIMEOUT)


def answer_on(sock: socket.socket) -> Response:
    """The answer to the GET a test sent on `sock`."""
    answer = http.client.HTTPResponse(sock, method="GET")
    answer.begin()
    return Response(answer.status, answer.headers, answer.read())


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the API closed its end: EOF (after any answer) or a reset."""
    try:
        while data := sock.recv(65536):
            del data
    except ConnectionResetError:
        pass
    return True


def status_of(api: Api) -> dict[str, str]:
    assert api.proc is not None
    lines = Path(f"/proc/{api.proc.pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def threads_and_rss_kib(api: Api) -> tuple[int, int]:
    status = status_of(api)
    return int(status["Threads"]), int(status["VmRSS"].split()[0])


@contextlib.contextmanager
def slow_clients(api: Api, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections sending a request head one byte every TRICKLE_SECONDS."""
    stop = threading.Event()
    socks: list[socket.socket] = []

    def trickle() -> None:
        while not stop.wait(TRICKLE_SECONDS):
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.send(b"a")

    trickler = threading.Thread(target=trickle, daemon=True)
    try:
        for _ in range(count):
            sock = connect(api)
            socks.append(sock)
            sock.sendall(SLOW_HEAD)
        trickler.start()
        yield socks
    finally:
        stop.set()
        if trickler.is_alive():
            trickler.join(timeout=HTTP_TIMEOUT)
        for sock in socks:
            sock.close()


def timed_request(api: Api, method: str, path: str) -> tuple[int, float]:
    started = time.monotonic()
    response = api.request(method, path)
    return response.status, time.monotonic() - started


def test_slow_clients_cost_no_thread_and_requests_still_answer(fresh_api: Api) -> None:
    api = fresh_api
    api.post_text("listed while slow clients wait")
    with slow_clients(api, SLOW_CLIENTS):
        time.sleep(2 * TRICKLE_SECONDS)  # every slow client has trickled
        for path in ("/api/healthz", "/api"):
            status, elapsed = timed_request(api, "GET", path)
            assert status == 200 and elapsed < ANSWER_WITHIN, (path, status, elapsed)
        threads, rss = threads_and_rss_kib(api)
        assert threads <= MAX_THREADS, f"{threads} threads with {SLOW_CLIENTS} slow clients"
        assert rss <= MAX_RSS_KIB, f"{rss} KiB resident with {SLOW_CLIENTS} slow clients"

        # Up to MAX_CONNECTIONS: the API's own answers above took theirs back.
        with contextlib.ExitStack() as more:
            for _ in range(MAX_CONNECTIONS - SLOW_CLIENTS):
                more.enter_context(connect(api))
            with connect(api) as beyond:
                beyond.sendall(b"GET /api/healthz HTTP/1.1\r\nHost: journal\r\n\r\n")
                refused = answer_on(beyond)
                assert refused.status == 503 and "busy" in refused.error
                assert refused.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    print(f"\n{SLOW_CLIENTS} slow clients: {threads} threads, {rss} KiB resident")


def test_beyond_the_workers_and_their_queue_requests_get_503_with_retry_after(cluster: RedisNodes,
                                                                              tmp_path: Path) -> None:
    with socket.socket() as silent:
        # Redis that accepts and never answers: each request holds its worker 2 s.
        silent.bind((MASTER, 0))
        silent.listen(WORKERS * 2)
        with Api(tmp_path, cluster.password_file, [cluster.secret], write_host=MASTER, read_host=MASTER,
                 redis_port=silent.getsockname()[1]) as api:
            extra = 16
            socks = [connect(api) for _ in range(WORKERS + QUEUED_REQUESTS + extra)]
            held_workers: list[socket.socket] = []
            try:
                # Every worker first takes a request and reaches Redis, where it waits 2 s.
                # Sent all at once, a loaded machine's loop could fill the queue before
                # every worker had taken its first request off it, and refuse more than
                # the bound's excess.
                for sock in socks[:WORKERS]:
                    sock.sendall(b"GET /api HTTP/1.1\r\nHost: journal\r\n\r\n")
                silent.settimeout(ANSWER_WITHIN)
                held_workers.extend(silent.accept()[0] for _ in range(WORKERS))
                started = time.monotonic()
                for sock in socks[WORKERS:]:
                    sock.sendall(b"GET /api HTTP/1.1\r\nHost: journal\r\n\r\n")
                with concurrent.futures.ThreadPoolExecutor(len(socks)) as pool:
                    pending = [pool.submit(lambda sock: (answer_on(sock), time.monotonic() - started), sock)
                               for sock in socks]
                    # The refusals are the first answers; once they are in, every place is
                    # taken and the kubelet's probe must be told the server is alive, not
                    # refused.
                    refused = concurrent.futures.as_completed(pending, timeout=ANSWER_WITHIN)
                    for _ in range(extra):
                        next(refused)
                    with connect(api) as probe:
                        probe.sendall(b"GET /api/healthz HTTP/1.1\r\nHost: journal\r\n\r\n")
                        probed = answer_on(probe)
                    answers = [future.result() for future in pending]
            finally:
                for sock in socks + held_workers:
                    sock.close()
    assert probed.status == 200 and json.loads(probed.body) == {"status": "busy"}, probed.body
    busy = [elapsed for answer, elapsed in answers
            if answer.status == 503 and answer.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
            and "busy" in answer.error]
    unavailable = [answer for answer, _ in answers if answer.status == 503 and "unavailable" in answer.error]
    # The workers and the queue take exactly their bound; every request beyond is
    # refused at once.
    assert len(busy) == extra, [(a.status, a.body) for a, _ in answers]
    assert max(busy) < ANSWER_WITHIN
    assert len(unavailable) == WORKERS + QUEUED_REQUESTS


def test_a_client_trickling_bytes_is_cut_at_its_deadline(fresh_api: Api) -> None:
    with connect(fresh_api) as sock:
        accepted = time.monotonic()
        sock.sendall(b"POST /api HTTP/1.1\r\nHost: journal\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n")
        sock.settimeout(TRICKLE_SECONDS)
        received = b""
        while time.monotonic() - accepted < REQUEST_SECONDS + DEADLINE_SLACK + 1:
            try:
                sock.send(b"x")
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            received += data
            if not data:
                break
        elapsed = time.monotonic() - accepted
    assert REQUEST_SECONDS - DEADLINE_SLACK <= elapsed <= REQUEST_SECONDS + DEADLINE_SLACK, elapsed
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert b"did not arrive in time" in received
    assert fresh_api.request("GET", "/api/healthz").status == 200
    assert " POST /api 408 " in fresh_api.log_text()


HEADS = {
    "101 headers": b"GET /api HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(101)) + b"\r\n",
    "one header over the size": b"GET /api HTTP/1.1\r\nX-Big: " + b"y" * MAX_HEAD_BYTES + b"\r\n\r\n",
    "a request line over the size": b"GET /api?" + b"q" * MAX_HEAD_BYTES + b" HTTP/1.1\r\n\r\n",
}


@pytest.mark.parametrize("case", HEADS)
def test_too_many_or_too_large_headers_get_431_and_free_the_worker(case: str, fresh_api: Api) -> None:
    held = []
    try:
        # More than the workers, each connection left open: were a worker kept by
        # one, the request below would wait for it.
        for _ in range(WORKERS + 8):
            sock = connect(fresh_api)
            held.append(sock)
            sock.sendall(HEADS[case])
            refused = answer_on(sock)
            assert refused.status == 431 and refused.error
            assert refused.headers["Connection"] == "close"
        status, elapsed = timed_request(fresh_api, "GET", "/api/healthz")
        assert status == 200 and elapsed < ANSWER_WITHIN
        assert all(closed_by_server(sock) for sock in held)
    finally:
        for sock in held:
            sock.close()


def test_idle_kept_alive_connections_hold_no_worker_and_make_room_at_the_bound(fresh_api: Api) -> None:
    with contextlib.ExitStack() as stack:
        idle = []
        for _ in range(MAX_CONNECTIONS):
            conn = http.client.HTTPConnection("127.0.0.1", fresh_api.port, timeout=HTTP_TIMEOUT)
            stack.callback(conn.close)
            conn.request("GET", "/api/healthz")
            response = conn.getresponse()
            response.read()
            assert response.status == 200 and not response.will_close
            idle.append(conn)
        threads, _ = threads_and_rss_kib(fresh_api)
        assert threads <= MAX_THREADS
        # At the bound, a new client gets the place of the longest idle one.
        status, elapsed = timed_request(fresh_api, "GET", "/api/healthz")
        assert status == 200 and elapsed < ANSWER_WITHIN
        oldest = idle[0].sock
        assert oldest is not None
        oldest.settimeout(HTTP_TIMEOUT)
        assert oldest.recv(1) == b""
        # The others stay usable.
        idle[-1].request("GET", "/api/healthz")
        assert idle[-1].getresponse().status == 200


def test_sigterm_with_slow_clients_finishes_the_request_in_flight_and_exits_0_in_time(fresh_api: Api,
                                                                                      clean: RedisNodes) -> None:
    api = fresh_api
    assert api.proc is not None
    body = b"in flight at SIGTERM"
    with slow_clients(api, 50) as slow, connect(api) as client:
        client.sendall(b"POST /api HTTP/1.1\r\nHost: journal\r\nContent-Type: text/plain\r\nAuthorization: %s\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (api.authorization().encode(), len(body), body[:5]))
        # Accepted in order: once a later connection is answered, ours is accepted too.
        assert api.request("GET", "/api/healthz").status == 200
        accepted = time.monotonic()
        api.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        wait_for("the API to stop accepting connections", api.refuses_connections)
        client.sendall(body[5:])
        answer = http.client.HTTPResponse(client, method="POST")
        answer.begin()
        assert answer.status == 201
        assert answer.getheader("Connection") == "close"
        entry = json.loads(answer.read())
        assert clean.master.cli("ZCARD", "journal:entries").reply == "1"
        assert entry["text"] == body.decode()

        code = api.proc.wait(timeout=SHUTDOWN_SECONDS + DEADLINE_SLACK)
        stopped = time.monotonic()
        # The slow clients were cut at their deadline, not waited for beyond it.
        assert stopped - accepted <= REQUEST_SECONDS + DEADLINE_SLACK, stopped - accepted
        assert all(closed_by_server(sock) for sock in slow)
    assert code == 0
    assert stopped - signalled <= SHUTDOWN_SECONDS
    log = api.log_text()
    assert "journal-api: stopped" in log and "unfinished" not in log
    assert log.count(" GET /api 408 ") == 50


def test_a_kept_alive_connection_gets_each_answer_without_waiting_for_the_clients_ack(fresh_api: Api) -> None:
    # An answer goes out as its head, then its body. With Nagle's algorithm on, the body
    # waits until the client acknowledges the head, and a client delays that ACK (40 ms on
    # Linux): every answer after a connection's first would take 40 ms more.
    conn = http.client.HTTPConnection("127.0.0.1", fresh_api.port, timeout=HTTP_TIMEOUT)
    try:
        slowest = 0.0
        for _ in range(20):
            started = time.monotonic()
            conn.request("GET", "/api/healthz")
            response = conn.getresponse()
            response.read()
            assert response.status == 200 and not response.will_close
            slowest = max(slowest, time.monotonic() - started)
    finally:
        conn.close()
    assert slowest < 0.035, f"an answer on a kept-alive connection took {slowest * 1000:.0f} ms"
