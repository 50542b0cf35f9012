"""Real redis-server nodes started through components/redis-launch.sh, for tests.

Each node runs `dash components/redis-launch.sh` (the file the StatefulSet mounts)
with the environment the StatefulSet sets, on 127.0.0.1, on a free port, with its
own data and config directories in a private temporary directory that is removed
afterwards. Clients are `redis-cli` processes that receive the password through
REDISCLI_AUTH, like the probe.

The password is held in a `Secret`: its repr is redacted, and every piece of text
captured from a child process is returned with the password replaced by
`<PASSWORD>` plus a flag saying whether it was there, so neither assertion
messages nor tracebacks (not even with --showlocals) can print it. Helpers that
hold the raw value in a local variable hide their frame from tracebacks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence, TypeVar

import pytest

from localcluster import commands, polling
from support.loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_SCRIPT = ROOT / "components" / "redis-launch.sh"
PROBE_SCRIPT = ROOT / "components" / "redis-probe.sh"

#: Longest wait for anything that should happen (a node answering, a replica
#: linking up, a probe passing), in seconds.
DEADLINE = 10.0
#: Longest a short-lived child process (redis-cli, a probe, a failing launch) may run.
COMMAND_TIMEOUT = 5.0
PLACEHOLDER = "<PASSWORD>"
REQUIRED_BINARIES = ("dash", "redis-server", "redis-cli")

T = TypeVar("T")


def require_binaries() -> None:
    """Fail (never skip) when the programs these tests run are missing."""
    missing = [name for name in REQUIRED_BINARIES if shutil.which(name) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found on PATH: these tests run real Redis "
            "processes; install them with `apt-get install -y redis-server redis-tools dash` "
            "(and stop the Debian redis-server service, which the tests do not use)",
            pytrace=False,
        )


class Secret:
    """A password whose value never appears in a repr, a str or a redacted text."""

    __slots__ = ("_value", "_fragments")

    def __init__(self, value: str, fragments: Sequence[str] = ()) -> None:
        self._value = value
        # Pieces that must not appear on their own either (a text could echo part
        # of a password, e.g. the first line of one with a newline in it).
        self._fragments = tuple(fragments)

    @classmethod
    def around(cls, separator: str, length: int = 16) -> "Secret":
        """Two random alphanumeric halves joined by `separator`; either half is redacted too."""
        head, tail = cls.generate(length)._value, cls.generate(length)._value
        return cls(head + separator + tail, fragments=(head, tail))

    @classmethod
    def generate(cls, length: int = 32) -> "Secret":
        alphabet = string.ascii_letters + string.digits
        return cls("".join(secrets.choice(alphabet) for _ in range(length)))

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    def reveal(self) -> str:
        """The raw value: only for a child's environment or a file, never for text."""
        return self._value

    def redact(self, text: str) -> tuple[str, bool]:
        """`text` with the password (or a fragment of it) replaced, and whether it was there."""
        leaked = False
        for value in (self._value, *self._fragments):
            if value and value in text:
                text, leaked = text.replace(value, PLACEHOLDER), True
        return text, leaked

    def write_to(self, path: Path) -> Path:
        """Write the value to a new owner-only file, as a mounted Secret would hold it."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._value)
        return path


@dataclass(frozen=True)
class Output:
    """What a finished child process printed, with the password redacted."""

    returncode: int
    stdout: str
    stderr: str
    #: True when the raw stdout or stderr contained the password.
    leaked_password: bool

    @property
    def reply(self) -> str:
        """redis-cli's answer without the blank line it adds after errors."""
        return self.stdout.strip()


#: The users the scripts define on every server (components/redis-common.sh).
USERS = ("journal", "replication", "sentinel", "operator", "admin")
#: The tests' own user, on the servers they start only: every command on every key, to
#: set up and inspect what the scripts' users may not (CONFIG SET, arbitrary keys).
HARNESS_USER = "harness"


def sha256(secret: Secret) -> str:
    __tracebackhide__ = True
    return hashlib.sha256(secret.reveal().encode()).hexdigest()


