"""Real Redis Sentinels (`redis-server sentinel.conf --sentinel`) on loopback, watching the
master of a `RedisNodes` cluster, for tests.

Each Sentinel gets a minimal sentinel.conf of its own, in a private directory of the
cluster's temporary directory (Sentinel rewrites the file as it learns): it monitors the
master as `journal` with quorum 2 and judges a master down after 1000 ms without an
answer. Its users are those of components/redis-sentinel.sh, with the rules that
components/redis-common.sh defines (`default` off; `journal`, which the frontend asks
as; `sentinel`, which it gives the other Sentinels and the Redis servers), plus the
tests' own. The file is the only place a password is written to; clients (`redis-cli`)
get it through REDISCLI_AUTH, and everything they print is redacted
(support.redis_nodes.run).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Optional

from support.loopback import free_port
from localcluster import commands, polling
from support.redis_nodes import (ROOT, HARNESS_USER, Node, Output, RedisNodes, Users, base_env, require_binaries, run,
                                 sha256, wait_for)

MASTER_NAME = "journal"
QUORUM = 2
DOWN_AFTER_MS = 1000
#: Longest wait for what Sentinels do on their own schedule: find each other (they say
#: hello every 2 s), elect a leader and fail over (a few seconds), convert an old master.
SENTINEL_DEADLINE = 30.0


def sentinel_acl_rules() -> dict[str, str]:
    """The rules components/redis-common.sh gives each user on a Sentinel."""
    names = {"journal": "SENTINEL_ACL_JOURNAL", "sentinel": "SENTINEL_ACL_SENTINEL", "operator": "SENTINEL_ACL_OPERATOR"}
    script = "script=test; . \"$1\"; " + "; ".join(f'printf "%s\\n" "${variable}"' for variable in names.values())
    lines = subprocess.run(["dash", "-c", script, "dash", str(ROOT / "components" / "redis-common.sh")],
                           capture_output=True, text=True, check=True, env=base_env()).stdout.splitlines()
    assert len(lines) == len(names) and all(lines), lines
    return dict(zip(names, lines))


def parse_pairs(text: str) -> dict[str, str]:
    """redis-cli's raw print of a flat name/value array (SENTINEL MASTER, ...), as a dict."""
    lines = text.splitlines()
    return dict(zip(lines[0::2], lines[1::2]))


