"""A real `python3 -m journal_api` process on a loopback port, configured through the
environment the Deployment sets, and the answers it gives. Each process has a write
credential of its own, which its POSTs and DELETEs present unless told not to. Every
response and every log line read is checked for the Redis password and the credential.

The API runs under the image's interpreter, Debian's /usr/bin/python3 with Debian's
python3-redis, not the venv's Python that runs the tests."""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pytest

from localcluster import commands, polling
from support.redis_nodes import Node, Output, RedisNodes, Secret, base_env, free_port, run, user_args, wait_for

#: The reference frontend image's source: `python -m journal_api` runs from here.
API_SOURCE = Path(__file__).resolve().parents[2] / "images" / "journal-api"
#: The interpreter of the image (Debian's python3), with the image's redis-py (python3-redis).
API_PYTHON = "/usr/bin/python3"
#: The Redis hosts a test API talks to: the master, its replica (one port, two loopback addresses).
MASTER, REPLICA = "127.0.0.1", "127.0.0.2"
HTTP_TIMEOUT = 10.0
ENTRIES = 5
TEXT_PLAIN = {"Content-Type": "text/plain; charset=utf-8"}
#: The requests that need the write credential (the journal page sends it with these).
WRITE_METHODS = ("POST", "DELETE")
#: Tests write far faster than a person, and all from one address: each API takes as many
#: writes as its settings allow, unless a test sets WRITES_PER_MINUTE and WRITE_BURST.
UNLIMITED_WRITES = {"WRITES_PER_MINUTE": "60000", "WRITE_BURST": "10000"}


@functools.cache
def _api_python_has_redis() -> bool:
    try:
        return subprocess.run([API_PYTHON, "-c", "import redis"], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=HTTP_TIMEOUT).returncode == 0
    except OSError:
        return False


def require_api_python() -> None:
    """Fail (never skip) when the image's interpreter or its redis module is missing."""
    if not _api_python_has_redis():
        pytest.fail(f"{API_PYTHON} cannot import redis: the journal API runs on Debian's python3 with "
                    "python3-redis, as in its image; install them with `apt-get install -y python3 python3-redis` "
                    "(make system-packages)", pytrace=False)


@dataclass(frozen=True)
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        assert self.headers.get("Content-Type") == "application/json; charset=utf-8", self
        return json.loads(self.body)

    @property
    def error(self) -> str:
        """The message of a JSON error answer, asserting it is one."""
        message = self.json["error"]
        assert isinstance(message, str) and message, self
        return message


