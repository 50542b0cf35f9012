"""The journal API (images/journal-api/journal_api/, `python3 -m journal_api`) against real Redis servers.

A module-wide master and replica are started by the real launch script
(tests/support/redis_nodes.py), with a password. The API takes one REDIS_PORT for both of
its hosts, as in the cluster where every Redis pod listens on 6379, so the test
nodes share a port and differ by loopback address: the master on 127.0.0.1, its
replica on 127.0.0.2; 127.0.0.3 is a host where nothing listens.

Each API is a real `python -m journal_api` process on a free loopback port,
configured through the environment the Deployment sets. Tests that break a server,
change its password or need another configuration start their own.

Every response any test receives is checked for the Redis password (see
`Api.request`), and so is every log read (see `Api.log_text`). Every wait is
bounded (redis_nodes.DEADLINE, COMMAND_TIMEOUT, HTTP_TIMEOUT).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence

import pytest

from support.journal_api_process import API_SOURCE, ENTRIES, HTTP_TIMEOUT, MASTER, REPLICA, TEXT_PLAIN, Api, Response
from support.redis_nodes import (
    ROOT,
    RedisNodes,
    Node,
    Output,
    Secret,
    base_env,
    free_port,
    read_proc,
    require_binaries,
    run,
    wait_for,
)

# journal_api turns bytecode writing off for the whole interpreter (the image has a
# read-only root filesystem): off for its import here too (no __pycache__ in the
# package, as in the image), then back as it was for the rest of the test run.
_write_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
from journal_api.resp import ReplyError, Unavailable, encode_command, read_reply  # noqa: E402
from journal_api.server import MAX_BODY_BYTES, MAX_TEXT_BYTES  # noqa: E402

sys.dont_write_bytecode = _write_bytecode

pytestmark = pytest.mark.journalapi

NOBODY = "127.0.0.3"
#: "A bounded time" for a request when Redis is unreachable or silent (the API's
#: own Redis timeout is 2 s).
UNAVAILABLE_WITHIN = 5.0
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
#: Everything the API stores, as one redis-cli session prints it.
SNAPSHOT = "ZRANGE journal:entries 0 -1 WITHSCORES\nGET journal:next-id\n"
JSON_TYPE = {"Content-Type": "application/json"}


# --- Redis nodes on loopback aliases -------------------------------------------------


class AliasNode(Node):
    """A node bound to another loopback address, on a port chosen for it."""

    def __init__(self, *args: object, address: str, port: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.address, self.port = address, port

    def launch_env(self) -> dict[str, str]:
        return {**super().launch_env(), "REDIS_BIND": self.address}

    def cli(self, *args: str, auth: bool = True, stdin: Optional[str] = None) -> Output:
        __tracebackhide__ = True
        return run(["redis-cli", "-h", self.address, "-p", str(self.port), *args],
                   secret=self.secret, env=self.cli_env(auth), stdin=stdin)


def master_and_replica() -> RedisNodes:
    """A cluster (not started) of a master on MASTER and its replica on REPLICA, one port."""
    cluster = RedisNodes(replicas=0)
    cluster.replicas.append(AliasNode(cluster.workdir, "redis-1", cluster.secret, cluster.password_file,
                                      master=cluster.master, address=REPLICA, port=cluster.master.port))
    return cluster


def snapshot(node: Node) -> str:
    return node.cli(stdin=SNAPSHOT).stdout


def stored_entries(node: Node) -> list[dict]:
    return [json.loads(member) for member in node.cli("ZRANGE", "journal:entries", "0", "-1").stdout.splitlines()
            if member]


def timed(api: Api, method: str, path: str, body: Optional[bytes] = None,
          headers: Mapping[str, str] = {}) -> tuple[Response, float]:
    started = time.monotonic()
    response = api.request(method, path, body, headers)
    return response, time.monotonic() - started


def write_password(directory: Path, secret: Secret, *, trailing_newline: bool = False) -> Path:
    """The password as the API's Secret volume holds it; replaced atomically, like the kubelet does."""
    directory.mkdir(parents=True, exist_ok=True)
    path, staged = directory / "passwd", directory / ".passwd.new"
    staged.write_text(secret.reveal() + ("\n" if trailing_newline else ""))
    staged.chmod(0o400)
    os.replace(staged, path)
    return path


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisNodes]:
    require_binaries()
    with master_and_replica() as cluster:
        cluster.wait_until_replicas_linked()
        yield cluster


