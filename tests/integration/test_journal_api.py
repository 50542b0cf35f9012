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
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional

import pytest

from support.journal_api_process import (
    API_PYTHON,
    API_SOURCE,
    ENTRIES,
    HTTP_TIMEOUT,
    MASTER,
    REPLICA,
    TEXT_PLAIN,
    Api,
    Response,
    require_api_python,
)
from support.redis_sentinels import SENTINEL_DEADLINE, Sentinels
from support.redis_nodes import (
    RedisNodes,
    Node,
    Secret,
    base_env,
    free_port,
    read_proc,
    require_binaries,
    stopped,
    wait_for,
)

# journal_api turns bytecode writing off for the whole interpreter (the image has a
# read-only root filesystem): off for its import here too (no __pycache__ in the
# package, as in the image), then back as it was for the rest of the test run.
_write_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
from journal_api.entries import MAX_STORED_BYTES, MAX_TEXT_BYTES  # noqa: E402
from journal_api.server import MAX_BODY_BYTES  # noqa: E402

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


def snapshot(node: Node) -> str:
    return node.cli(stdin=SNAPSHOT).stdout


def stored_members(node: Node) -> list[bytes]:
    """The journal's members as Redis holds them, in UTF-8."""
    # One member a line: split on "\n" only (JSON escapes it; U+2028 and the like stay raw).
    return [member.encode() for member in node.cli("ZRANGE", "journal:entries", "0", "-1").stdout.split("\n")
            if member]


def stored_entries(node: Node) -> list[dict]:
    return [json.loads(member) for member in stored_members(node)]


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


# --- replication ----------------------------------------------------------------------


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