class Users:
    """A password per user, written as the mounted Secrets hold them: in `directory`,
    <user> holds the password and <user>.sha256 its hash. `secret` redacts every one of
    them (and the harness's, whose password it reveals)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700)
        self.directory = directory
        self.passwords = {user: Secret.generate() for user in USERS}
        self.harness = Secret.generate()
        self.secret = Secret(self.harness.reveal(), fragments=[p.reveal() for p in self.passwords.values()])
        for user, password in self.passwords.items():
            password.write_to(directory / user)
            (directory / f"{user}.sha256").write_text(sha256(password) + "\n")

    def file(self, user: str) -> Path:
        return self.directory / user

    def copy_with(self, directory: Path, **passwords: Optional[str]) -> Path:
        """A copy of the users' directory in `directory`, with the password file of each
        user named replaced by that text (None: removed)."""
        shutil.copytree(self.directory, directory)
        for user, text in passwords.items():
            (directory / user).unlink()
            if text is not None:
                (directory / user).write_text(text)
        return directory


def argv_recorder(directory: Path, harness: Optional[Secret] = None) -> Path:
    """A `redis-server` that writes its argv to $REDIS_ARGV_RECORD, then execs the real one.

    Redis overwrites its argv with a process title ("redis-server 127.0.0.1:6379")
    right after it starts, so /proc/<pid>/cmdline of a running server cannot show
    what the launch script passed; this records it on the way, one argument a line.
    With `harness`, the real one also gets the tests' own user (HARNESS_USER, that
    password's hash only), after what is recorded.
    """
    real = shutil.which("redis-server")
    if real is None:
        require_binaries()
    directory.mkdir(mode=0o700, exist_ok=True)
    shim = directory / "redis-server"
    extra = f" --user {HARNESS_USER} on '#{sha256(harness)}' '~*' '&*' '+@all'" if harness else ""
    shim.write_text(
        "#!/bin/sh\n"
        "printf '%s\\n' \"$@\" >> \"$REDIS_ARGV_RECORD\"\n"
        "printf -- '--\\n' >> \"$REDIS_ARGV_RECORD\"\n"
        f"exec {real} \"$@\"{extra}\n"
    )
    shim.chmod(0o700)
    return directory


def base_env() -> dict[str, str]:
    """A clean environment: no REDIS_* or REDISCLI_AUTH inherited from the caller."""
    return {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LC_ALL": "C"}


def run(
    argv: Sequence[str],
    *,
    secret: Secret,
    env: Mapping[str, str],
    stdin: Optional[str] = None,
    timeout: float = COMMAND_TIMEOUT,
) -> Output:
    """Run a short-lived command in its own process group; kill the group on timeout."""
    __tracebackhide__ = True  # env may hold the raw password
    return redacted(commands.run(*argv, input=stdin, env=env, timeout=timeout, check=False, own_group=True), secret)


def spawn(argv: Sequence[str], *, env: Mapping[str, str], stdin: bool = False) -> subprocess.Popen[str]:
    """Start a command in a process group of its own, its output piped for `collect`."""
    __tracebackhide__ = True
    return commands.start(*argv, env=env, stdin=stdin, own_group=True)


def collect(proc: subprocess.Popen[str], *, secret: Secret, stdin: Optional[str] = None,
            timeout: float = COMMAND_TIMEOUT) -> Output:
    """Wait for a spawned command and return its redacted output; kill its group on timeout."""
    __tracebackhide__ = True
    return redacted(commands.finish(proc, input=stdin, timeout=timeout, check=False), secret)


def redacted(result: subprocess.CompletedProcess[str], secret: Secret) -> Output:
    __tracebackhide__ = True  # its output is raw until redacted
    out, leaked_out = secret.redact(result.stdout)
    err, leaked_err = secret.redact(result.stderr)
    return Output(result.returncode, out, err, leaked_out or leaked_err)


def wait_for(what: str, check: Callable[[], Optional[T]], deadline: float = DEADLINE, interval: float = 0.02) -> T:
    """polling.wait_for at the pace of a local Redis: by default every 20 ms, for DEADLINE seconds."""
    return polling.wait_for(what, check, deadline, interval)


def parse_info(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and not key.startswith("#"):
            fields[key] = value
    return fields


def user_args(auth: bool = True) -> list[str]:
    """redis-cli's arguments naming the tests' own user (none without authentication)."""
    return ["--user", HARNESS_USER] if auth else []


def read_proc(pid: int, name: str, secret: Secret) -> tuple[str, bool]:
    """/proc/<pid>/<name> as text (NULs shown as spaces), redacted, plus the leak flag."""
    raw = Path(f"/proc/{pid}/{name}").read_bytes()
    return secret.redact(raw.replace(b"\0", b" ").decode(errors="replace"))


class Node:
    """One Redis pod: its directories, its launch environment, its process."""

    def __init__(self, workdir: Path, name: str, secret: Secret, users_dir: Path,
                 master: Optional["Node"] = None, shim_dir: Optional[Path] = None) -> None:
        self.name = name
        self.secret = secret
        self.users_dir = users_dir
        self.master = master
        self.home = workdir / name
        self.data_dir = self.home / "data"
        self.conf_dir = self.home / "conf"
        self.log = self.home / "redis.log"
        self.shim_dir = shim_dir
        self.argv_record = self.home / "redis-server.argv"
        for d in (self.data_dir, self.conf_dir):
            d.mkdir(parents=True, mode=0o700)
        self.port = free_port()
        # As the StatefulSet sets it from the memory limit; a test may lower it.
        self.maxmemory = 64 * 2**20
        #: The other pods a master asks for their data when its own directory is
        #: empty (REDIS_PEERS); none unless the cluster gives them.
        self.peers: Sequence[Node] = ()
        #: Environment variables set on top of the StatefulSet's, at every start.
        self.env_overrides: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"Node({self.name}, port {self.port})"

    @property
    def config_file(self) -> Path:
        return self.conf_dir / "redis.conf"

    @property
    def pid(self) -> int:
        assert self.proc is not None and self.proc.poll() is None, f"{self} is not running"
        return self.proc.pid

    def launch_env(self) -> dict[str, str]:
        """What the StatefulSet sets, with test paths and 127.0.0.1."""
        env = base_env()
        if self.shim_dir is not None:
            env["PATH"] = f"{self.shim_dir}:{env['PATH']}"
            env["REDIS_ARGV_RECORD"] = str(self.argv_record)
        env.update(
            HOSTNAME=self.name,
            REDIS_USERS_DIR=str(self.users_dir),
            REDIS_PORT=str(self.port),
            REDIS_BIND="127.0.0.1",
            REDIS_DATA_DIR=str(self.data_dir),
            REDIS_CONF_DIR=str(self.conf_dir),
            REDIS_MAXMEMORY=str(self.maxmemory),
        )
        if self.master is not None:
            env.update(REDIS_MASTER_HOST="127.0.0.1", REDIS_MASTER_PORT=str(self.master.port))
        if self.peers:
            # The master's own address too: a peer it recovers from follows it again.
            env.update(REDIS_PEERS=" ".join(f"127.0.0.1:{peer.port}" for peer in self.peers),
                       REDIS_MASTER_HOST="127.0.0.1", REDIS_MASTER_PORT=str(self.port))
        env.update(self.env_overrides)
        return env

    def start(self, argv: Optional[Sequence[str]] = None, *, answers: Sequence[str] = ("PONG",)) -> "Node":
        """Run the launch script (or `argv`) and wait until PING's answer starts with one of `answers`.

        A port taken between free_port() and Redis's bind is retried on a new port
        on the first start (later starts keep the port the replicas follow).
        """
        first_start = self.proc is None
        for _attempt in range(3):
            with open(self.log, "a") as log:
                self.proc = proc = subprocess.Popen(
                    list(argv) if argv else ["dash", str(LAUNCH_SCRIPT)],
                    env=self.launch_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                wait_for(f"{self} to answer PING with one of {list(answers)}",
                         lambda: proc.poll() is not None or self.ping().startswith(tuple(answers)))
            except polling.TimedOut:
                self.stop()
                raise
            if self.proc.poll() is None:
                return self
            if first_start and "Address already in use" in self.log.read_text():
                self.port = free_port()
                continue
            raise AssertionError(
                f"{self} exited with status {self.proc.returncode}; log:\n{self.log_text()}")
        raise AssertionError(f"{self} found no free port")

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None:
            commands.stop(self.proc, sig)

    def recorded_argvs(self) -> tuple[list[list[str]], bool]:
        """The arguments of every redis-server the launch script exec'd, redacted."""
        text, leaked = self.secret.redact(self.argv_record.read_text())
        argvs = [chunk.strip("\n").split("\n") for chunk in text.split("--\n") if chunk.strip()]
        return argvs, leaked

    def log_text(self) -> str:
        return self.secret.redact(self.log.read_text(errors="replace"))[0]

    def cli_env(self, auth: bool = True, secret: Optional[Secret] = None) -> dict[str, str]:
        __tracebackhide__ = True
        env = base_env()
        if auth:
            env["REDISCLI_AUTH"] = (secret or self.secret).reveal()
        return env

    def cli(self, *args: str, auth: bool = True, stdin: Optional[str] = None) -> Output:
        """redis-cli against this node as the tests' own user; the password, if any, only
        in its environment."""
        __tracebackhide__ = True
        return run(["redis-cli", *user_args(auth), "-h", "127.0.0.1", "-p", str(self.port), *args],
                   secret=self.secret, env=self.cli_env(auth), stdin=stdin)

    def cli_as(self, user: str, password: Secret, *args: str, port: Optional[int] = None,
               stdin: Optional[str] = None) -> Output:
        """redis-cli against this node (or its `port`) as `user`; with `stdin`, the
        commands it reads there, one a line (a MULTI/EXEC on one connection)."""
        __tracebackhide__ = True
        return run(["redis-cli", "--user", user, "-h", self.cli_host, "-p", str(port or self.port), *args],
                   secret=self.secret, env=self.cli_env(secret=password), stdin=stdin)

    @property
    def cli_host(self) -> str:
        return "127.0.0.1"

    def ping(self) -> str:
        return self.cli("PING").reply

    def info(self, section: str) -> dict[str, str]:
        return parse_info(self.cli("INFO", section).stdout)

    def probe_env(self, users_dir: Optional[Path] = None) -> dict[str, str]:
        env = base_env()
        env.update(REDIS_USERS_DIR=str(users_dir or self.users_dir),
                   REDIS_PORT=str(self.port))
        return env

    def probe(self, mode: str, users_dir: Optional[Path] = None,
              secret: Optional[Secret] = None) -> Output:
        """Run the real probe script with dash, as the kubelet would in the pod.

        `secret` redacts the passwords in `users_dir` (default: the node's).
        """
        return run(["dash", str(PROBE_SCRIPT), mode], secret=secret or self.secret,
                   env=self.probe_env(users_dir))

    def config_lines(self) -> list[str]:
        """The generated config file, line by line, with the password redacted."""
        return self.secret.redact(self.config_file.read_text())[0].splitlines()