@pytest.fixture(scope="module")
def api(cluster: RedisNodes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with Api(tmp_path_factory.mktemp("api"), cluster.password_file, [cluster.secret],
             redis_port=cluster.master.port) as api:
        yield api


@pytest.fixture
def clean(cluster: RedisNodes) -> RedisNodes:
    """No journal data, on the master and (once it has caught up) on the replica."""
    cluster.master.cli("DEL", "journal:entries", "journal:next-id")
    replica = cluster.replicas[0]
    wait_for("the replica to drop the journal",
             lambda: replica.cli("EXISTS", "journal:entries", "journal:next-id").reply == "0")
    return cluster


def wait_replicated(cluster: RedisNodes, count: int) -> None:
    replica = cluster.replicas[0]
    wait_for(f"{count} entries on the replica",
             lambda: replica.cli("ZCARD", "journal:entries").reply == str(count))


# --- storing and listing ------------------------------------------------------------------


def test_text_plain_and_json_entries_are_stored_and_listed_newest_first(api: Api, clean: RedisNodes) -> None:
    first = api.request("POST", "/api", "first entry".encode(), {"Content-Type": "text/plain"})
    second_text = "second: ünïcode — \"quoted\" <b>x</b>\nline two"
    second = api.request("POST", "/api", json.dumps({"text": second_text}).encode(),
                         {"Content-Type": "application/json; charset=UTF-8"})
    assert (first.status, second.status) == (201, 201), (first.body, second.body)
    created = [first.json, second.json]
    assert [entry["text"] for entry in created] == ["first entry", second_text]
    assert created[0]["id"] < created[1]["id"]
    for response, entry in zip((first, second), created):
        assert set(entry) == {"id", "text", "created"}
        assert isinstance(entry["id"], int)
        assert RFC3339_UTC.fullmatch(entry["created"]), entry["created"]
        assert response.headers["Location"] == f"/api/{entry['id']}"

    assert stored_entries(clean.master) == created
    wait_replicated(clean, 2)
    assert api.listed() == created[::-1]
    location = api.request("GET", second.headers["Location"])
    assert (location.status, location.json) == (200, created[1])


def test_get_lists_exactly_journal_entries_when_there_are_more(api: Api, clean: RedisNodes) -> None:
    ids = [api.post_text(f"entry {n}")["id"] for n in range(ENTRIES + 2)]
    wait_replicated(clean, len(ids))
    listed = api.listed()
    assert [entry["id"] for entry in listed] == ids[::-1][:ENTRIES]
    assert [entry["text"] for entry in listed] == [f"entry {n}" for n in range(ENTRIES + 1, 1, -1)]


def test_reads_go_to_the_read_host_and_writes_to_the_write_host(clean: RedisNodes, tmp_path: Path) -> None:
    secrets = [clean.secret]
    with Api(tmp_path, clean.password_file, secrets, write_host=MASTER, read_host=NOBODY,
             redis_port=clean.master.port) as reads_broken:
        entry = reads_broken.post_text("written while no read host answers")
        assert reads_broken.request("GET", "/api").status == 503
    with Api(tmp_path, clean.password_file, secrets, write_host=NOBODY, read_host=REPLICA,
             redis_port=clean.master.port) as writes_broken:
        wait_replicated(clean, 1)
        assert writes_broken.listed() == [entry]
        assert writes_broken.request("POST", "/api", b"lost", TEXT_PLAIN).status == 503
        assert writes_broken.request("DELETE", f"/api/{entry['id']}").status == 503
    assert stored_entries(clean.master) == [entry]


def test_a_write_redis_refuses_is_503_naming_its_error_class(clean: RedisNodes, tmp_path: Path) -> None:
    before = snapshot(clean.master)
    # A replica as the write host: Redis answers READONLY.
    with Api(tmp_path, clean.password_file, [clean.secret], write_host=REPLICA, read_host=REPLICA,
             redis_port=clean.master.port) as api:
        response = api.request("POST", "/api", b"refused", TEXT_PLAIN)
    assert response.status == 503
    assert "READONLY" in response.error
    assert snapshot(clean.master) == before


# --- deleting -------------------------------------------------------------------------------


def test_delete_removes_one_entry_and_answers_404_or_400_otherwise(api: Api, clean: RedisNodes) -> None:
    a, b, c = (api.post_text(text) for text in ("a", "b", "c"))
    deleted = api.request("DELETE", f"/api/{b['id']}")
    assert (deleted.status, deleted.body) == (204, b"")
    assert stored_entries(clean.master) == [a, c]

    before = snapshot(clean.master)
    for path in (f"/api/{b['id']}", "/api/999999", "/api/0"):
        response = api.request("DELETE", path)
        assert response.status == 404, path
        assert "no entry" in response.error
    for path in ("/api/abc", "/api/-1", "/api/1.5", "/api/1e3", "/api/%31"):
        response = api.request("DELETE", path)
        assert response.status == 400, path
        assert "whole number" in response.error
    assert snapshot(clean.master) == before


# --- bad input ------------------------------------------------------------------------------

LONG_TEXT = "é" * (MAX_TEXT_BYTES // 2) + "x"  # one byte over, in two-byte characters

BAD_REQUESTS = {
    # name: (method, path, headers, body, expected status, words in the error)
    "empty text": ("POST", "/api", TEXT_PLAIN, b"", 400, "empty"),
    "whitespace-only text": ("POST", "/api", TEXT_PLAIN, b" \n\t \r\n", 400, "empty"),
    "whitespace-only JSON text": ("POST", "/api", JSON_TYPE, b'{"text": "  \\n "}', 400, "empty"),
    "text over the limit": ("POST", "/api", TEXT_PLAIN, LONG_TEXT.encode(), 413, "longer than"),
    "JSON text over the limit": ("POST", "/api", JSON_TYPE, json.dumps({"text": LONG_TEXT}).encode(), 413,
                                 "longer than"),
    "body over the limit": ("POST", "/api", TEXT_PLAIN, b"x" * (MAX_BODY_BYTES + 1), 413, "larger than"),
    "huge Content-Length, no body sent": ("POST", "/api", {**TEXT_PLAIN, "Content-Length": str(10**12)}, None,
                                          413, "larger than"),
    "no Content-Length": ("POST", "/api", TEXT_PLAIN, None, 411, "Content-Length"),
    "chunked": ("POST", "/api", {**TEXT_PLAIN, "Transfer-Encoding": "chunked"}, None, 411, "Content-Length"),
    "Content-Length not a number": ("POST", "/api", {**TEXT_PLAIN, "Content-Length": "12abc"}, None, 400,
                                    "Content-Length"),
    "not UTF-8": ("POST", "/api", TEXT_PLAIN, "café".encode("latin-1"), 400, "UTF-8"),
    "invalid JSON": ("POST", "/api", JSON_TYPE, b'{"text": "x"', 400, "JSON"),
    "JSON without text": ("POST", "/api", JSON_TYPE, b'{"body": "x"}', 400, '"text"'),
    "JSON text not a string": ("POST", "/api", JSON_TYPE, b'{"text": 42}', 400, '"text"'),
    "JSON not an object": ("POST", "/api", JSON_TYPE, b'["x"]', 400, '"text"'),
    "JSON lone surrogate": ("POST", "/api", JSON_TYPE, b'{"text": "\\ud800"}', 400, "Unicode"),
    "deeply nested JSON": ("POST", "/api", JSON_TYPE, b"[" * 20000, 400, "JSON"),
    "form content type": ("POST", "/api", {"Content-Type": "application/x-www-form-urlencoded"}, b"text=x", 415,
                          "text/plain"),
    "no content type": ("POST", "/api", {}, b"x", 415, "text/plain"),
    "latin-1 charset": ("POST", "/api", {"Content-Type": "text/plain; charset=iso-8859-1"}, b"x", 415, "utf-8"),
    "unknown path": ("GET", "/nowhere", {}, None, 404, "no such path"),
    "unknown path under /api": ("POST", "/api/1/2", TEXT_PLAIN, b"x", 404, "no such path"),
    "PUT on the collection": ("PUT", "/api", TEXT_PLAIN, b"x", 405, "GET, HEAD, POST"),
    "DELETE on the collection": ("DELETE", "/api", {}, None, 405, "GET, HEAD, POST"),
    "POST on an entry": ("POST", "/api/1", TEXT_PLAIN, b"x", 405, "DELETE, GET, HEAD"),
    "POST on healthz": ("POST", "/api/healthz", TEXT_PLAIN, b"x", 405, "GET, HEAD"),
}
ALLOW = {"PUT on the collection": "GET, HEAD, POST", "DELETE on the collection": "GET, HEAD, POST",
         "POST on an entry": "DELETE, GET, HEAD", "POST on healthz": "GET, HEAD"}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_input_gets_its_4xx_and_changes_nothing(case: str, api: Api, clean: RedisNodes) -> None:
    method, path, headers, body, status, words = BAD_REQUESTS[case]
    api.post_text("already there")
    before = snapshot(clean.master)
    response = api.request(method, path, body, headers)
    assert response.status == status, response.body
    assert words in response.error
    if case in ALLOW:
        assert response.headers["Allow"] == ALLOW[case]
    assert snapshot(clean.master) == before


# --- Redis unavailable ----------------------------------------------------------------------

REDIS_REQUESTS = [("GET", "/api", None), ("POST", "/api", b"lost"), ("GET", "/api/1", None),
                  ("DELETE", "/api/1", None)]


def assert_all_unavailable_in_bounded_time(api: Api) -> None:
    # Concurrently: each waits out its own timeout, and the test stays fast.
    with concurrent.futures.ThreadPoolExecutor(len(REDIS_REQUESTS)) as pool:
        results = list(pool.map(lambda r: timed(api, r[0], r[1], r[2], TEXT_PLAIN), REDIS_REQUESTS))
    for (method, path, _), (response, elapsed) in zip(REDIS_REQUESTS, results):
        assert response.status == 503, (method, path, response.body)
        assert "unavailable" in response.error
        assert elapsed < UNAVAILABLE_WITHIN, f"{method} {path} took {elapsed:.1f} s"
    health, elapsed = timed(api, "GET", "/api/healthz")
    assert (health.status, health.json) == (200, {"status": "ok"})
    assert elapsed < 1.0


def test_503_in_bounded_time_and_healthz_200_when_nothing_listens(cluster: RedisNodes, tmp_path: Path) -> None:
    with Api(tmp_path, cluster.password_file, [cluster.secret], write_host=NOBODY, read_host=NOBODY,
             redis_port=cluster.master.port) as api:
        assert_all_unavailable_in_bounded_time(api)


def test_503_in_bounded_time_when_redis_accepts_but_never_answers(cluster: RedisNodes, tmp_path: Path) -> None:
    with socket.socket() as silent:
        # Connections complete in the backlog and are never read from.
        silent.bind((MASTER, 0))
        silent.listen(16)
        with Api(tmp_path, cluster.password_file, [cluster.secret], write_host=MASTER, read_host=MASTER,
                 redis_port=silent.getsockname()[1]) as api:
            # healthz answers while requests wait on the silent server.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(assert_all_unavailable_in_bounded_time, api)
                time.sleep(0.2)
                health, elapsed = timed(api, "GET", "/api/healthz")
                assert health.status == 200 and elapsed < 1.0
                waiting.result(timeout=HTTP_TIMEOUT)


# --- the password ---------------------------------------------------------------------------


def test_the_api_follows_a_rotated_password(tmp_path: Path) -> None:
    require_binaries()
    with RedisNodes(replicas=0) as cluster:
        master, old, new = cluster.master, cluster.secret, Secret.generate()
        password_file = write_password(tmp_path / "secret", old, trailing_newline=True)
        with Api(tmp_path, password_file, [old, new], write_host=MASTER, read_host=MASTER,
                 redis_port=master.port) as api:
            before = api.post_text("before the rotation")

            # The password changes in Redis first; through stdin, never in argv.
            assert master.cli(stdin=f"CONFIG SET requirepass {new.reveal()}\n").reply == "OK"
            master.secret = new
            # As a Redis restart would, drop the connections the API holds.
            master.cli("CLIENT", "KILL", "TYPE", "normal")
            refused = api.request("POST", "/api", b"while the file is stale", TEXT_PLAIN)
            assert refused.status == 503
            assert "WRONGPASS" in refused.error

            # Then the kubelet updates the file: the API follows, without a restart.
            write_password(tmp_path / "secret", new, trailing_newline=True)
            after = api.post_text("after the rotation")
            assert api.listed() == [after, before]
            assert api.proc.poll() is None
            api.log_text()  # asserts neither password is in the log


def test_the_password_is_in_no_response_log_argv_or_environment(api: Api, cluster: RedisNodes,
                                                                tmp_path: Path) -> None:
    api.post_text("an entry")
    api.request("GET", "/api")
    api.request("POST", "/api", b"\xff", TEXT_PLAIN)
    for name in ("cmdline", "environ"):
        text, leaked = read_proc(api.proc.pid, name, cluster.secret)
        assert not leaked, f"/proc/<api>/{name} contains the password"
    assert "REDIS_PASSWORD_FILE=" in read_proc(api.proc.pid, "environ", cluster.secret)[0]

    wrong = Secret.generate()
    with Api(tmp_path, write_password(tmp_path / "wrong", wrong), [cluster.secret, wrong],
             redis_port=cluster.master.port) as misconfigured:
        refused = misconfigured.request("POST", "/api", b"x", TEXT_PLAIN)
        assert refused.status == 503 and "WRONGPASS" in refused.error
        assert misconfigured.request("GET", "/api").status == 503
        log = misconfigured.log_text()  # asserts neither password is in the log
    assert re.search(r"POST /api 503 \d+\.\dms", log), log

    log = api.log_text()
    assert re.search(r"^127\.0\.0\.1 POST /api 201 \d+\.\dms$", log, re.M), log
    assert re.search(r"^127\.0\.0\.1 POST /api 400 \d+\.\dms$", log, re.M), log
    assert "an entry" not in log, "request bodies are not logged"


# --- the process ----------------------------------------------------------------------------


def test_sigterm_finishes_the_request_in_flight_and_exits_0(clean: RedisNodes, tmp_path: Path) -> None:
    api = Api(tmp_path, clean.password_file, [clean.secret], redis_port=clean.master.port).start()
    try:
        body = b"in flight at SIGTERM"
        with socket.create_connection(("127.0.0.1", api.port), timeout=HTTP_TIMEOUT) as client:
            client.sendall(b"POST /api HTTP/1.1\r\nHost: journal\r\nContent-Type: text/plain\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:5]))
            # The request is in flight once a thread serves it (the main thread only accepts).
            wait_for("a thread serving the request",
                     lambda: len(os.listdir(f"/proc/{api.proc.pid}/task")) > 1)
            api.proc.send_signal(signal.SIGTERM)

            def refuses_connections() -> bool:
                try:
                    socket.create_connection(("127.0.0.1", api.port), timeout=1).close()
                except ConnectionRefusedError:
                    return True
                return False

            wait_for("the API to stop accepting connections", refuses_connections)
            client.sendall(body[5:])
            answer = http.client.HTTPResponse(client)
            answer.begin()
            assert answer.status == 201
            entry = json.loads(answer.read())
        assert api.proc.wait(timeout=HTTP_TIMEOUT) == 0
        assert stored_entries(clean.master) == [entry]
        assert "journal-api: stopped" in api.log_text()
    finally:
        api.stop(signal.SIGKILL)


def test_runs_as_a_non_root_user_that_can_write_nothing(clean: RedisNodes, tmp_path: Path) -> None:
    """As in the pod: another uid, the code in a directory it cannot write to."""
    top = Path(tempfile.mkdtemp(prefix="journal-api-"))
    try:
        top.chmod(0o755)  # for the other uid to get in; the directory stays root's
        shutil.copytree(API_SOURCE / "journal_api", top / "journal_api",
                        ignore=shutil.ignore_patterns("__pycache__"))
        password_file = write_password(top / "secret", clean.secret)
        if os.geteuid() == 0:
            os.chown(password_file, 10001, 10001)
            prefix = ["setpriv", "--reuid=10001", "--regid=10001", "--clear-groups"]
        else:  # already unprivileged: take away the write permission instead
            prefix = []
            for path in (top / "journal_api", top):
                path.chmod(0o555)
        files_before = sorted(str(p) for p in top.rglob("*"))
        with Api(tmp_path, password_file, [clean.secret], redis_port=clean.master.port, cwd=top,
                 prefix=prefix) as api:
            uid = read_proc(api.proc.pid, "status", clean.secret)[0].split("Uid:")[1].split()[0]
            assert uid == str(os.geteuid() or 10001)
            entry = api.post_text("from an unprivileged process")
            wait_replicated(clean, 1)
            assert api.listed() == [entry]
        assert sorted(str(p) for p in top.rglob("*")) == files_before
    finally:
        for path in (top / "journal_api", top):
            with contextlib.suppress(OSError):
                path.chmod(0o755)
        shutil.rmtree(top, ignore_errors=True)


def test_a_bad_environment_stops_the_api_with_every_error(tmp_path: Path) -> None:
    env = {**base_env(), "PYTHONDONTWRITEBYTECODE": "1", "REDIS_READ_HOST": REPLICA, "JOURNAL_ENTRIES": "0",
           "REDIS_PORT": "http"}
    result = subprocess.run([sys.executable, "-m", "journal_api"], cwd=API_SOURCE, env=env, capture_output=True,
                            text=True, timeout=HTTP_TIMEOUT)
    assert result.returncode == 2
    for words in ("REDIS_WRITE_HOST must be set", "JOURNAL_ENTRIES must be a whole number from 1 to 10000",
                  "REDIS_PORT must be a whole number from 1 to 65535"):
        assert words in result.stderr


# --- the RESP2 client -------------------------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [
    (b"+OK\r\n", "OK"),
    (b":-42\r\n", -42),
    (b"$7\r\nab\r\ncd\xff\r\n", b"ab\r\ncd\xff"),  # a bulk string is read by length, CRLF and all
    (b"$0\r\n\r\n", b""),
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"*3\r\n$1\r\na\r\n:7\r\n*2\r\n$-1\r\n*0\r\n", [b"a", 7, [None, []]]),
])
def test_resp_parses_each_reply_type(raw: bytes, expected: object) -> None:
    stream = io.BytesIO(raw + b"+NEXT\r\n")
    assert read_reply(stream) == expected
    assert read_reply(stream) == "NEXT", "the reply was not consumed exactly"


def test_resp_returns_error_replies_with_their_class_and_keeps_the_stream_in_step() -> None:
    stream = io.BytesIO(b"*2\r\n-READONLY You can't write against a read only replica.\r\n:1\r\n"
                        b"-OOM command not allowed\r\n")
    first, second = read_reply(stream)
    assert isinstance(first, ReplyError) and first.kind == "READONLY"
    assert second == 1
    assert read_reply(stream).kind == "OOM"


@pytest.mark.parametrize("raw", [b"", b"+OK", b"$5\r\nabc\r\n", b"$3\r\nabcXY", b"?\r\n", b"$x\r\n", b"*-2\r\n"])
def test_resp_rejects_truncated_or_malformed_replies(raw: bytes) -> None:
    with pytest.raises(Unavailable):
        read_reply(io.BytesIO(raw))


def test_resp_encodes_commands_as_arrays_of_bulk_strings() -> None:
    assert encode_command("ZADD", "k", 3, b"\xff\r\n") == (
        b"*4\r\n$4\r\nZADD\r\n$1\r\nk\r\n$1\r\n3\r\n$3\r\n\xff\r\n\r\n")