@contextlib.contextmanager
def forwarding_later(address: tuple[str, int], to: tuple[str, int], after: float) -> Iterator[None]:
    """`address` refuses connections for `after` seconds, then forwards each to `to`."""
    def pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def serve(listener: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                server = socket.create_connection(to)
                for source, sink in ((client, server), (server, client)):
                    threading.Thread(target=pump, args=(source, sink), daemon=True).start()

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(address)
    timer = threading.Timer(after, lambda: (listener.listen(16), threading.Thread(target=serve, args=(listener,), daemon=True).start()))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        listener.close()


def test_a_write_that_cannot_connect_at_first_is_made_once_the_store_answers(clean: RedisNodes, tmp_path: Path) -> None:
    # A new pod's first request may meet its network half set up (a name not resolving
    # yet, a policy not yet programmed): nothing was sent, so it is tried again shortly.
    with Api(tmp_path, clean.password_file, [clean.secret], write_host="127.0.0.4", read_host=MASTER,
             redis_port=clean.master.port) as api:
        with forwarding_later(("127.0.0.4", clean.master.port), (MASTER, clean.master.port), after=0.15):
            posted = api.request("POST", "/api", b"after a refused connection", TEXT_PLAIN)
            assert posted.status == 201, posted.body
    assert posted.json in stored_entries(clean.master)


def test_a_write_redis_refuses_is_503_naming_its_error_class(clean: RedisNodes, tmp_path: Path) -> None:
    before = snapshot(clean.master)
    # A replica as the write host: Redis answers READONLY.
    with Api(tmp_path, clean.password_file, [clean.secret], write_host=REPLICA, read_host=REPLICA,
             redis_port=clean.master.port) as api:
        response = api.request("POST", "/api", b"refused", TEXT_PLAIN)
    assert response.status == 503
    assert "READONLY" in response.error
    assert snapshot(clean.master) == before


def test_concurrent_writes_get_unique_ids_and_are_all_stored(api: Api, clean: RedisNodes) -> None:
    # Each add is a transaction that WATCHes the counter: one that lost the race runs again.
    texts = [f"concurrent {n}" for n in range(40)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        entries = list(pool.map(api.post_text, texts))
    assert [entry["text"] for entry in entries] == texts
    ids = sorted(entry["id"] for entry in entries)
    assert ids == list(range(1, len(texts) + 1)), "unique, and no id lost to a race"
    assert sorted(stored_entries(clean.master), key=lambda e: e["id"]) == sorted(entries, key=lambda e: e["id"])


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


#: What every stored member adds to its text, with a 15-digit id: {"created":"<24>","id":<15>,"text":"..."}.
STORED_ENVELOPE_BYTES = 69
#: Stored as a 6-byte escape (\u0001) each.
CONTROL = "\x01"


@pytest.mark.parametrize("content_type", ["text/plain", "application/json"])
def test_an_entry_stored_over_the_cap_is_413_naming_it_and_changes_nothing(content_type: str, api: Api,
                                                                          clean: RedisNodes) -> None:
    # 1600 bytes sent as text, 9600 as stored (JSON spells each as \u0001).
    text = CONTROL * 1600
    body = text.encode() if content_type == "text/plain" else json.dumps({"text": text}).encode()
    api.post_text("already there")
    before = snapshot(clean.master)
    refused = api.request("POST", "/api", body, {"Content-Type": content_type})
    assert refused.status == 413, refused.body
    assert f"would take {1600 * 6 + STORED_ENVELOPE_BYTES} bytes as stored, more than {MAX_STORED_BYTES}" \
        in refused.error
    assert snapshot(clean.master) == before


def test_the_cap_counts_the_stored_form_to_the_byte(api: Api, clean: RedisNodes) -> None:
    controls = 1400
    filler = MAX_STORED_BYTES - STORED_ENVELOPE_BYTES - 6 * controls
    at_the_cap = CONTROL * controls + "x" * filler
    assert api.request("POST", "/api", (at_the_cap + "x").encode(), TEXT_PLAIN).status == 413
    entry = api.post_text(at_the_cap)
    (member,) = stored_members(clean.master)
    # Measured with the longest id: this one is shorter by its missing digits.
    assert len(member) == MAX_STORED_BYTES - (15 - len(str(entry["id"])))
    assert json.loads(member)["text"] == at_the_cap


#: Texts of MAX_TEXT_BYTES that escape the most without other control characters, and
#: one of non-ASCII characters, which are stored as they are.
WITHIN_THE_CAP = {
    "quotes": '"' * MAX_TEXT_BYTES,
    "backslashes": "\\" * MAX_TEXT_BYTES,
    "tabs and line breaks": "x\t\n\r" * (MAX_TEXT_BYTES // 4),
    "two-byte characters": "é" * (MAX_TEXT_BYTES // 2),
}


@pytest.mark.parametrize("case", WITHIN_THE_CAP)
def test_any_text_within_the_limit_without_other_control_characters_is_stored(case: str, api: Api,
                                                                              clean: RedisNodes) -> None:
    text = WITHIN_THE_CAP[case]
    entry = api.post_text(text)
    assert entry["text"] == text
    (member,) = stored_members(clean.master)
    assert len(member) <= MAX_STORED_BYTES
    if case == "two-byte characters":
        assert len(member) == len(text.encode()) + STORED_ENVELOPE_BYTES - (15 - len(str(entry["id"]))), \
            "non-ASCII is stored as itself, not as \\u escapes"


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


@pytest.mark.parametrize("writes", ["direct", "through Sentinel"])
def test_503_in_bounded_time_and_healthz_200_when_nothing_listens(writes: str, cluster: RedisNodes,
                                                                  tmp_path: Path) -> None:
    sentinels = {"REDIS_SENTINELS": f"{NOBODY}:1 {NOBODY}:2 {NOBODY}:3"} if writes != "direct" else {}
    with Api(tmp_path, cluster.password_file, [cluster.secret], write_host=NOBODY, read_host=NOBODY,
             redis_port=cluster.master.port, extra_env=sentinels) as api:
        assert_all_unavailable_in_bounded_time(api)
        if sentinels:
            response = api.request("POST", "/api", b"lost", TEXT_PLAIN)
            assert "no Sentinel names a master for 'journal'" in response.error, response.body


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
        master, old, new = cluster.master, cluster.users.passwords["journal"], Secret.generate()
        password_file = write_password(tmp_path / "secret", old, trailing_newline=True)
        with Api(tmp_path, password_file, [old, new], write_host=MASTER, read_host=MASTER,
                 redis_port=master.port) as api:
            before = api.post_text("before the rotation")

            # The journal user's password changes in Redis first; through stdin, never in argv.
            assert master.cli(stdin=f"ACL SETUSER journal resetpass >{new.reveal()}\n").reply == "OK"
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


def test_a_password_file_still_empty_is_read_again_when_redis_refuses_it(clean: RedisNodes,
                                                                tmp_path: Path) -> None:
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    (secret_dir / "passwd").write_text("")  # the Secret not filled in yet
    with Api(tmp_path, secret_dir / "passwd", [clean.secret], redis_port=clean.master.port) as api:
        refused = api.request("POST", "/api", b"before the password", TEXT_PLAIN)
        # With a user, AUTH goes with the empty password, and is refused.
        assert refused.status == 503 and "(WRONGPASS)" in refused.error, refused.body
        write_password(secret_dir, clean.users.passwords["journal"])
        entry = api.post_text("once the file holds it")
        assert stored_entries(clean.master) == [entry]
        api.log_text()  # asserts the password is not in the log


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


# --- who may write ----------------------------------------------------------------------------

BEARER_REALM = 'Bearer realm="journal"'
#: name: (what a write sends as Authorization, or None for no header; what WWW-Authenticate says)
REFUSED_CREDENTIALS = {
    "no credential": (None, BEARER_REALM),
    "a wrong credential": (f"Bearer {Secret.generate().reveal()}", f'{BEARER_REALM}, error="invalid_token"'),
    "another scheme": ("Basic am91cm5hbDpqb3VybmFs", BEARER_REALM),
    "an empty bearer": ("Bearer ", f'{BEARER_REALM}, error="invalid_token"'),
}


@pytest.mark.parametrize("case", REFUSED_CREDENTIALS)
def test_a_write_without_the_credential_is_401_and_changes_nothing(case: str, api: Api, clean: RedisNodes) -> None:
    authorization, challenge = REFUSED_CREDENTIALS[case]
    headers = {"Authorization": authorization} if authorization is not None else {}
    entry = api.post_text("already there")
    before = snapshot(clean.master)
    for method, path, body in (("POST", "/api", b"not from the journal's writers"),
                               ("DELETE", f"/api/{entry['id']}", None)):
        refused = api.request(method, path, body, {**TEXT_PLAIN, **headers}, authorized=False)
        assert refused.status == 401, (method, refused.body)
        assert refused.headers["WWW-Authenticate"] == challenge
        assert "credential" in refused.error
    assert snapshot(clean.master) == before


def test_the_right_credential_writes_and_anyone_reads(api: Api, clean: RedisNodes) -> None:
    added = api.request("POST", "/api", b"by a writer", {**TEXT_PLAIN, "Authorization": api.authorization()},
                        authorized=False)
    assert added.status == 201, added.body
    entry = added.json
    # The scheme is case-insensitive (RFC 9110, 11.1).
    lowercase = api.authorization().replace("Bearer", "bearer", 1)
    assert api.request("POST", "/api", b"by a writer too", {**TEXT_PLAIN, "Authorization": lowercase},
                       authorized=False).status == 201
    wait_replicated(clean, 2)
    for path in ("/api", f"/api/{entry['id']}"):
        assert api.request("GET", path, authorized=False).status == 200, path
    deleted = api.request("DELETE", f"/api/{entry['id']}", headers={"Authorization": api.authorization()},
                          authorized=False)
    assert deleted.status == 204, deleted.body
    assert [stored["text"] for stored in stored_entries(clean.master)] == ["by a writer too"]


def test_the_credential_is_in_no_response_log_argv_or_environment(api: Api, clean: RedisNodes) -> None:
    wrong = Secret.generate()
    api.secrets.append(wrong)  # Api.request and Api.log_text assert neither shows
    try:
        api.post_text("written with the credential")
        assert api.request("POST", "/api", b"x", {**TEXT_PLAIN, "Authorization": f"Bearer {wrong.reveal()}"},
                           authorized=False).status == 401
        assert api.request("DELETE", "/api/1", headers={"Authorization": f"Bearer {wrong.reveal()}"},
                           authorized=False).status == 401
        for name in ("cmdline", "environ"):
            text, leaked = read_proc(api.proc.pid, name, api.write_credential)
            assert not leaked, f"/proc/<api>/{name} contains the write credential"
        assert f"WRITE_CREDENTIAL_FILE={api.write_credential_file}" in read_proc(api.proc.pid, "environ",
                                                                                 api.write_credential)[0]
        log = api.log_text()
        assert re.search(r"^127\.0\.0\.1 POST /api 401 \d+\.\dms$", log, re.M), log
        assert re.search(r"^127\.0\.0\.1 DELETE /api/1 401 \d+\.\dms$", log, re.M), log
    finally:
        api.secrets.remove(wrong)


def kubelet_secret_volume(directory: Path, key: str, secret: Secret) -> Path:
    """`key` of a Secret volume, updated as the kubelet does: the files go into a new
    directory, and the `..data` link moves to it in one rename; `key` itself is a link
    through `..data`, so the path never changes and never dangles."""
    directory.mkdir(parents=True, exist_ok=True)
    version = directory / f"..{time.monotonic_ns()}"
    version.mkdir()
    secret.write_to(version / key)
    staged = directory / "..data_tmp"
    staged.symlink_to(version.name)
    os.replace(staged, directory / "..data")
    path = directory / key
    if not path.is_symlink():
        path.symlink_to(f"..data/{key}")
    return path


def test_a_rotated_credential_takes_effect_without_a_restart(clean: RedisNodes, tmp_path: Path) -> None:
    old, new = Secret.generate(), Secret.generate()
    volume = tmp_path / "write-credential"
    path = kubelet_secret_volume(volume, "credential", old)
    with Api(tmp_path, clean.password_file, [clean.secret, old, new], redis_port=clean.master.port,
             extra_env={"WRITE_CREDENTIAL_FILE": str(path)}) as api:
        api.write_credential = old
        before = api.post_text("with the credential before the rotation")

        kubelet_secret_volume(volume, "credential", new)
        stale = api.request("POST", "/api", b"with the old credential", TEXT_PLAIN)
        assert stale.status == 401 and "rotated" in stale.error, stale.body
        api.write_credential = new
        after = api.post_text("with the new credential")
        assert stored_entries(clean.master) == [before, after]
        assert api.proc.poll() is None
        api.log_text()  # asserts neither credential is in the log


@pytest.mark.parametrize("credential_file", ["missing", "empty"])
def test_without_a_readable_credential_every_write_is_refused_and_reads_go_on(
        credential_file: str, api: Api, clean: RedisNodes, tmp_path: Path) -> None:
    path = tmp_path / "credential"
    if credential_file == "empty":
        path.write_text("")
    entry = api.post_text("before")
    with Api(tmp_path, clean.password_file, [clean.secret], redis_port=clean.master.port,
             extra_env={"WRITE_CREDENTIAL_FILE": str(path)}) as misconfigured:
        for method, target, body in (("POST", "/api", b"x"), ("DELETE", f"/api/{entry['id']}", None)):
            for authorization in ("Bearer ", misconfigured.authorization()):
                refused = misconfigured.request(method, target, body, {**TEXT_PLAIN, "Authorization": authorization},
                                                authorized=False)
                assert refused.status == 503, refused.body
                assert "write credential file" in refused.error
        wait_replicated(clean, 1)
        assert misconfigured.listed() == [entry]


# --- how fast a client may write ---------------------------------------------------------------


def test_writes_beyond_the_burst_get_429_with_retry_after_and_the_rate_brings_them_back(
        clean: RedisNodes, tmp_path: Path) -> None:
    with Api(tmp_path, clean.password_file, [clean.secret], redis_port=clean.master.port,
             extra_env={"WRITES_PER_MINUTE": "60", "WRITE_BURST": "3"}) as api:
        entries = [api.post_text(f"within the burst {n}") for n in range(3)]
        before = snapshot(clean.master)
        for method, path, body in (("POST", "/api", b"one too many"), ("DELETE", f"/api/{entries[0]['id']}", None)):
            refused = api.request(method, path, body, TEXT_PLAIN)
            assert refused.status == 429, (method, refused.body)
            assert refused.headers["Retry-After"] == "1"
            assert refused.error == "too many writes from 127.0.0.1: 60 a minute, 3 at once; try again in 1 s"
        assert snapshot(clean.master) == before
        assert api.request("GET", "/api").status == 200, "reads are not counted"
        time.sleep(1)  # as Retry-After said
        assert api.post_text("a second later")["text"] == "a second later"
        assert " POST /api 429 " in api.log_text()


def test_each_client_has_its_budget_by_the_last_forwarded_address_and_refused_writes_spend_it(
        clean: RedisNodes, tmp_path: Path) -> None:
    # One write a minute: nothing comes back during the test.
    with Api(tmp_path, clean.password_file, [clean.secret], redis_port=clean.master.port,
             extra_env={"WRITES_PER_MINUTE": "1", "WRITE_BURST": "2"}) as api:
        def write(forwarded_for: Optional[str], authorized: bool = False) -> int:
            headers = {**TEXT_PLAIN, **({"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {})}
            return api.request("POST", "/api", b"a write", headers, authorized=authorized).status

        # Two guesses at the credential spend the client's burst; the credential buys no more.
        assert [write("203.0.113.7"), write("203.0.113.7"), write("203.0.113.7", authorized=True)] == [401, 401, 429]
        # The entries before the last are the client's own words, and name no one else.
        assert write("198.51.100.9, 203.0.113.7") == 429
        assert write("203.0.113.7, 198.51.100.9", authorized=True) == 201
        assert write("2001:db8::7") == 401
        assert write("2001:DB8:0::7") == 401, "one address, however it is spelt"
        assert write("2001:db8::7") == 429
        # Without the header, or with a last entry that is no address (not the edge's),
        # the connection's peer counts.
        assert [write(None), write("unknown"), write(None)] == [401, 401, 429]


def test_without_settings_a_client_writes_20_at_once_then_one_a_second(clean: RedisNodes, tmp_path: Path) -> None:
    # Empty: the image's defaults (refused for their credential, these writes touch no Redis).
    with Api(tmp_path, clean.password_file, [clean.secret], redis_port=clean.master.port,
             extra_env={"WRITES_PER_MINUTE": "", "WRITE_BURST": ""}) as api:
        started = time.monotonic()
        statuses = [api.request("POST", "/api", b"x", TEXT_PLAIN, authorized=False).status for _ in range(25)]
        elapsed = time.monotonic() - started
    assert statuses[:20] == [401] * 20
    assert 429 in statuses and statuses.count(401) <= 20 + elapsed + 1, (statuses, elapsed)


# --- the process ----------------------------------------------------------------------------


def test_sigterm_finishes_the_request_in_flight_and_exits_0(clean: RedisNodes, tmp_path: Path) -> None:
    api = Api(tmp_path, clean.password_file, [clean.secret], redis_port=clean.master.port).start()
    try:
        body = b"in flight at SIGTERM"
        with socket.create_connection(("127.0.0.1", api.port), timeout=HTTP_TIMEOUT) as client:
            client.sendall(b"POST /api HTTP/1.1\r\nHost: journal\r\nContent-Type: text/plain\r\nAuthorization: %s\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (api.authorization().encode(), len(body), body[:5]))
            # Accepted in order: once a later connection is answered, ours is accepted too.
            assert api.request("GET", "/api/healthz").status == 200
            api.proc.send_signal(signal.SIGTERM)

            wait_for("the API to stop accepting connections", api.refuses_connections)
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
        password_file = write_password(top / "secret", clean.users.passwords["journal"])
        root = os.geteuid() == 0
        prefix = ["setpriv", "--reuid=10001", "--regid=10001", "--clear-groups"] if root else []
        api = Api(tmp_path, password_file, [clean.secret], redis_port=clean.master.port, cwd=top,
                  prefix=prefix, credential_dir=top / "secret")
        if root:
            for secret_file in (password_file, api.write_credential_file):
                os.chown(secret_file, 10001, 10001)
        else:  # already unprivileged: take away the write permission instead
            for path in (top / "journal_api", top):
                path.chmod(0o555)
        files_before = sorted(str(p) for p in top.rglob("*"))
        with api:
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


BAD_ENVIRONMENTS = {
    # name: (environment, words each expected in the errors)
    "hosts and numbers": (
        {"REDIS_READ_HOST": REPLICA, "JOURNAL_ENTRIES": "0", "REDIS_PORT": "http"},
        ("REDIS_WRITE_HOST must be set", "JOURNAL_ENTRIES must be a whole number from 1 to 10000",
         "REDIS_PORT must be a whole number from 1 to 65535"),
    ),
    "Sentinel and acknowledgements": (
        {"REDIS_READ_HOST": REPLICA, "REDIS_SENTINELS": "127.0.0.1:26379 sentinel-1 sentinel-2:70000",
         "REDIS_MASTER_NAME": "journal master", "REDIS_MIN_REPLICA_ACKS": "-1", "REDIS_ACK_TIMEOUT_MS": "0"},
        ("REDIS_SENTINELS must be host:port addresses separated by spaces, got 'sentinel-1'",
         "REDIS_SENTINELS must be host:port addresses separated by spaces, got 'sentinel-2:70000'",
         "REDIS_MASTER_NAME must be 1 to 64 letters", "REDIS_MIN_REPLICA_ACKS must be a whole number from 0 to 100",
         "REDIS_ACK_TIMEOUT_MS must be a whole number from 1 to 60000"),
    ),
    "write limits": (
        {"REDIS_READ_HOST": REPLICA, "REDIS_WRITE_HOST": MASTER, "WRITES_PER_MINUTE": "0", "WRITE_BURST": "many"},
        ("WRITES_PER_MINUTE must be a whole number from 1 to 60000",
         "WRITE_BURST must be a whole number from 1 to 10000"),
    ),
}


@pytest.mark.parametrize("case", BAD_ENVIRONMENTS)
def test_a_bad_environment_stops_the_api_with_every_error(case: str) -> None:
    variables, expected = BAD_ENVIRONMENTS[case]
    env = {**base_env(), "PYTHONDONTWRITEBYTECODE": "1", **variables}
    require_api_python()
    result = subprocess.run([API_PYTHON, "-m", "journal_api"], cwd=API_SOURCE, env=env, capture_output=True,
                            text=True, timeout=HTTP_TIMEOUT)
    assert result.returncode == 2
    for words in expected:
        assert words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 + len(expected), result.stderr


def test_without_redis_py_the_api_says_what_to_install(cluster: RedisNodes, tmp_path: Path) -> None:
    # -S: no site-packages, so no redis module, as in an image built without python3-redis.
    api = Api(tmp_path, cluster.password_file, [cluster.secret], redis_port=cluster.master.port)
    api.port = free_port()
    result = subprocess.run([API_PYTHON, "-S", "-m", "journal_api"], cwd=API_SOURCE, env=api.env(),
                            capture_output=True, text=True, timeout=HTTP_TIMEOUT)
    assert result.returncode == 1
    assert "python3-redis" in result.stderr and "Traceback" not in result.stderr, result.stderr


# --- what the client makes of Redis's replies ---------------------------------------------------

#: Texts that read like the protocol itself: sent and read back by length, byte for byte.
PROTOCOL_LOOKALIKES = {
    "CRLF inside": "ab\r\ncd",
    "a bulk string header": "$7\r\nab\r\ncd\r\n",
    "null replies": "$-1\r\n*-1\r\n",
    "an error reply": "-READONLY You can't write\r\n+OK\r\n:1\r\n",
    "an array": "*3\r\n$1\r\na\r\n:7\r\n*2\r\n$-1\r\n*0\r\n",
    "NUL and non-ASCII": "nul \x00 ÿ \u2028 end",
}


@pytest.mark.parametrize("case", PROTOCOL_LOOKALIKES)
def test_text_that_reads_like_the_protocol_is_stored_and_read_back_exactly(case: str, api: Api,
                                                                            clean: RedisNodes) -> None:
    text = PROTOCOL_LOOKALIKES[case]
    response = api.request("POST", "/api", json.dumps({"text": text}).encode(), JSON_TYPE)
    assert response.status == 201, response.body
    entry = response.json
    assert entry["text"] == text
    assert stored_entries(clean.master) == [entry]
    wait_replicated(clean, 1)
    assert api.listed() == [entry]
    assert api.request("GET", f"/api/{entry['id']}").json == entry
    assert api.post_text("the next one")["id"] == entry["id"] + 1, "the connection stayed in step"


def api_connections(node: Node) -> set[str]:
    """The ids of the node's normal client connections, less redis-cli's own."""
    ids = set()
    for line in node.cli("CLIENT", "LIST", "TYPE", "normal").stdout.splitlines():
        fields = dict(field.partition("=")[::2] for field in line.split())
        if fields.get("cmd") != "client|list":
            ids.add(fields["id"])
    return ids


def test_a_refusal_is_503_naming_its_error_class_and_the_connection_stays_usable(clean: RedisNodes,
                                                                                tmp_path: Path) -> None:
    master = clean.master
    with Api(tmp_path, clean.password_file, [clean.secret], redis_port=master.port) as api:
        first = api.post_text("before")
        connections = api_connections(master)
        assert connections, "the API keeps its connection to the master"
        # Over its memory limit, Redis refuses the transaction's commands as they are queued.
        assert master.cli("CONFIG", "SET", "maxmemory", "1").reply == "OK"
        try:
            refused = api.request("POST", "/api", b"over the memory limit", TEXT_PLAIN)
            deleted = api.request("DELETE", f"/api/{first['id']}")
        finally:
            assert master.cli("CONFIG", "SET", "maxmemory", str(master.maxmemory)).reply == "OK"
        assert refused.status == 503 and "(OOM)" in refused.error, refused.body
        assert "Location" not in refused.headers
        # ZREMRANGEBYSCORE frees memory: Redis lets it through.
        assert deleted.status == 204
        second = api.post_text("after")
        assert second["id"] > first["id"]
        assert stored_entries(master) == [second]
        assert api_connections(master) <= connections, "the refusals cost the API no connection"


@contextlib.contextmanager
def scripted_redis(answer: bytes) -> Iterator[int]:
    """A server on MASTER (its port yielded) that answers the first command of each
    connection with `answer`, then closes the connection."""
    listener = socket.socket()
    listener.bind((MASTER, 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(HTTP_TIMEOUT)
                with contextlib.suppress(OSError):
                    if conn.recv(65536):
                        conn.sendall(answer)

    server = threading.Thread(target=serve, name="scripted redis", daemon=True)
    server.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        server.join(HTTP_TIMEOUT)
        listener.close()


@pytest.mark.parametrize("answer", [
    b"",  # the connection closed at once
    b"+OK",  # a line cut short
    b"$5\r\nabc",  # a bulk string cut short
    b"*2\r\n+OK\r\n",  # an array cut short
    b"?\r\n",  # no such reply type
    b"$x\r\n",  # a length that is no number
    b":12abc\r\n",  # an integer that is none
])
def test_an_unreadable_reply_is_503_unavailable_in_bounded_time(answer: bytes, cluster: RedisNodes,
                                                               tmp_path: Path) -> None:
    with scripted_redis(answer) as port:
        with Api(tmp_path, cluster.password_file, [cluster.secret], write_host=MASTER, read_host=MASTER,
                 redis_port=port) as api:
            assert_all_unavailable_in_bounded_time(api)
            assert api.proc.poll() is None
            assert "Traceback" not in api.log_text()


# --- acknowledgement by replicas ----------------------------------------------------------------

ACK_TIMEOUT_MS = 1000


def test_a_write_no_replica_acknowledges_in_time_is_503_and_reports_no_id(clean: RedisNodes,
                                                                         tmp_path: Path) -> None:
    with Api(tmp_path, clean.password_file, [clean.secret], redis_port=clean.master.port,
             extra_env={"REDIS_MIN_REPLICA_ACKS": "1", "REDIS_ACK_TIMEOUT_MS": str(ACK_TIMEOUT_MS)}) as api:
        acknowledged = api.post_text("on the master and its replica")
        assert stored_entries(clean.replicas[0]) == [acknowledged], "201 only once the replica has it"

        with stopped(clean.replicas[0]):
            posted, post_took = timed(api, "POST", "/api", b"the replica is frozen", TEXT_PLAIN)
            deleted, delete_took = timed(api, "DELETE", f"/api/{acknowledged['id']}")
        for response, took in ((posted, post_took), (deleted, delete_took)):
            assert response.status == 503, response.body
            assert "not acknowledged by a replica" in response.error and "NOREPLICAS" in response.error
            assert ACK_TIMEOUT_MS / 1000 <= took < ACK_TIMEOUT_MS / 1000 + 2.0, f"took {took:.2f} s"
        assert "Location" not in posted.headers and set(posted.json) == {"error"}, "no id for a 503"

        after = api.post_text("the replica is back")
        assert after["id"] > acknowledged["id"] + 1, "the unacknowledged entry's id is never handed out again"
        assert stored_entries(clean.replicas[0])[-1] == after


def test_a_write_is_acknowledged_only_once_every_replica_in_step_has_it(tmp_path: Path) -> None:
    # A failover promotes whichever replica Sentinel finds furthest ahead, by offsets it
    # read a moment before: an entry only one replica held could go with the master.
    with RedisNodes(replicas=2) as nodes:
        nodes.wait_until_replicas_linked()
        slow = nodes.replicas[1]
        with Api(tmp_path, nodes.password_file, [nodes.secret], redis_port=nodes.master.port,
                 extra_env={"REDIS_MIN_REPLICA_ACKS": "1", "REDIS_ACK_TIMEOUT_MS": "20000"}) as api:
            api.post_text("both replicas in step")
            result: list = []
            poster = threading.Thread(
                target=lambda: result.append(api.request("POST", "/api", b"waits for both", TEXT_PLAIN)))
            with stopped(slow):
                poster.start()
                deadline = time.monotonic() + 5
                while not any(entry["text"] == "waits for both" for entry in stored_entries(nodes.master)):
                    assert time.monotonic() < deadline, "the write never reached the master"
                    time.sleep(0.02)
                # The other replica has it within milliseconds; a second more is slack for
                # a busy machine, not the margin the promise rests on.
                poster.join(timeout=1.0)
                assert poster.is_alive(), \
                    f"acknowledged ({result}) while a replica in step was frozen without the write"
            poster.join(timeout=20)
            (posted,) = result
            assert posted.status == 201, posted.body
            assert posted.json in stored_entries(slow)


# --- writes through Sentinel ----------------------------------------------------------------------


@dataclass
class Watched:
    """A master, two replicas (each on 127.0.0.1 and a port of its own) and three Sentinels."""

    cluster: RedisNodes
    sentinels: Sentinels

    def master(self) -> Node:
        """The node the Sentinels name the master now."""
        address = self.sentinels.sentinels[0].master_address()
        (node,) = [node for node in self.cluster.nodes if address == ("127.0.0.1", node.port)]
        return node

    def api(self, workdir: Path, **extra_env: str) -> Api:
        """An API writing through the Sentinels (REDIS_WRITE_HOST names nothing), reading from redis-1."""
        return Api(workdir, self.cluster.password_file, [self.cluster.secret], write_host=NOBODY, read_host=MASTER,
                   redis_port=self.cluster.replicas[0].port,
                   extra_env={"REDIS_SENTINELS": self.sentinels.addresses(), "REDIS_MASTER_NAME": "journal",
                              "REDIS_MIN_REPLICA_ACKS": "1", "REDIS_ACK_TIMEOUT_MS": str(ACK_TIMEOUT_MS),
                              **extra_env})


@pytest.fixture
def watched() -> Iterator[Watched]:
    require_binaries()
    with RedisNodes(replicas=2) as cluster:
        cluster.wait_until_replicas_linked()
        sentinels = Sentinels(cluster)
        try:
            sentinels.start().wait_until_watching(replicas=2)
            yield Watched(cluster, sentinels)
        finally:
            sentinels.close()


def test_writes_reach_the_master_through_sentinel_and_resume_after_it_is_killed(watched: Watched,
                                                                              tmp_path: Path) -> None:
    old_master = watched.cluster.master
    with watched.api(tmp_path) as api:
        before = [api.post_text(f"before the failover {n}") for n in range(3)]
        assert stored_entries(old_master) == before
        # Acknowledged: on a replica too (the one that may become the master).
        assert any(stored_entries(replica) == before for replica in watched.cluster.replicas)

        old_master.stop(signal.SIGKILL)
        killed = time.monotonic()
        refused: list[str] = []
        after: Optional[dict] = None
        while after is None:
            response, took = timed(api, "POST", "/api", b"after the failover", TEXT_PLAIN)
            assert took < UNAVAILABLE_WITHIN, f"a POST during the failover took {took:.1f} s"
            if response.status == 201:
                after = response.json
            else:
                assert response.status == 503, response.body
                refused.append(response.error)
                assert time.monotonic() - killed < SENTINEL_DEADLINE, (
                    f"no write succeeded within {SENTINEL_DEADLINE} s of the kill; last: {refused[-1]}\n"
                    f"{watched.sentinels.logs()}")
                time.sleep(0.1)
        resumed = time.monotonic() - killed
        print(f"\nfailover: the first write succeeded {resumed:.1f} s after the master was killed "
              f"({len(refused)} refused meanwhile)")

        # The Sentinel that led the failover announces it to the others within a second
        # or two: the one asked here may still name the old master a moment longer.
        new_master = wait_for("the Sentinels to name the new master",
                              lambda: next((node for node in [watched.master()] if node is not old_master), None),
                              deadline=10, interval=0.1)
        assert new_master is not old_master
        stored = stored_entries(new_master)
        # Nothing acknowledged is lost, ids stay unique, and the new entry is on the new master.
        assert stored[:len(before)] == before and stored[-1] == after
        assert len({entry["id"] for entry in stored}) == len(stored)
        assert after["id"] > before[-1]["id"]
        assert api.proc.poll() is None, "the API followed the failover without a restart"
        api.log_text()  # asserts the password is not in the log


def test_a_write_that_meets_a_demoted_master_is_retried_once_on_the_new_one(watched: Watched,
                                                                           tmp_path: Path) -> None:
    old_master = watched.cluster.master
    with watched.api(tmp_path) as api:
        before = api.post_text("before the failover")
        assert api_connections(old_master), "the API keeps its connection to the master"

        watched.sentinels.failover()
        wait_for("the Sentinels to name a new master", lambda: watched.master() is not old_master,
                 deadline=SENTINEL_DEADLINE, interval=0.1)
        new_master = watched.master()
        # Demoted without its clients cut off (Sentinel would also kill them, some seconds
        # later): the API's pooled connection now reaches a replica, which answers READONLY.
        assert old_master.cli("REPLICAOF", "127.0.0.1", str(new_master.port)).reply == "OK"
        wait_for("the new master to have a replica",
                 lambda: int(new_master.info("replication").get("connected_slaves", "0")) >= 1)
        readonly_before = old_master.info("errorstats").get("errorstat_READONLY", "count=0")

        after = api.post_text("after the failover")

        assert old_master.info("errorstats").get("errorstat_READONLY") != readonly_before, (
            "the write met the demoted master first")
        assert stored_entries(new_master) == [before, after]
        assert after["id"] == before["id"] + 1
        wait_for("the old master to copy the entry", lambda: stored_entries(old_master) == [before, after])


def test_a_write_follows_a_demoted_master_to_its_successor_before_the_sentinels_name_it(
        watched: Watched, tmp_path: Path) -> None:
    # A preStop hand-over: the master follows its successor the moment that one is
    # promoted, and the Sentinels name the successor only up to a second later. Here the
    # Sentinels are not told at all, so only the demoted master's own ROLE leads there.
    old_master = watched.cluster.master
    successor = watched.cluster.replicas[0]
    with watched.api(tmp_path) as api:
        before = api.post_text("before the hand-over")
        assert successor.cli("REPLICAOF", "NO", "ONE").reply == "OK"
        assert old_master.cli("REPLICAOF", "127.0.0.1", str(successor.port)).reply == "OK"
        wait_for("the successor to have the old master as a replica",
                 lambda: "state=online" in successor.info("replication").get("slave0", ""))
        assert watched.master() is old_master, "the Sentinels still name the old master"

        after = api.post_text("after the hand-over")

        assert after["id"] == before["id"] + 1
        assert stored_entries(successor) == [before, after]


def test_the_api_authenticates_as_its_user_and_redis_refuses_it_without(clean: RedisNodes, tmp_path: Path) -> None:
    with Api(tmp_path, clean.password_file, [clean.secret], redis_port=clean.master.port) as api:
        entry = api.post_text("as the journal user")
        assert stored_entries(clean.master) == [entry]
        users = {field.split("=", 1)[1] for line in clean.master.cli("CLIENT", "LIST", "TYPE", "normal").reply.splitlines()
                 for field in line.split() if field.startswith("user=")}
        assert "journal" in users, users
    # The same password without the user name is the `default` user's, which is off.
    with Api(tmp_path, clean.password_file, [clean.secret], redis_port=clean.master.port, username="") as api:
        refused = api.request("POST", "/api", b"as nobody", TEXT_PLAIN)
        assert refused.status == 503 and "(WRONGPASS)" in refused.error, refused.body