class RedisNodes:
    """A master and its replicas, named like StatefulSet pods, in a private temp dir."""

    def __init__(self, replicas: int = 2, master_asks_peers: bool = False) -> None:
        """`master_asks_peers`: the master is told its replicas' addresses, as the
        StatefulSet tells pod 0, and they start first, as they may on Kubernetes."""
        self._tmp = tempfile.TemporaryDirectory(prefix="journal-redis-")
        self.workdir = Path(self._tmp.name)
        self.users = Users(self.workdir / "redis-users")
        self.secret = self.users.secret
        #: The frontend's: the journal user's password.
        self.password_file = self.users.file("journal")
        self.shims = shims = argv_recorder(self.workdir / "bin", self.users.harness)
        self.master = Node(self.workdir, "redis-0", self.secret, self.users.directory,
                           shim_dir=shims)
        self.replicas = [
            Node(self.workdir, f"redis-{i}", self.secret, self.users.directory,
                 master=self.master, shim_dir=shims)
            for i in range(1, replicas + 1)
        ]
        if master_asks_peers:
            self.master.peers = self.replicas

    @property
    def nodes(self) -> list[Node]:
        return [self.master, *self.replicas]

    def start(self) -> "RedisNodes":
        if self.master.peers:
            for replica in self.replicas:
                self.start_replica(replica)
            self.start_master()
        else:
            self.start_master()
            for replica in self.replicas:
                replica.start()
        return self

    def start_replica(self, replica: Node) -> None:
        replica.start()
        # Test speed only, as for the master: a replica an empty master recovers
        # from serves the copy as a master for a moment.
        assert replica.cli("CONFIG", "SET", "repl-diskless-sync-delay", "0").reply == "OK"

    def start_master(self) -> None:
        self.master.start()
        # Test speed only: a master waits repl-diskless-sync-delay (5 s by default)
        # for more replicas before a full sync, and every (re)start of a master
        # means a full sync. The setting is read at each replication cron tick, so
        # it also cuts short a delay that has already begun.
        assert self.master.cli("CONFIG", "SET", "repl-diskless-sync-delay", "0").reply == "OK"

    def wait_until_replicas_linked(self) -> None:
        for replica in self.replicas:
            wait_for(f"{replica} to report master_link_status:up",
                     lambda: replica.info("replication").get("master_link_status") == "up")

    def close(self) -> None:
        try:
            for node in self.nodes:
                node.stop()
        finally:
            self._tmp.cleanup()

    def __enter__(self) -> "RedisNodes":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def master_down(cluster: RedisNodes) -> Iterator[None]:
    """Kill the master for the duration of the block, then restart it from its data.

    The replicas are left to find it again on their own (they retry every second).
    """
    cluster.master.stop(signal.SIGKILL)
    try:
        yield
    finally:
        cluster.start_master()