class Api:
    """One `python -m journal_api` process, with its log and its write credential in
    `workdir` (the credential in `credential_dir`, when given)."""

    def __init__(self, workdir: Path, password_file: Path, secrets: Sequence[Secret], *,
                 write_host: str = MASTER, read_host: str = REPLICA, redis_port: int,
                 entries: int = ENTRIES, cwd: Path = API_SOURCE, prefix: Sequence[str] = (),
                 extra_env: Mapping[str, str] = {}, credential_dir: Path | None = None,
                 username: str = "journal") -> None:
        self.password_file = password_file
        #: The Redis user the API authenticates as (REDIS_USERNAME; empty: none, the password alone).
        self.username = username
        #: What POST and DELETE present, as the mounted Secret holds it.
        self.write_credential = Secret.generate()
        self.write_credential_file = self.write_credential.write_to(
            (credential_dir or workdir) / f"write-credential-{os.urandom(4).hex()}")
        #: Passwords and credentials that no response and no log line may contain.
        self.secrets = [*secrets, self.write_credential]
        self.write_host, self.read_host, self.redis_port = write_host, read_host, redis_port
        self.entries = entries
        self.cwd, self.prefix = cwd, list(prefix)
        #: More of the Deployment's variables (REDIS_SENTINELS, REDIS_MIN_REPLICA_ACKS...).
        self.extra_env = dict(extra_env)
        self.log = workdir / f"api-{os.urandom(4).hex()}.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """What the Deployment sets (plus the port and loopback address of a test)."""
        # In the checkout, keep Python from caching journal_api/__init__.py, which it
        # compiles before the package can turn caching off. (In the image the write
        # fails harmlessly; test_runs_as_a_non_root_user_that_can_write_nothing
        # runs without this.)
        no_cache = {"PYTHONDONTWRITEBYTECODE": "1"} if self.cwd == API_SOURCE else {}
        return {
            **base_env(),
            **no_cache,
            "REDIS_WRITE_HOST": self.write_host,
            "REDIS_READ_HOST": self.read_host,
            "REDIS_PORT": str(self.redis_port),
            "JOURNAL_ENTRIES": str(self.entries),
            "REDIS_PASSWORD_FILE": str(self.password_file),
            "WRITE_CREDENTIAL_FILE": str(self.write_credential_file),
            **UNLIMITED_WRITES,
            **({"REDIS_USERNAME": self.username} if self.username else {}),
            "LISTEN_HOST": "127.0.0.1",
            "PORT": str(self.port),
            **self.extra_env,
        }

    def start(self) -> "Api":
        require_api_python()
        for _attempt in range(3):
            self.port = free_port()
            with open(self.log, "a") as log:
                self.proc = proc = subprocess.Popen(
                    [*self.prefix, API_PYTHON, "-m", "journal_api"],
                    cwd=self.cwd, env=self.env(), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
            try:
                wait_for(f"the API on port {self.port} to answer /api/healthz",
                         lambda: proc.poll() is not None or self._healthy())
            except polling.TimedOut:
                self.stop(signal.SIGKILL)
                raise
            if self.proc.poll() is None:
                return self
            if "cannot listen" not in self.log_text():  # else the port was taken meanwhile
                raise AssertionError(f"the API exited with {self.proc.returncode}:\n{self.log_text()}")
        raise AssertionError("the API found no free port")

    def _healthy(self) -> bool:
        with contextlib.suppress(OSError):
            return self.request("GET", "/api/healthz").status == 200
        return False

    def refuses_connections(self) -> bool:
        """Whether nothing listens on the API's port any more (it stopped accepting)."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is not None:
            commands.stop(self.proc, sig)
            return self.proc.returncode
        return None

    def __enter__(self) -> "Api":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(signal.SIGKILL)

    def log_text(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        for secret in self.secrets:
            text, leaked = secret.redact(text)
            assert not leaked, "the API's log contains the Redis password or the write credential"
        return text

    def authorization(self) -> str:
        """The Authorization header's value that lets a write through."""
        return f"Bearer {self.write_credential.reveal()}"

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] = {}, content_length: bool = True,
                authorized: bool = True) -> Response:
        """One request on a new connection; Content-Length is added unless told not to, and
        a POST or DELETE presents the write credential unless `authorized` is False."""
        if authorized and method in WRITE_METHODS:
            headers = {"Authorization": self.authorization(), **headers}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            if content_length and body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            if body:
                conn.send(body)
            answer = conn.getresponse()
            response = Response(answer.status, answer.headers, answer.read())
        finally:
            conn.close()
        raw = f"{response.headers}\n{response.body.decode(errors='replace')}"
        for secret in self.secrets:
            assert not secret.redact(raw)[1], f"{method} {path}: the response contains a password or the credential"
        return response

    def post_text(self, text: str) -> dict[str, Any]:
        response = self.request("POST", "/api", text.encode(), TEXT_PLAIN)
        assert response.status == 201, (response.status, response.body)
        return response.json

    def listed(self) -> list[dict[str, Any]]:
        response = self.request("GET", "/api")
        assert response.status == 200, (response.status, response.body)
        return response.json


class AliasNode(Node):
    """A node bound to another loopback address, on a port chosen for it."""

    def __init__(self, workdir: Path, name: str, secret: Secret, users_dir: Path, *,
                 master: Node | None = None, address: str, port: int, shim_dir: Path | None = None) -> None:
        super().__init__(workdir, name, secret, users_dir, master=master, shim_dir=shim_dir)
        self.address, self.port = address, port

    def launch_env(self) -> dict[str, str]:
        return {**super().launch_env(), "REDIS_BIND": self.address}

    def cli(self, *args: str, auth: bool = True, stdin: str | None = None) -> Output:
        __tracebackhide__ = True
        return run(["redis-cli", *user_args(auth), "-h", self.address, "-p", str(self.port), *args],
                   secret=self.secret, env=self.cli_env(auth), stdin=stdin)

    @property
    def cli_host(self) -> str:
        return self.address


def master_and_replica() -> RedisNodes:
    """A cluster (not started) of a master on MASTER and its replica on REPLICA, one port."""
    cluster = RedisNodes(replicas=0)
    cluster.replicas.append(AliasNode(cluster.workdir, "redis-1", cluster.secret, cluster.users.directory,
                                      master=cluster.master, address=REPLICA, port=cluster.master.port,
                                      shim_dir=cluster.shims))
    return cluster