class Sentinel:
    """One `redis-server --sentinel` process on 127.0.0.1 and a free port."""

    def __init__(self, workdir: Path, name: str, users: Users) -> None:
        self.name = name
        self.users = users
        self.secret = users.secret
        self.home = workdir / name
        self.home.mkdir(mode=0o700)
        self.config_file = self.home / "sentinel.conf"
        self.log = self.home / "sentinel.log"
        self.address = "127.0.0.1"
        self.port = free_port()
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def __repr__(self) -> str:
        return f"Sentinel({self.name}, port {self.port})"

    def write_config(self, master: Node, master_host: str) -> None:
        __tracebackhide__ = True  # the text holds the password
        rules = sentinel_acl_rules()
        sentinel_password = self.users.passwords["sentinel"].reveal()
        text = "\n".join([
            f"port {self.port}",
            f"bind {self.address}",
            "daemonize no",
            'logfile ""',
            f'dir "{self.home}"',
            "user default off",
            *(f"user {user} on #{sha256(self.users.passwords[user])} {rules[user]}" for user in ("journal", "sentinel")),
            f"user {HARNESS_USER} on #{sha256(self.users.harness)} +@all",
            "sentinel sentinel-user sentinel",
            f'sentinel sentinel-pass "{sentinel_password}"',
            f"sentinel monitor {MASTER_NAME} {master_host} {master.port} {QUORUM}",
            f"sentinel auth-user {MASTER_NAME} sentinel",
            f'sentinel auth-pass {MASTER_NAME} "{sentinel_password}"',
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} 10000",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
            "",
        ])
        self.config_file.touch(mode=0o600)
        self.config_file.write_text(text)

    def start(self) -> "Sentinel":
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                ["redis-server", str(self.config_file), "--sentinel"],
                env=base_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for(f"{self} to answer PING",
                     lambda: self.proc is not None and (self.proc.poll() is not None or self.cli("PING").reply == "PONG"))
        except polling.TimedOut:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise AssertionError(f"{self} exited with status {self.proc.returncode}; log:\n{self.log_text()}")
        return self

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None:
            commands.stop(self.proc, sig)

    def log_text(self) -> str:
        return self.secret.redact(self.log.read_text(errors="replace"))[0] if self.log.exists() else ""

    def cli(self, *args: str) -> Output:
        __tracebackhide__ = True
        env = {**base_env(), "REDISCLI_AUTH": self.users.harness.reveal()}
        return run(["redis-cli", "--user", HARNESS_USER, "-h", self.address, "-p", str(self.port), *args],
                   secret=self.secret, env=env)

    def master_state(self) -> dict[str, str]:
        """SENTINEL MASTER journal: flags, ip, port, num-slaves, num-other-sentinels..."""
        return parse_pairs(self.cli("SENTINEL", "MASTER", MASTER_NAME).stdout)

    def master_address(self) -> Optional[tuple[str, int]]:
        """The master in the Sentinel's configuration, as SENTINEL MASTERS reports it to
        clients (redis-py asks that; GET-MASTER-ADDR-BY-NAME already names the promoted
        replica while the failover is under way)."""
        state = self.master_state()
        port = state.get("port", "")
        return (state["ip"], int(port)) if "ip" in state and port.isdigit() else None


class Sentinels:
    """`count` Sentinels watching `cluster`'s master, which listens on `master_host`."""

    def __init__(self, cluster: RedisNodes, master_host: str = "127.0.0.1", count: int = 3) -> None:
        self.cluster = cluster
        self.master_host = master_host
        self.sentinels = [Sentinel(cluster.workdir, f"sentinel-{i}", cluster.users) for i in range(count)]

    def addresses(self) -> str:
        """What REDIS_SENTINELS holds: host:port, separated by spaces."""
        return " ".join(f"{s.address}:{s.port}" for s in self.sentinels)

    def start(self) -> "Sentinels":
        """Start every Sentinel; the caller closes them, even when this fails."""
        require_binaries()
        for sentinel in self.sentinels:
            sentinel.write_config(self.cluster.master, self.master_host)
            sentinel.start()
        return self

    def wait_until_watching(self, replicas: int) -> None:
        """Every Sentinel sees the master up, its replicas, and the other Sentinels."""
        others = len(self.sentinels) - 1

        def watching(sentinel: Sentinel) -> bool:
            state = sentinel.master_state()
            return (state.get("flags") == "master" and state.get("num-slaves") == str(replicas)
                    and state.get("num-other-sentinels") == str(others))

        for sentinel in self.sentinels:
            wait_for(f"{sentinel} to see the master, {replicas} replica(s) and {others} other Sentinel(s)",
                     lambda: watching(sentinel), deadline=SENTINEL_DEADLINE, interval=0.1)

    def wait_for_master(self, address: tuple[str, int]) -> None:
        """Every Sentinel names `address` as the master."""
        for sentinel in self.sentinels:
            wait_for(f"{sentinel} to name {address[0]}:{address[1]} the master",
                     lambda: sentinel.master_address() == address, deadline=SENTINEL_DEADLINE, interval=0.1)

    def failover(self) -> None:
        """SENTINEL FAILOVER journal, on the first Sentinel."""
        reply = self.sentinels[0].cli("SENTINEL", "FAILOVER", MASTER_NAME).reply
        assert reply == "OK", reply

    def logs(self) -> str:
        return "\n".join(f"--- {s.name}\n{s.log_text()}" for s in self.sentinels)

    def close(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