@contextlib.contextmanager
def stopped(node: Node) -> Iterator[None]:
    """The node's redis-server frozen (SIGSTOP) for the block: its connections stay open, it
    answers nothing."""
    pid = find_descendant(node.pid, "redis-server") or node.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def find_descendant(root_pid: int, command: str) -> Optional[int]:
    """The pid of a running descendant of `root_pid` whose argv[0] ends in `command`."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # "pid (comm) state ppid ...": comm may contain spaces, so split after ")".
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    for pid in parents:
        ancestor = parents.get(pid)
        while ancestor and ancestor != root_pid:
            ancestor = parents.get(ancestor)
        if ancestor == root_pid:
            with contextlib.suppress(OSError):
                argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
                if argv0.decode(errors="replace").endswith(command):
                    return pid
    return None


# --- pods with Sentinels ---------------------------------------------------------------
# A StatefulSet of several pods, each a Redis (components/redis-launch.sh) and a
# Sentinel (components/redis-sentinel.sh) as the pod's two containers run them. Every
# pod has a loopback address of its own, 127.0.0.<ordinal + 1>, and all listen on the
# same two ports there, as pods do on theirs. Each is named by the short form of its
# address, 127.<ordinal + 1>: a host name as far as the scripts, Redis and Sentinel are
# concerned (resolved like any other), and not the address a connection from it comes
# from, so a pod known by its address instead of its name shows.

SENTINEL_SCRIPT = ROOT / "components" / "redis-sentinel.sh"
PRESTOP_SCRIPT = ROOT / "components" / "redis-prestop.sh"


def pod_address(ordinal: int) -> str:
    return f"127.0.0.{ordinal + 1}"


def pod_host(ordinal: int) -> str:
    return f"127.{ordinal + 1}"


def port_free_on(addresses: Sequence[str], attempts: int = 20, taken: Sequence[int] = ()) -> int:
    """A port nobody listens on at any of `addresses` right now, and none of `taken`."""
    for _attempt in range(attempts):
        port = free_port()
        if port in taken:
            continue
        try:
            for address in addresses:
                with contextlib.closing(socket.socket()) as sock:
                    sock.bind((address, port))
        except OSError:
            continue
        return port
    raise AssertionError(f"no port free on all of {addresses}")


class PodNode(Node):
    """One pod of a StatefulSet with Sentinels: its Redis and its Sentinel, each a
    process group of its own, as the pod's two containers."""

    def __init__(self, workdir: Path, ordinal: int, secret: Secret, users_dir: Path, *,
                 pods: int, port: int, sentinel_port: int, shim_dir: Optional[Path] = None) -> None:
        super().__init__(workdir, f"redis-{ordinal}", secret, users_dir, shim_dir=shim_dir)
        self.ordinal = ordinal
        self.pods = pods
        self.address = pod_address(ordinal)
        self.host = pod_host(ordinal)
        self.port = port
        self.sentinel_port = sentinel_port
        self.sentinel_log = self.home / "sentinel.log"
        self.sentinel_proc: Optional[subprocess.Popen[bytes]] = None

    def __repr__(self) -> str:
        return f"PodNode({self.name}, {self.host})"

    @property
    def sentinel_config_file(self) -> Path:
        return self.conf_dir / "sentinel.conf"

    def launch_env(self) -> dict[str, str]:
        """What the StatefulSet sets in both containers of the pod."""
        env = super().launch_env()
        env.update(
            REDIS_BIND=self.address,
            REDIS_PODS=str(self.pods),
            REDIS_HOSTS=" ".join(pod_host(i) for i in range(self.pods)),
            REDIS_MASTER_PORT=str(self.port),
            REDIS_SENTINEL_PORT=str(self.sentinel_port),
            REDIS_LOCAL_HOST=self.address,
        )
        env.update(self.env_overrides)
        return env

    def _spawn(self, script: Path, log_path: Path) -> subprocess.Popen[bytes]:
        __tracebackhide__ = True
        with open(log_path, "a") as log:
            return subprocess.Popen(["dash", str(script)], env=self.launch_env(), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start_redis(self) -> "PodNode":
        """Start the redis container's script, without waiting for anything."""
        assert self.proc is None or self.proc.poll() is not None, f"{self}'s Redis runs already"
        self.proc = self._spawn(LAUNCH_SCRIPT, self.log)
        return self

    def start_sentinel(self) -> "PodNode":
        assert self.sentinel_proc is None or self.sentinel_proc.poll() is not None, f"{self}'s Sentinel runs already"
        self.sentinel_proc = self._spawn(SENTINEL_SCRIPT, self.sentinel_log)
        return self

    def redis_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill_redis(self, sig: int = signal.SIGKILL) -> None:
        """Signal the redis container's process group and reap it (the Sentinel runs on)."""
        if self.proc is not None:
            commands.stop(self.proc, sig)

    def stop_sentinel(self, sig: int = signal.SIGKILL) -> None:
        if self.sentinel_proc is not None:
            commands.stop(self.sentinel_proc, sig)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        try:
            super().stop(sig)
        finally:
            self.stop_sentinel(sig)

    def new_pod(self) -> None:
        """Stop both containers and empty the pod's emptyDir, as a new pod on the same claim."""
        self.stop()
        for entry in self.conf_dir.iterdir():
            entry.unlink()

    def lose_volume(self) -> None:
        """Stop the Redis and give it a new, empty data directory, as a replaced claim would."""
        self.kill_redis()
        shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(mode=0o700)

    def cli(self, *args: str, auth: bool = True, stdin: Optional[str] = None) -> Output:
        __tracebackhide__ = True
        return run(["redis-cli", *user_args(auth), "-h", self.address, "-p", str(self.port), *args],
                   secret=self.secret, env=self.cli_env(auth), stdin=stdin)

    @property
    def cli_host(self) -> str:
        return self.address

    def sentinel_cli(self, *args: str, auth: bool = True) -> Output:
        __tracebackhide__ = True
        return run(["redis-cli", *user_args(auth), "-h", self.address, "-p", str(self.sentinel_port), *args],
                   secret=self.secret, env=self.cli_env(auth))

    def role(self, timeout: float = 1.0) -> str:
        """"master", "slave", or "" when the Redis does not answer (within `timeout`: a
        stopped one never does)."""
        __tracebackhide__ = True
        try:
            reply = run(["redis-cli", *user_args(), "-h", self.address, "-p", str(self.port), "INFO", "replication"],
                        secret=self.secret, env=self.cli_env(), timeout=timeout)
        except commands.CommandFailed:
            return ""
        return parse_info(reply.stdout).get("role", "")

    def sentinel_master(self) -> Optional[str]:
        """The host this pod's Sentinel names the master, None when it names none."""
        reply = self.sentinel_cli("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "journal")
        lines = reply.stdout.split()
        return lines[0] if reply.returncode == 0 and len(lines) == 2 else None

    def sentinel_table(self, *args: str) -> list[dict[str, str]]:
        """A SENTINEL subcommand's reply of field/value lists (REPLICAS, SENTINELS), as dicts."""
        lines = self.sentinel_cli("SENTINEL", *args).stdout.splitlines()
        rows, row = [], {}
        for key, value in zip(lines[::2], lines[1::2]):
            if key == "name" and row:
                rows.append(row)
                row = {}
            row[key] = value
        return rows + ([row] if row else [])

    def sentinel_fields(self) -> dict[str, str]:
        """SENTINEL MASTER journal, as a dict."""
        rows = self.sentinel_table("MASTER", "journal")
        return rows[0] if rows else {}

    def probe_env(self, users_dir: Optional[Path] = None) -> dict[str, str]:
        env = super().probe_env(users_dir)
        env.update(REDIS_PODS=str(self.pods), REDIS_SENTINEL_PORT=str(self.sentinel_port),
                   REDIS_LOCAL_HOST=self.address)
        return env

    def prestop(self, timeout: float = 30.0, **extra_env: str) -> Output:
        """Run the preStop hook with the redis container's environment (and `extra_env`),
        as the kubelet does."""
        return run(["dash", str(PRESTOP_SCRIPT)], secret=self.secret, env={**self.launch_env(), **extra_env},
                   timeout=timeout)

    def sentinel_log_text(self) -> str:
        return self.secret.redact(self.sentinel_log.read_text(errors="replace"))[0]


class RedisPods:
    """A StatefulSet of `count` pods with Sentinels, in a private temp dir."""

    def __init__(self, count: int = 3) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="journal-redis-pods-")
        self.workdir = Path(self._tmp.name)
        self.users = Users(self.workdir / "redis-users")
        self.secret = self.users.secret
        shims = argv_recorder(self.workdir / "bin", self.users.harness)
        addresses = [pod_address(i) for i in range(count)]
        port = port_free_on(addresses)
        sentinel_port = port_free_on(addresses, taken=(port,))
        self.pods = [PodNode(self.workdir, i, self.secret, self.users.directory, pods=count, port=port,
                             sentinel_port=sentinel_port, shim_dir=shims) for i in range(count)]

    def start(self, pods: Optional[Sequence[PodNode]] = None) -> "RedisPods":
        """Start both containers of every pod (or of `pods`) at once, as Parallel does."""
        started = self.pods if pods is None else pods
        for pod in started:
            pod.start_redis()
            pod.start_sentinel()
        return self

    def masters(self) -> list[PodNode]:
        return [pod for pod in self.pods if pod.redis_running() and pod.role() == "master"]

    def settled(self) -> Optional[PodNode]:
        """The master, once there is exactly one, every other running Redis follows it
        with its link up, and every running Sentinel names it and knows all the others."""
        masters = self.masters()
        if len(masters) != 1:
            return None
        master = masters[0]
        for pod in self.pods:
            if pod is master or not pod.redis_running():
                continue
            info = pod.info("replication")
            if (info.get("master_host"), info.get("master_link_status")) != (master.host, "up"):
                return None
        for pod in self.pods:
            if pod.sentinel_proc is None or pod.sentinel_proc.poll() is not None:
                continue
            if pod.sentinel_master() != master.host:
                return None
        return master

    def wait_until_settled(self, deadline: float = 30.0) -> PodNode:
        return wait_for("one master that every Redis follows and every Sentinel names", self.settled,
                        deadline=deadline, interval=0.1)

    def close(self) -> None:
        try:
            for pod in self.pods:
                pod.stop()
        finally:
            self._tmp.cleanup()

    def __enter__(self) -> "RedisPods":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
