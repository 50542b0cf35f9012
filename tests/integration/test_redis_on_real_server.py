"""The Redis launch, Sentinel, preStop and probe scripts, run verbatim against real
redis-server processes.

With a single Redis (REDIS_PODS=1, dev), roles are static: a module-wide cluster of three
nodes (redis-0 the master, redis-1 and redis-2 its replicas) is started with `dash
components/redis-launch.sh` and the environment the StatefulSet sets; tests that need a
node to themselves start their own. With Sentinels (REDIS_PODS=3, prod), every pod runs
the launch script and `dash components/redis-sentinel.sh` on a loopback address of its
own; tests that fail or stop a pod start three of their own. Probes are `dash
components/redis-probe.sh <mode>` and the preStop hook `dash components/redis-prestop.sh`,
as the kubelet runs them in the pod. See tests/support/redis_nodes.py for how the
password is kept out of every message.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Optional

import pytest

from localcluster import commands
from support.redis_nodes import (
    COMMAND_TIMEOUT,
    LAUNCH_SCRIPT,
    PLACEHOLDER,
    PRESTOP_SCRIPT,
    PROBE_SCRIPT,
    PodNode,
    RedisNodes,
    RedisPods,
    sha256,
    Node,
    Output,
    Secret,
    base_env,
    collect,
    find_descendant,
    free_port,
    master_down,
    read_proc,
    require_binaries,
    run,
    spawn,
    wait_for,
)

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module", autouse=True)
def redis_binaries() -> None:
    require_binaries()


@pytest.fixture(scope="module")
def cluster(redis_binaries: None):
    with RedisNodes(replicas=2) as cluster:
        yield cluster


@pytest.fixture
def linked(cluster: RedisNodes) -> RedisNodes:
    """The cluster, once both replicas follow the master (again, after a restart)."""
    cluster.wait_until_replicas_linked()
    return cluster


@pytest.fixture
def lone_master(redis_binaries: None):
    """A master of its own, for tests that kill or slow it down."""
    with RedisNodes(replicas=0) as cluster:
        yield cluster.master


@pytest.fixture
def unstarted():
    """Directories, a password file and launch environments, but no process yet."""
    with contextlib.closing(RedisNodes(replicas=1)) as cluster:
        yield cluster


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def launch(node: Node, secret: Optional[Secret] = None, **env_overrides: Optional[str]) -> Output:
    """Run the launch script once, expecting it to stop on its own; None unsets a variable."""
    env = node.launch_env()
    for name, value in env_overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return run(["dash", str(LAUNCH_SCRIPT)], secret=secret or node.secret, env=env)


def assert_launch_refused(result: Output, node: Node, message: str) -> None:
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stderr.startswith("redis-launch: error: ")
    assert not result.leaked_password, "the launch script printed the password"
    assert not node.config_file.exists(), "a refused launch must not write the password to disk"


# --- authentication and replication ------------------------------------------------


def test_every_node_refuses_unauthenticated_commands(cluster: RedisNodes) -> None:
    for node in cluster.nodes:
        assert node.cli("GET", "journal", auth=False).reply.startswith("NOAUTH"), node
        assert node.cli("SET", "journal", "x", auth=False).reply.startswith("NOAUTH"), node


def test_master_accepts_authenticated_writes(cluster: RedisNodes) -> None:
    key, value = unique("entry"), unique("text")
    assert cluster.master.cli("SET", key, value).reply == "OK"
    assert cluster.master.cli("GET", key).reply == value


def test_a_full_master_refuses_writes_instead_of_growing_past_its_limit(lone_master: Node) -> None:
    lone_master.stop()
    lone_master.maxmemory = 4 * 2**20
    lone_master.start()
    # SETRANGE at an offset of 1 MiB makes a 1 MiB value from a one-byte argument.
    replies = [lone_master.cli("SETRANGE", unique("entry"), str(2**20), "x").reply for _ in range(8)]
    assert replies[0] == str(2**20 + 1)
    assert any(reply.startswith("OOM command not allowed") for reply in replies), replies[-1][:80]
    assert lone_master.cli("PING").reply == "PONG"


def test_both_replicas_reach_master_link_up(cluster: RedisNodes) -> None:
    cluster.wait_until_replicas_linked()
    for replica in cluster.replicas:
        info = replica.info("replication")
        assert info["role"] == "slave"
        assert (info["master_host"], info["master_port"]) == ("127.0.0.1", str(cluster.master.port))
    assert cluster.master.info("replication")["connected_slaves"] == "2"


def test_replicas_serve_data_written_to_the_master(linked: RedisNodes) -> None:
    key, value = unique("entry"), unique("text")
    assert linked.master.cli("SET", key, value).reply == "OK"
    for replica in linked.replicas:
        wait_for(f"{key} on {replica}", lambda: replica.cli("GET", key).reply == value)


def test_replicas_refuse_writes(linked: RedisNodes) -> None:
    for replica in linked.replicas:
        assert replica.cli("SET", unique("entry"), "x").reply.startswith("READONLY"), replica


# --- probes ---------------------------------------------------------------------------


def test_liveness_passes_on_every_healthy_node(linked: RedisNodes) -> None:
    for node in linked.nodes:
        result = node.probe("liveness")
        assert (result.returncode, result.stderr) == (0, ""), node


def test_readiness_passes_on_the_master_and_on_linked_replicas(linked: RedisNodes) -> None:
    for node in linked.nodes:
        result = node.probe("readiness")
        assert (result.returncode, result.stderr) == (0, ""), node


def test_replica_readiness_fails_while_the_master_is_down_and_passes_once_it_is_back(
    linked: RedisNodes,
) -> None:
    replica = linked.replicas[0]
    with master_down(linked):
        wait_for(f"{replica} to notice its master is gone",
                 lambda: replica.info("replication")["master_link_status"] == "down")
        unready = replica.probe("readiness")
        assert unready.returncode == 1
        assert "master_link_status:down" in unready.stderr
        assert replica.probe("liveness").returncode == 0, "a replica waiting for its master is alive"
    wait_for(f"readiness to pass on {replica} with its master back",
             lambda: replica.probe("readiness").returncode == 0)


def test_replica_answering_masterdown_stays_live_but_not_ready(linked: RedisNodes) -> None:
    replica = linked.replicas[1]
    assert replica.cli("CONFIG", "SET", "replica-serve-stale-data", "no").reply == "OK"
    try:
        with master_down(linked):
            wait_for(f"{replica} to answer PING with MASTERDOWN",
                     lambda: replica.ping().startswith("MASTERDOWN"))
            assert replica.probe("liveness").returncode == 0
            unready = replica.probe("readiness")
            assert unready.returncode == 1
            assert "MASTERDOWN" in unready.stderr
    finally:
        replica.cli("CONFIG", "SET", "replica-serve-stale-data", "yes")


def test_liveness_passes_and_readiness_fails_while_the_dataset_is_loading(lone_master: Node) -> None:
    master = lone_master
    keys = 3000
    commands = "".join(f"SET key:{i} value:{i}\n" for i in range(keys))
    assert master.cli(stdin=commands).stdout.count("OK") == keys
    # Fold the keys into the RDB base of the append-only file: only RDB loading
    # honours key-load-delay.
    assert "rewriting started" in master.cli("BGREWRITEAOF").reply
    wait_for("the AOF rewrite to finish",
             lambda: master.info("persistence")["aof_rewrite_in_progress"] == "0")
    master.stop(signal.SIGKILL)
    # Restart from the launch script's own config with loading slowed down
    # (500 µs a key, events served every KiB), so LOADING lasts about 1.5 s.
    master.start(["redis-server", str(master.config_file), "--key-load-delay", "500",
                  "--loading-process-events-interval-bytes", "1024"], answers=("LOADING",))

    liveness, readiness = master.probe("liveness"), master.probe("readiness")

    assert master.ping().startswith("LOADING"), "loading ended before the probes ran"
    assert (liveness.returncode, liveness.stderr) == (0, "")
    assert readiness.returncode == 1
    assert "LOADING" in readiness.stderr


def test_probe_hands_the_password_to_redis_cli_only_through_its_environment(
    cluster: RedisNodes,
) -> None:
    master, secret = cluster.master, cluster.secret
    # Holding every client for 1.5 s keeps the probe's redis-cli alive long enough
    # to read its /proc entries.
    assert master.cli("CLIENT", "PAUSE", "1500", "ALL").reply == "OK"
    probe = spawn(["dash", str(PROBE_SCRIPT), "readiness"], env=master.probe_env())
    try:
        cli_pid = wait_for("the probe's redis-cli", lambda: find_descendant(probe.pid, "redis-cli"))
        probe_argv, probe_argv_leaked = read_proc(probe.pid, "cmdline", secret)
        cli_argv, cli_argv_leaked = read_proc(cli_pid, "cmdline", secret)
        cli_environ, _ = read_proc(cli_pid, "environ", secret)
    finally:
        result = collect(probe, secret=secret)

    assert not probe_argv_leaked and not cli_argv_leaked, "a probe command line shows the password"
    assert cli_argv.split() == ["redis-cli", "--user", "operator", "-h", "127.0.0.1", "-p", str(master.port), "PING"]
    assert f"REDISCLI_AUTH={PLACEHOLDER}" in cli_environ.split()
    assert (result.returncode, result.stderr) == (0, ""), "the probe passes once the pause ends"
    assert not result.leaked_password


def test_probe_fails_with_a_wrong_password(cluster: RedisNodes) -> None:
    wrong = Secret.generate()
    wrong_dir = cluster.users.copy_with(cluster.workdir / "wrong-users", operator=wrong.reveal())
    result = cluster.master.probe("liveness", users_dir=wrong_dir, secret=wrong)
    assert result.returncode == 1
    assert "WRONGPASS" in result.stderr
    assert not result.leaked_password


def test_probes_fail_when_nothing_listens(cluster: RedisNodes) -> None:
    env = base_env()
    env.update(REDIS_USERS_DIR=str(cluster.users.directory), REDIS_PORT=str(free_port()))
    for mode in ("liveness", "readiness"):
        result = run(["dash", str(PROBE_SCRIPT), mode], secret=cluster.secret, env=env)
        assert result.returncode == 1
        assert "cannot reach Redis" in result.stderr and "Connection refused" in result.stderr


@pytest.mark.parametrize("args", [[], ["startup"], ["liveness", "readiness"]])
def test_probe_answers_an_unknown_mode_with_a_usage_error(cluster: RedisNodes, args: list) -> None:
    result = run(["dash", str(PROBE_SCRIPT), *args], secret=cluster.secret,
                 env=cluster.master.probe_env())
    assert result.returncode == 2
    assert "usage:" in result.stderr and "liveness|readiness" in result.stderr


# --- persistence ----------------------------------------------------------------------


def test_master_data_survives_kill_9_and_a_restart_from_the_same_data_directory(
    lone_master: Node,
) -> None:
    key, value = unique("entry"), unique("text")
    assert lone_master.cli("SET", key, value).reply == "OK"
    lone_master.stop(signal.SIGKILL)
    lone_master.start()
    assert lone_master.cli("GET", key).reply == value
    assert "DB loaded from append only file" in lone_master.log_text()
    assert not (lone_master.data_dir / "dump.rdb").exists(), "no snapshot: the AOF kept the data"



def test_the_journals_transactions_survive_a_restart_from_the_append_only_file(redis_binaries: None) -> None:
    # The append-only file replays a MULTI/EXEC as Redis's `default` user, whose rights
    # EXEC checks again (redis/redis#14541, fixed after 7.0): with `default` off and
    # allowed nothing, every entry written since the last rewrite vanished at restart.
    with RedisNodes(replicas=0) as lone:
        node, journal = lone.master, lone.users.passwords["journal"]
        for entry in ("first", "second"):
            reply = node.cli_as("journal", journal, stdin=f"MULTI\nINCR journal:next-id\nZADD journal:entries 1 {entry}\nEXEC\n")
            assert "NOPERM" not in reply.reply, reply.reply
        node.stop(signal.SIGKILL)
        node.start()
        assert "DB loaded from append only file" in node.log_text()
        assert "NOPERM" not in node.log_text()
        assert node.cli("ZRANGE", "journal:entries", "0", "-1").reply.split() == ["first", "second"]
        assert node.cli("GET", "journal:next-id").reply == "2"

# --- keeping the password private ----------------------------------------------------


def test_launch_script_execs_redis_server_with_the_config_file_as_its_only_argument(
    cluster: RedisNodes,
) -> None:
    for node in cluster.nodes:
        argvs, leaked = node.recorded_argvs()
        assert not leaked, f"the launch script passed the password to redis-server on {node}"
        assert argvs and all(argv == [str(node.config_file)] for argv in argvs), node


def test_no_redis_process_shows_the_password_in_its_command_line_or_environment(
    cluster: RedisNodes,
) -> None:
    for node in cluster.nodes:
        comm, _ = read_proc(node.pid, "comm", cluster.secret)
        assert comm.strip() == "redis-server", "the launch script must exec redis-server"
        for entry in ("cmdline", "environ"):
            _, leaked = read_proc(node.pid, entry, cluster.secret)
            assert not leaked, f"/proc/<pid>/{entry} of {node} shows the password"
        assert not cluster.secret.redact(node.log.read_text())[1], f"{node}'s log shows the password"


# Off: no AUTH selects it. Its rights stay, for the append-only file's replay
# (test_the_journals_transactions_survive_a_restart_from_the_append_only_file).
DEFAULT_USER_OFF = "user default off ~* &* +@all"


def test_generated_config_is_owner_only_and_authenticates_every_node(cluster: RedisNodes) -> None:
    for node in cluster.nodes:
        assert node.config_file.stat().st_mode & 0o777 == 0o600, node
        lines = node.config_lines()
        text = node.config_file.read_text()
        # The users by the hashes of their passwords; in clear only the one Redis sends.
        for user in ("journal", "sentinel", "operator"):
            assert cluster.users.passwords[user].reveal() not in text, (node, user)
        assert DEFAULT_USER_OFF in lines, node
        assert not any(line.startswith("requirepass") for line in lines), node
        for user, password in cluster.users.passwords.items():
            assert any(line.startswith(f"user {user} on #{sha256(password)} ") for line in lines), (node, user)
        for directive in ("masteruser replication", f'masterauth "{PLACEHOLDER}"',
                          "appendonly yes", 'save ""', f"maxmemory {node.maxmemory}",
                          "maxmemory-policy noeviction", f"port {node.port}", f'dir "{node.data_dir}"'):
            assert directive in lines, (node, directive)
        assert not any(line.startswith("slaveof") for line in lines), node
    assert not any(line.startswith("replicaof") for line in cluster.master.config_lines())
    for replica in cluster.replicas:
        assert f"replicaof 127.0.0.1 {cluster.master.port}" in replica.config_lines()


# --- launch script refusals ------------------------------------------------------------


def test_launch_fails_clearly_without_a_password_file(unstarted: RedisNodes) -> None:
    node = unstarted.master
    users = unstarted.users.copy_with(unstarted.workdir / "absent", operator=None)
    missing = users / "operator"
    result = launch(node, REDIS_USERS_DIR=str(users))
    assert_launch_refused(result, node, f"password file {missing} does not exist")


def test_launch_fails_clearly_with_an_empty_password_file(unstarted: RedisNodes) -> None:
    node = unstarted.master
    users = unstarted.users.copy_with(unstarted.workdir / "empty", replication="\n")
    empty = users / "replication"
    result = launch(node, REDIS_USERS_DIR=str(users))
    assert_launch_refused(result, node, f"password file {empty} is empty")


@pytest.mark.parametrize("hostname", ["redis", "redis-", "redis-one", "redis-1a", "7", "", None])
def test_launch_fails_clearly_when_hostname_has_no_ordinal(
    unstarted: RedisNodes, hostname: Optional[str]
) -> None:
    node = unstarted.master
    result = launch(node, HOSTNAME=hostname)
    assert_launch_refused(result, node, "has no numeric ordinal")


def test_launch_fails_clearly_for_a_replica_without_master_host(unstarted: RedisNodes) -> None:
    replica = unstarted.replicas[0]
    result = launch(replica, REDIS_MASTER_HOST=None)
    assert_launch_refused(result, replica, "REDIS_MASTER_HOST is required on replica redis-1")


def test_launch_fails_clearly_when_shipped_without_its_shared_part(unstarted: RedisNodes) -> None:
    node = unstarted.master
    alone = unstarted.workdir / "scripts"
    alone.mkdir()
    shutil.copy(LAUNCH_SCRIPT, alone)
    result = run(["dash", str(alone / LAUNCH_SCRIPT.name)], secret=node.secret, env=node.launch_env())
    assert_launch_refused(result, node, f"{alone}/redis-common.sh is missing: the scripts ConfigMap must ship it")


@pytest.mark.parametrize("breaker", ['"', "\\", "\n", "\r"], ids=["quote", "backslash", "newline", "cr"])
def test_launch_rejects_a_password_that_would_break_the_config_quoting(
    unstarted: RedisNodes, breaker: str
) -> None:
    node = unstarted.master
    bad = Secret.around(breaker)
    users = unstarted.users.copy_with(unstarted.workdir / "bad", replication=None)
    bad.write_to(users / "replication")
    result = launch(node, secret=bad, REDIS_USERS_DIR=str(users))
    assert_launch_refused(result, node, "cannot be written safely into a config")


@pytest.mark.parametrize("port", ["tcp://10.0.0.1:6379", "0", "65536", "6379 "])
def test_launch_fails_clearly_on_a_port_that_is_not_a_port_number(unstarted: RedisNodes, port: str) -> None:
    # "tcp://<ip>:6379" is what a Service named "redis" injects as REDIS_PORT into
    # every pod of its namespace when service links are on.
    node = unstarted.master
    result = launch(node, REDIS_PORT=port)
    assert_launch_refused(result, node, "REDIS_PORT must be a port number from 1 to 65535")


# --- pods with Sentinels ----------------------------------------------------------------
# REDIS_PODS=3: every pod runs its Redis through redis-launch.sh and its Sentinel through
# redis-sentinel.sh, on a loopback address of its own and named 127.<ordinal + 1>
# (tests/support/redis_nodes.py: RedisPods). The timings are the scripts' own.

#: Sentinel's down-after-milliseconds, in seconds.
DOWN_AFTER = 5.0
#: min-replicas-max-lag, in seconds.
MIN_REPLICAS_MAX_LAG = 10.0
#: From a master's failure to a promoted replica: detection, the quorum's agreement, up to
#: a second of deliberate delay and the promotion showing in INFO, with room to spare.
FAILOVER_DEADLINE = DOWN_AFTER + 10.0


@pytest.fixture(scope="module")
def sentinel_pods(redis_binaries: None):
    """Three pods started together on empty data, left running for tests that only look."""
    with RedisPods(3) as pods:
        pods.wait_until_settled()
        yield pods


@pytest.fixture
def pods(redis_binaries: None):
    """Three pods of their own, settled, for a test that fails or stops one."""
    with RedisPods(3) as pods:
        pods.wait_until_settled()
        yield pods


def sentinel_id(host: str) -> str:
    return hashlib.sha1(host.encode()).hexdigest()


def replicas_listed_by(master: PodNode) -> set:
    """The addresses a master lists its replicas under (INFO replication's slaveN lines)."""
    info = master.info("replication")
    return {dict(item.split("=", 1) for item in value.split(","))["ip"]
            for key, value in info.items() if key.startswith("slave") and key[5:].isdigit()}


def other_master(pods: RedisPods, old: PodNode) -> Optional[PodNode]:
    masters = [pod for pod in pods.masters() if pod is not old]
    return masters[0] if masters else None


def journal_written(master: PodNode, followers: list, key: str, value: str) -> None:
    assert master.cli("SET", key, value).reply == "OK"
    for pod in followers:
        wait_for(f"{key} on {pod}", lambda: pod.cli("GET", key).reply == value)
        # After its full sync a replica rewrites its append-only file, and until that is
        # done what it received is not on disk yet: a kill would lose it.
        wait_for(f"{pod}'s append-only file", lambda: pod.info("persistence")["aof_rewrite_in_progress"] == "0"
                 and pod.info("persistence")["aof_rewrite_scheduled"] == "0")


def wait_for_exit(pod: PodNode, deadline: float) -> int:
    """The Redis container's exit status, once it ended on its own."""
    assert pod.proc is not None
    wait_for(f"{pod}'s Redis to exit", lambda: pod.proc.poll() is not None, deadline=deadline, interval=0.1)
    return pod.proc.returncode


def test_three_pods_started_together_elect_pod_0_and_every_sentinel_names_it(sentinel_pods: RedisPods) -> None:
    pods = sentinel_pods.pods
    master = sentinel_pods.settled()
    assert master is pods[0], "on empty data the lowest ordinal is elected"
    assert "electing 127.1, the pod with the most data" in master.log_text()
    hosts = {pod.host for pod in pods}
    # Replicas announce their names: the master lists them so, and so do the Sentinels.
    assert replicas_listed_by(master) == hosts - {master.host}
    for pod in pods:
        fields = pod.sentinel_fields()
        assert (fields["name"], fields["ip"], fields["port"]) == ("journal", master.host, str(master.port)), pod
        assert fields["quorum"] == "2", "a majority of three Sentinels"
        wait_for(f"{pod}'s Sentinel to know the other Sentinels and the replicas, by name", lambda: (
            {row["ip"] for row in pod.sentinel_table("SENTINELS", "journal")} == hosts - {pod.host}
            and {row["ip"] for row in pod.sentinel_table("REPLICAS", "journal")} == hosts - {master.host}
            and all(row["flags"] == "slave" for row in pod.sentinel_table("REPLICAS", "journal"))))
        assert {row["runid"] for row in pod.sentinel_table("SENTINELS", "journal")} == {
            sentinel_id(host) for host in hosts - {pod.host}}, "every Sentinel's ID is derived from its name"


def test_every_pod_refuses_writes_without_a_replica_and_announces_its_name(sentinel_pods: RedisPods) -> None:
    for pod in sentinel_pods.pods:
        lines = pod.config_lines()
        for directive in ("min-replicas-to-write 1", "min-replicas-max-lag 10", f"replica-announce-ip {pod.host}",
                          DEFAULT_USER_OFF, "masteruser replication", f'masterauth "{PLACEHOLDER}"', "appendonly yes"):
            assert directive in lines, (pod, directive)


def test_sentinel_config_is_owner_only_and_kept_by_sentinel(sentinel_pods: RedisPods) -> None:
    for pod in sentinel_pods.pods:
        # Sentinel rewrites its file at every change of what it knows: the mode must
        # survive that.
        assert pod.sentinel_cli("SENTINEL", "FLUSHCONFIG").reply == "OK"
        assert "# Generated by CONFIG REWRITE" in pod.sentinel_config_file.read_text()
        assert pod.sentinel_config_file.stat().st_mode & 0o777 == 0o600, pod
        # Sentinel's rewrite drops the quotes of values that need none.
        lines = pod.secret.redact(pod.sentinel_config_file.read_text())[0].replace('"', "").splitlines()
        text = pod.sentinel_config_file.read_text()
        for user in ("journal", "operator"):
            assert pod.users_dir.joinpath(user).read_text() not in text, (pod, user)
        assert not any(line.startswith("requirepass") for line in lines), pod
        for directive in ("sentinel sentinel-user sentinel", f"sentinel sentinel-pass {PLACEHOLDER}",
                          "sentinel auth-user journal sentinel",
                          f"sentinel auth-pass journal {PLACEHOLDER}", "sentinel resolve-hostnames yes",
                          "sentinel announce-hostnames yes", f"sentinel announce-ip {pod.host}",
                          f"sentinel myid {sentinel_id(pod.host)}",
                          f"sentinel monitor journal 127.1 {pod.port} 2",
                          "sentinel down-after-milliseconds journal 5000", "sentinel failover-timeout journal 20000"):
            assert directive in lines, (pod, directive)


def test_a_full_sync_starts_at_once_on_every_pod(sentinel_pods: RedisPods) -> None:
    # Redis waits 5 s by default before a full sync, for more replicas to share it; a
    # master that has just taken over or restarted refuses writes until a replica has
    # synced, and every pod may become the master.
    for pod in sentinel_pods.pods:
        assert pod.cli("CONFIG", "GET", "repl-diskless-sync-delay").reply.split() == ["repl-diskless-sync-delay", "0"]


def test_readiness_passes_on_a_master_with_a_replica_in_sync_and_on_its_replicas(sentinel_pods: RedisPods) -> None:
    # As the kubelet asks, every 2 s: a replica (re)connecting after the tests before,
    # on a busy machine, is in sync within a few checks.
    for pod in sentinel_pods.pods:
        result = wait_for(f"{pod} to be ready", lambda: (r := pod.probe("readiness")).returncode == 0 and r, interval=2)
        assert (result.returncode, result.stderr) == (0, ""), pod


def test_sentinel_probe_passes_with_the_password_and_fails_without_it(sentinel_pods: RedisPods) -> None:
    for pod in sentinel_pods.pods:
        result = pod.probe("sentinel")
        assert (result.returncode, result.stderr) == (0, ""), pod
    wrong = Secret.generate()
    wrong_dir = sentinel_pods.users.copy_with(sentinel_pods.workdir / "wrong-users", operator=wrong.reveal())
    refused = sentinel_pods.pods[0].probe("sentinel", users_dir=wrong_dir, secret=wrong)
    assert refused.returncode == 1 and "WRONGPASS" in refused.stderr
    env = sentinel_pods.pods[0].probe_env()
    env["REDIS_SENTINEL_PORT"] = str(free_port())
    nobody = run(["dash", str(PROBE_SCRIPT), "sentinel"], secret=sentinel_pods.secret, env=env)
    assert nobody.returncode == 1 and "Connection refused" in nobody.stderr


def test_prestop_on_a_replica_leaves_at_once(sentinel_pods: RedisPods) -> None:
    replica = sentinel_pods.pods[1]
    assert replica.role() == "slave"
    started = time.monotonic()
    result = replica.prestop()
    assert time.monotonic() - started < 1.0
    assert result.returncode == 0 and "redis-1 is a replica: nothing to hand over" in result.stderr
    assert not result.leaked_password
    assert sentinel_pods.settled() is sentinel_pods.pods[0], "the master stays where it is"


def test_prestop_logs_where_the_container_log_is(sentinel_pods: RedisPods, tmp_path: Path) -> None:
    # The kubelet drops a hook's output unless it fails: the StatefulSet points
    # REDIS_PRESTOP_LOG at the container's own standard error.
    container_log = tmp_path / "container-stderr"
    container_log.touch()
    result = sentinel_pods.pods[1].prestop(REDIS_PRESTOP_LOG=str(container_log))
    assert result.returncode == 0 and result.stderr == ""
    assert "redis-1 is a replica: nothing to hand over" in container_log.read_text()
    unwritable = sentinel_pods.pods[1].prestop(REDIS_PRESTOP_LOG=str(tmp_path / "missing" / "stderr"))
    assert "cannot write to REDIS_PRESTOP_LOG" in unwritable.stderr
    assert "redis-1 is a replica: nothing to hand over" in unwritable.stderr


def test_prestop_of_a_single_redis_leaves_at_once(lone_master: Node) -> None:
    result = run(["dash", str(PRESTOP_SCRIPT)], secret=lone_master.secret, env=lone_master.launch_env())
    assert result.returncode == 0 and "REDIS_PODS is 1: no other pod" in result.stderr
    assert lone_master.info("replication")["role"] == "master"


def test_no_pod_process_shows_the_password(sentinel_pods: RedisPods) -> None:
    secret = sentinel_pods.secret
    for pod in sentinel_pods.pods:
        assert pod.sentinel_proc is not None
        for pid, what in ((pod.pid, "redis-server"), (pod.sentinel_proc.pid, "sentinel")):
            comm, _ = read_proc(pid, "comm", secret)
            assert comm.strip() == "redis-server", f"the {what} script of {pod} must exec redis-server"
            for entry in ("cmdline", "environ"):
                _, leaked = read_proc(pid, entry, secret)
                assert not leaked, f"/proc/<pid>/{entry} of {pod}'s {what} shows the password"
        for log in (pod.log, pod.sentinel_log):
            assert not secret.redact(log.read_text(errors="replace"))[1], f"{log} shows the password"
        argvs, leaked = pod.recorded_argvs()
        assert not leaked
        assert sorted(argvs) == sorted([[str(pod.config_file)], [str(pod.sentinel_config_file), "--sentinel"]]), pod


# --- failures and hand-overs ---------------------------------------------------------------


def test_a_killed_master_is_replaced_by_a_replica_and_comes_back_as_its_replica(pods: RedisPods) -> None:
    old = pods.settled()
    assert old is not None
    key = unique("entry")
    journal_written(old, [pod for pod in pods.pods if pod is not old], key, "kept")

    started = time.monotonic()
    old.kill_redis()
    new = wait_for("a replica promoted by the Sentinels", lambda: other_master(pods, old),
                   deadline=FAILOVER_DEADLINE, interval=0.1)
    elapsed = time.monotonic() - started
    print(f"\nkill -9 of the master -> {new} promoted after {elapsed:.1f} s")

    assert elapsed > DOWN_AFTER - 0.5, "no failover before down-after-milliseconds"
    assert new.cli("GET", key).reply == "kept"
    (third,) = [pod for pod in pods.pods if pod not in (old, new)]
    wait_for(f"{third} to follow {new}", lambda: third.info("replication").get("master_host") == new.host
             and third.info("replication").get("master_link_status") == "up", interval=0.1)
    assert new.cli("SET", unique("entry"), "after").reply == "OK", "the new master has a replica: it takes writes"

    # The kubelet restarts the container at once, then after a back-off of 10 s and more
    # while it fails: it starts for good once the Sentinels are done.
    assert pods.wait_until_settled() is new
    old.start_redis()
    assert pods.wait_until_settled() is new
    assert old.role() == "slave" and old.cli("GET", key).reply == "kept"
    assert f"redis-launch: {old.name} is a replica of {new.host}:{new.port}" in old.log_text()


def test_a_hung_master_is_replaced_and_rejoins_as_a_replica(pods: RedisPods) -> None:
    old = pods.settled()
    assert old is not None
    started = time.monotonic()
    os.kill(old.pid, signal.SIGSTOP)
    try:
        new = wait_for("a replica promoted by the Sentinels", lambda: other_master(pods, old),
                       deadline=FAILOVER_DEADLINE, interval=0.1)
        elapsed = time.monotonic() - started
    finally:
        os.kill(old.pid, signal.SIGCONT)
    print(f"\nSIGSTOP of the master -> {new} promoted after {elapsed:.1f} s")
    assert elapsed > DOWN_AFTER - 0.5
    # The Sentinels turn the old master into a replica once it answers again.
    assert pods.wait_until_settled() is new
    assert [pod.name for pod in pods.masters()] == [new.name]
    assert old.role() == "slave"


def test_prestop_on_the_master_hands_the_role_over_within_seconds(pods: RedisPods) -> None:
    old = pods.settled()
    assert old is not None
    key = unique("entry")
    journal_written(old, [pod for pod in pods.pods if pod is not old], key, "kept")

    started = time.monotonic()
    result = old.prestop()
    elapsed = time.monotonic() - started
    print(f"\npreStop on the master -> role moved after {elapsed:.1f} s")

    assert result.returncode == 0 and not result.leaked_password, result.stderr
    # Found by asking the pods, not waiting for the Sentinels to name it (they ask a
    # promoted replica for its role only once a second).
    assert "is the master now (its Redis says so)" in result.stderr, result.stderr
    assert elapsed < 3.0, result.stderr
    new = other_master(pods, old)
    assert new is not None and [pod.name for pod in pods.masters()] == [new.name]
    # The hook ends only once the new master has a replica besides the pod that is
    # stopping: without one it would refuse every write (min-replicas-to-write).
    others = [line for key, line in new.info("replication").items()
              if re.fullmatch(r"slave[0-9]+", key) and "state=online" in line and f"ip={old.host}," not in line]
    assert others, new.info("replication")
    assert old.role() == "slave" and old.info("replication")["master_host"] == new.host
    assert old.cli("SET", unique("entry"), "x").reply.startswith("READONLY")
    assert new.cli("GET", key).reply == "kept"
    assert new.cli("SET", unique("entry"), "after").reply == "OK"
    assert pods.wait_until_settled() is new


def test_a_stopping_master_waits_for_a_second_replica_so_the_next_master_keeps_one(pods: RedisPods) -> None:
    # A rollout: the pod restarted just before is not in sync yet when the master's
    # turn comes. Handing over at once would leave the next master without a replica
    # once the old one is gone, refusing every write (min-replicas-to-write 1).
    master = pods.settled()
    assert master is not None
    late = next(pod for pod in pods.pods if pod is not master)
    late.kill_redis()
    wait_for(f"{master} to see one replica", lambda: master.info("replication").get("connected_slaves") == "1",
             interval=0.1)
    results: list = []
    hook = threading.Thread(target=lambda: results.append((master.prestop(), time.monotonic())))
    started = time.monotonic()
    hook.start()
    time.sleep(2)
    # Meanwhile the master still takes writes.
    assert master.cli("SET", unique("entry"), "during the wait").reply == "OK"
    late_started = time.monotonic()
    late.start_redis()
    hook.join(timeout=40)
    ((result, finished),) = results
    assert "is the master now" in result.stderr, result.stderr
    # It handed over only after the late replica was back and in sync.
    assert finished > late_started, f"handed over {finished - started:.1f} s in: {result.stderr}"
    assert "replica(s) in sync after" not in result.stderr, result.stderr
    new = other_master(pods, master)
    assert new is not None
    # The next master keeps a replica without the old master: once the Sentinels
    # point it there, a partial resync, and it takes writes.
    master.kill_redis()
    wait_for(f"{new} to take writes without the old master",
             lambda: new.cli("SET", unique("entry"), "after").reply == "OK", deadline=10, interval=0.2)


def test_a_stopping_master_hands_over_anyway_when_no_second_replica_comes(pods: RedisPods) -> None:
    master = pods.settled()
    assert master is not None
    next(pod for pod in pods.pods if pod is not master).kill_redis()
    started = time.monotonic()
    result = master.prestop(REDIS_PRESTOP_REPLICAS_WAIT_SECONDS="1")
    elapsed = time.monotonic() - started
    assert "is the master now" in result.stderr, result.stderr
    assert "1 replica(s) in sync after 1 s, not 2" in result.stderr
    # It stayed the new master's only replica as long as it could, then said so.
    assert "no other replica in sync with" in result.stderr, result.stderr
    assert 5 <= elapsed < 9


def sentinel_current_epoch(pod: PodNode) -> int:
    """The epoch in the pod's Sentinel configuration (Sentinel keeps it there: 0 when absent)."""
    lines = [line for line in pod.sentinel_config_file.read_text().splitlines() if line.startswith("sentinel current-epoch ")]
    return int(lines[-1].split()[-1]) if lines else 0


def test_a_hand_over_led_by_a_sentinel_just_restarted_is_followed_by_every_sentinel(pods: RedisPods) -> None:
    # A rollout restarts the pods one by one, and the master's preStop asks the next
    # pod's Sentinel first: in reverse ordinal order, that one has just restarted. Its
    # failover must be announced under an epoch above the current master's, or the
    # other Sentinels ignore it and keep naming the old master.
    first = pods.settled()
    assert first is not None
    assert "is the master now" in first.prestop().stderr  # one failover: the epoch is past 0
    master = pods.wait_until_settled()
    asked_first = pods.pods[(master.ordinal + 1) % len(pods.pods)]
    asked_first.stop_sentinel()
    asked_first.start_sentinel()
    wait_for(f"{asked_first}'s Sentinel to answer", lambda: asked_first.sentinel_master() is not None, interval=0.1)
    # It starts under the epoch its peers are at, as its start script wrote it, before any
    # of their hellos (one every 2 s) could have told it: on a slow machine the hand-over
    # below may begin only after one has.
    assert sentinel_current_epoch(asked_first) == max(sentinel_current_epoch(pod) for pod in pods.pods if pod is not asked_first) > 0

    result = master.prestop()
    assert "is the master now" in result.stderr, result.stderr
    new = other_master(pods, master)
    assert new is not None
    # Within the hand-over's own bound, not after the Sentinels' detection time.
    agreed = wait_for("every Sentinel to name the new master",
                      lambda: all(pod.sentinel_master() == new.host for pod in pods.pods), deadline=3, interval=0.1)
    assert agreed
    assert pods.wait_until_settled() is new


def test_a_master_cut_off_from_its_replicas_refuses_writes_and_leaves_the_read_service(pods: RedisPods) -> None:
    master = pods.settled()
    assert master is not None
    replicas = [pod for pod in pods.pods if pod is not master]
    assert master.cli("SET", unique("entry"), "x").reply == "OK"
    started = time.monotonic()
    for replica in replicas:
        os.kill(replica.pid, signal.SIGSTOP)
    try:
        refusal = wait_for("NOREPLICAS from the master", lambda: (lambda reply: reply if reply.startswith("NOREPLICAS")
                           else None)(master.cli("SET", unique("entry"), "x").reply),
                           deadline=MIN_REPLICAS_MAX_LAG + 5, interval=0.2)
        elapsed = time.monotonic() - started
        print(f"\nreplicas stopped -> master refuses writes after {elapsed:.1f} s")
        assert elapsed <= MIN_REPLICAS_MAX_LAG + 2.5
        assert "NOREPLICAS" in refusal
        unready = master.probe("readiness")
        assert unready.returncode == 1 and "master has no replica in sync" in unready.stderr
        assert master.probe("liveness").returncode == 0
        os.kill(replicas[0].pid, signal.SIGCONT)
        wait_for(f"readiness of {master} with one replica back", lambda: master.probe("readiness").returncode == 0,
                 interval=0.2)
    finally:
        for replica in replicas:
            os.kill(replica.pid, signal.SIGCONT)
    wait_for(f"{master} to take writes again", lambda: master.cli("SET", unique("entry"), "x").reply == "OK",
             interval=0.2)


def test_a_master_restarted_before_the_sentinels_notice_hands_the_role_to_a_replica(pods: RedisPods) -> None:
    # Taking the role back by itself races the Sentinels' failover (two masters for a
    # while), and makes both replicas discard their copies; a replica promoted at once
    # keeps its copy and takes writes within seconds.
    master = pods.settled()
    assert master is not None
    key = unique("entry")
    journal_written(master, [pod for pod in pods.pods if pod is not master], key, "kept")
    logs_before = {pod.name: len(pod.log_text()) for pod in pods.pods}
    master.kill_redis()
    started = time.monotonic()
    master.start_redis()
    new = wait_for("a replica promoted", lambda: other_master(pods, master), deadline=FAILOVER_DEADLINE, interval=0.1)
    elapsed = time.monotonic() - started
    print(f"\nmaster restarted -> {new} promoted after {elapsed:.1f} s")
    assert elapsed < DOWN_AFTER, "well before the Sentinels alone would have noticed"
    assert pods.wait_until_settled() is new
    assert master.role() == "slave" and master.cli("GET", key).reply == "kept"
    assert new.cli("GET", key).reply == "kept"
    assert new.cli("SET", unique("entry"), "after").reply == "OK"
    assert f"the Sentinels still name {master.name} the master" in master.log_text()
    # It never served as a master meanwhile, and the other replica kept its copy.
    assert "MASTER MODE enabled" not in master.log_text()[logs_before[master.name]:]
    third = next(pod for pod in pods.pods if pod not in (master, new))
    since = third.log_text()[logs_before[third.name]:]
    assert "Full resync from master" not in since, since


def test_a_restarted_master_takes_the_role_back_when_no_replica_can_be_promoted(pods: RedisPods) -> None:
    master = pods.settled()
    assert master is not None
    key = unique("entry")
    journal_written(master, [pod for pod in pods.pods if pod is not master], key, "kept")
    for pod in pods.pods:
        if pod is not master:
            pod.kill_redis()
    master.kill_redis()
    master.start_redis()
    wait_for(f"{master} to take the role back", lambda: master.role() == "master", deadline=FAILOVER_DEADLINE,
             interval=0.1)
    assert "no replica can be promoted" in master.log_text()
    assert master.cli("GET", key).reply == "kept"


def test_a_master_named_by_the_sentinels_refuses_to_start_on_an_empty_volume(pods: RedisPods) -> None:
    old = pods.settled()
    assert old is not None
    key = unique("entry")
    journal_written(old, [pod for pod in pods.pods if pod is not old], key, "kept")
    old.lose_volume()

    refused = run(["dash", str(LAUNCH_SCRIPT)], secret=old.secret, env=old.launch_env(), timeout=20)
    assert refused.returncode == 1, refused.stderr
    assert f"refusing to start {old.name}: the Sentinels name it the master, and {old.data_dir} holds no data" \
        in refused.stderr
    assert not refused.leaked_password
    assert not any(old.data_dir.iterdir()), "no server ran on the empty directory"

    new = wait_for("a replica promoted by the Sentinels", lambda: other_master(pods, old),
                   deadline=FAILOVER_DEADLINE, interval=0.1)
    assert pods.wait_until_settled() is new, "the Sentinels name the new master before the next start"
    old.start_redis()
    assert pods.wait_until_settled() is new
    assert old.role() == "slave"
    assert old.cli("GET", key).reply == "kept", "the pod on a new volume got the journal from the new master"


# --- the election, when no Sentinel knows a master ------------------------------------------


def restart_every_pod(pods: RedisPods, only: Optional[list] = None) -> None:
    """Every pod stopped and replaced at once (Sentinels' state gone), then `only` started."""
    for pod in pods.pods:
        pod.new_pod()
    pods.start(only if only is not None else pods.pods)


def test_every_pod_restarted_at_once_elects_the_largest_dataset_and_loses_nothing(pods: RedisPods) -> None:
    # As in the journal: one key however many entries. Pod 0 comes back on an empty
    # volume, pod 2 without the later entries; after the restart every offset is 0.
    first, ahead, behind = pods.pods
    assert pods.settled() is first
    journal = unique("journal")
    journal_written(first, [ahead, behind], journal, "first entry")
    behind.kill_redis()
    longer = "first entry" + ", and a later one" * 500
    journal_written(first, [ahead], journal, longer)
    first.lose_volume()

    restart_every_pod(pods)

    assert pods.wait_until_settled() is ahead
    assert "electing 127.2, the pod with the most data (1 keys" in first.log_text()
    for pod in pods.pods:
        assert pod.cli("GET", journal).reply == longer, f"{pod} lost the journal"
    for pod in pods.pods:
        assert_log_keeps_the_password(pod)


def test_the_election_waits_for_every_pod_and_refuses_while_one_is_silent(pods: RedisPods) -> None:
    first, second, silent = pods.pods
    for pod in pods.pods:
        pod.env_overrides["REDIS_PEER_WAIT_SECONDS"] = "2"
    before = {pod.name: len(pod.log_text()) for pod in pods.pods}
    restart_every_pod(pods, only=[first, second])
    for pod in (first, second):
        wait_for_exit(pod, deadline=20)
        assert pod.role() == ""
    logs = {pod.name: pod.log_text()[before[pod.name]:] for pod in pods.pods}
    # redis-1 may have given up first, and been silent for redis-0's last question too.
    assert re.search(r"refusing to start redis-0: no Sentinel knows a master, and pod\(s\)( 127\.2)? 127\.3 "
                     r"did not answer within 2 s", logs["redis-0"]), logs["redis-0"]
    assert "journal-iac/redis-recovery" in logs["redis-0"], "the refusal points to the operator's way out"
    assert "refusing to start redis-1: no Sentinel knows a master, and no pod answers as one" in logs["redis-1"]
    assert not any("electing" in log or "is the master" in log for log in logs.values())
    assert silent.proc is not None and silent.proc.poll() is not None


def test_the_operator_elects_a_chosen_pod_while_another_is_gone(pods: RedisPods) -> None:
    first, chosen, gone = pods.pods
    key = unique("entry")
    journal_written(first, [chosen, gone], key, "kept")
    first.env_overrides.update(REDIS_PEER_WAIT_SECONDS="1", REDIS_RECOVERY="recover-from-1")
    chosen.env_overrides["REDIS_PEER_WAIT_SECONDS"] = "30"
    restart_every_pod(pods, only=[first, chosen])

    assert pods.wait_until_settled() is chosen
    assert "electing 127.2, as REDIS_RECOVERY=recover-from-1 says" in first.log_text()
    assert first.cli("GET", key).reply == "kept"
    assert_log_keeps_the_password(first)


def test_the_operator_starts_an_empty_master_knowingly(pods: RedisPods) -> None:
    first = pods.pods[0]
    journal_written(first, pods.pods[1:], unique("entry"), "discarded")
    first.lose_volume()
    first.env_overrides.update(REDIS_PEER_WAIT_SECONDS="1", REDIS_RECOVERY="start-empty")
    restart_every_pod(pods, only=[first])

    wait_for(f"{first} to be elected", lambda: first.role() == "master", deadline=20, interval=0.1)
    assert first.cli("DBSIZE").reply == "0"
    assert "electing 127.1, the pod with the most data among those that answer (REDIS_RECOVERY=start-empty" \
        in first.log_text()


def test_a_recovery_decision_left_on_a_pod_is_ignored_while_every_pod_answers(pods: RedisPods) -> None:
    first = pods.pods[0]
    key = unique("entry")
    journal_written(first, pods.pods[1:], key, "kept")
    first.env_overrides["REDIS_RECOVERY"] = "start-empty"
    first.lose_volume()
    restart_every_pod(pods)
    master = pods.wait_until_settled()
    assert master is not first and first.cli("GET", key).reply == "kept"
    assert "REDIS_RECOVERY=start-empty ignored" in first.log_text()


class FakeServer:
    """A server redis-cli speaks to as to Redis, on a loopback address: each command is
    answered by `answer` with the RESP bytes it returns, and recorded (AUTH without its
    argument)."""

    def __init__(self, address: str, port: int) -> None:
        self.commands: list = []
        self._server = socket.create_server((address, port))
        self._acceptor = threading.Thread(target=self._serve, daemon=True)
        self._acceptor.start()

    def answer(self, words: list) -> bytes:
        raise NotImplementedError

    @staticmethod
    def bulk(text: str) -> bytes:
        data = text.encode()
        return b"$%d\r\n%s\r\n" % (len(data), data)

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self._server.accept()
                threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as stream, contextlib.suppress(OSError, ValueError):
            while True:
                header = stream.readline()
                if not header.startswith(b"*"):
                    return
                words = []
                for _ in range(int(header[1:])):
                    length = int(stream.readline()[1:])
                    words.append(stream.read(length + 2)[:-2].decode())
                if words[0].upper() == "AUTH":
                    self.commands.append("AUTH")
                    connection.sendall(b"+OK\r\n")
                    continue
                self.commands.append(" ".join(words).upper())
                connection.sendall(self.answer(words))

    def close(self) -> None:
        # A socket closed while a thread waits in accept() on it keeps listening until that
        # accept() returns: shut it down first, which ends the wait, so the next test's
        # questions on the same port do not reach this one.
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._acceptor.join(timeout=COMMAND_TIMEOUT)
        assert not self._acceptor.is_alive(), "the fake server still accepts"


class FakePeer(FakeServer):
    """A pod that answers INFO and the launch script's element count with the figures it
    is given, and takes REPLICAOF NO ONE (then answers as a master); nothing else."""

    def __init__(self, address: str, port: int, *, replid: str, offset: int, elements: int, dataset: int) -> None:
        self.figures = dict(replid=replid, offset=offset, elements=elements, dataset=dataset)
        self.role = "slave"
        super().__init__(address, port)

    def answer(self, words: list) -> bytes:
        f = self.figures
        command = words[0].upper()
        if command == "INFO":
            return self.bulk(
                f"# Replication\r\nrole:{self.role}\r\nmaster_host:127.0.0.1\r\nconnected_slaves:0\r\n"
                f"master_replid:{f['replid']}\r\nmaster_repl_offset:{f['offset']}\r\n# Persistence\r\nloading:0\r\n"
                f"# Memory\r\nused_memory_dataset:{f['dataset']}\r\n# Keyspace\r\n"
                + ("db0:keys=1,expires=0,avg_ttl=0\r\n" if f["elements"] else ""))
        if command == "EVAL_RO":
            return b":%d\r\n" % f["elements"]
        if [word.upper() for word in words] == ["REPLICAOF", "NO", "ONE"]:
            self.role = "master"
            return b"+OK\r\n"
        return b"-ERR not a real Redis\r\n"


class FakeSentinel(FakeServer):
    """A Sentinel that names a master, at a config-epoch, with flags; nothing else."""

    def __init__(self, address: str, port: int, *, master: str, master_port: int, epoch: int,
                 flags: str = "master") -> None:
        self.master, self.master_port, self.epoch, self.flags = master, master_port, epoch, flags
        super().__init__(address, port)

    def answer(self, words: list) -> bytes:
        question = [word.upper() for word in words]
        if question == ["SENTINEL", "MASTER", "JOURNAL"]:
            fields = ["name", "journal", "ip", self.master, "port", str(self.master_port), "flags", self.flags,
                      "config-epoch", str(self.epoch), "quorum", "2"]
            return b"*%d\r\n" % len(fields) + b"".join(self.bulk(field) for field in fields)
        if question == ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "JOURNAL"]:
            return b"*2\r\n" + self.bulk(self.master) + self.bulk(str(self.master_port))
        return b"-ERR not a real Sentinel\r\n"


def give_data(pod: PodNode, key: str, value: str) -> None:
    """Write `key` into the pod's data directory through a server of its own, as a past run would have."""
    socket_path = pod.home / "seed.sock"
    server = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(socket_path), "--dir", str(pod.data_dir),
                               "--appendonly", "yes", "--save", ""], stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for("the seeding server", lambda: run(["redis-cli", "-s", str(socket_path), "PING"], secret=pod.secret,
                                                   env=base_env()).reply == "PONG")
        assert run(["redis-cli", "-s", str(socket_path), "SET", key, value], secret=pod.secret,
                   env=base_env()).reply == "OK"
        run(["redis-cli", "-s", str(socket_path), "SHUTDOWN"], secret=pod.secret, env=base_env())
        server.wait(timeout=COMMAND_TIMEOUT)
    finally:
        commands.stop(server)


@pytest.mark.parametrize("sentinels, expected", [
    # They differ, as during a failover: the most recent configuration counts.
    ([dict(master="127.3", epoch=2), dict(master="127.2", epoch=1)], "replica of 127.3"),
    # They name this pod, which holds data: it is the master again.
    ([dict(master="127.1", epoch=1), dict(master="127.1", epoch=1)], "the master"),
    # They name this pod while one of them fails it over: it would be a second master.
    ([dict(master="127.1", epoch=1), dict(master="127.1", epoch=1, flags="s_down,o_down,master,failover_in_progress")],
     "refused"),
], ids=["most-recent-epoch", "named-master-with-data", "named-master-being-failed-over"])
def test_a_pod_starts_as_the_most_recent_sentinel_configuration_says(
    redis_binaries: None, sentinels: list, expected: str
) -> None:
    with contextlib.closing(RedisPods(3)) as pods:
        pod = pods.pods[0]
        give_data(pod, "journal", "kept")
        fakes = [FakeSentinel(peer.address, peer.sentinel_port, master_port=peer.port, **answer)
                 for peer, answer in zip(pods.pods[1:], sentinels)]
        try:
            if expected == "refused":
                result = run(["dash", str(LAUNCH_SCRIPT)], secret=pod.secret, env=pod.launch_env(), timeout=20)
                assert result.returncode == 1
                assert "refusing to start redis-0 as the master: a Sentinel is failing it over right now" in result.stderr
                return
            pod.start_redis()
            if expected == "the master":
                wait_for(f"{pod} to run as the master", lambda: pod.role() == "master", interval=0.1)
                assert pod.cli("GET", "journal").reply == "kept"
                assert "redis-launch: redis-0 is the master" in pod.log_text()
            else:
                wait_for(f"{pod} to run as a replica", lambda: pod.role() == "slave", interval=0.1)
                assert pod.info("replication")["master_host"] == "127.3"
                assert f"replicaof 127.3 {pod.port}" in pod.config_lines()
        finally:
            for fake in fakes:
                fake.close()


@pytest.mark.parametrize("ahead, larger, elected", [
    # One history: the higher offset wins, whatever the counts.
    (dict(offset=2000, elements=10, dataset=1000), dict(offset=1000, elements=20, dataset=9000, same=True), "127.2"),
    # Two histories: offsets do not compare; the more elements win, whatever the memory.
    (dict(offset=2000, elements=10, dataset=9000), dict(offset=1000, elements=20, dataset=1000), "127.3"),
    # As many elements: the larger dataset.
    (dict(offset=2000, elements=20, dataset=1000), dict(offset=1000, elements=20, dataset=9000), "127.3"),
    # Nothing anywhere: the lowest ordinal, whatever memory the others report.
    (dict(offset=0, elements=0, dataset=10**9), dict(offset=0, elements=0, dataset=10**9), "127.1"),
], ids=["offset-within-one-history", "elements-across-histories", "dataset-at-equal-elements", "empty-pods"])
def test_the_election_orders_by_offset_within_one_history_then_elements_then_dataset(
    redis_binaries: None, ahead: dict, larger: dict, elected: str
) -> None:
    with contextlib.closing(RedisPods(3)) as pods:
        coordinator, first_pod, second_pod = pods.pods
        first = FakePeer(first_pod.address, first_pod.port, replid="a" * 40, **ahead)
        same = larger.pop("same", False)
        second = FakePeer(second_pod.address, second_pod.port, replid="a" * 40 if same else "b" * 40, **larger)
        try:
            coordinator.start_redis()
            if elected == coordinator.host:
                wait_for(f"{coordinator} to be elected", lambda: coordinator.role() == "master", interval=0.1)
            else:
                wait_for(f"{coordinator} to follow the elected fake pod",
                         lambda: coordinator.info("replication").get("master_host") == elected, interval=0.1)
        finally:
            first.close()
            second.close()
        promoted = [fake for fake in (first, second) if "REPLICAOF NO ONE" in fake.commands]
        assert promoted == {"127.2": [first], "127.3": [second]}.get(elected, []), "only the elected pod is promoted"
        assert f"electing {elected}, the pod with the most data" in coordinator.log_text()


# --- the launch script's questions ------------------------------------------------------------


def test_a_pod_names_its_peers_after_pod_0_in_the_statefulsets_domain(unstarted: RedisNodes) -> None:
    # A redis-cli that records whom it was asked to reach and answers as an unknown host
    # would, except for this pod's own servers: the names are the promise here, and no
    # lookup leaves the machine.
    node = unstarted.master
    shims, record = unstarted.workdir / "cli-shim", unstarted.workdir / "asked"
    shims.mkdir()
    real = shutil.which("redis-cli")
    (shims / "redis-cli").write_text(
        "#!/bin/sh\n"
        f"[ \"$4\" = 127.0.0.1 ] && exec {real} \"$@\"\n"
        f"printf '%s\\n' \"$*\" >> {record}\n"
        "printf 'Could not connect to Redis at %s:%s: Name or service not known\\n' \"$4\" \"$6\"\n"
        "exit 1\n"
    )
    (shims / "redis-cli").chmod(0o700)
    env = node.launch_env()
    env.update(PATH=f"{shims}:{base_env()['PATH']}", REDIS_PODS="3",
               REDIS_MASTER_HOST="redis-0.redis-write.journal.svc", REDIS_MASTER_PORT=str(node.port),
               REDIS_PEER_WAIT_SECONDS="0")
    launcher = subprocess.Popen(["dash", str(LAUNCH_SCRIPT)], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = launcher.communicate(timeout=30)
    finally:
        commands.stop(launcher)
    assert launcher.returncode != 0, err
    asked = record.read_text().splitlines()
    assert asked[:2] == [
        "--user operator -h redis-1.redis-write.journal.svc -p 26379 SENTINEL MASTER journal",
        "--user operator -h redis-2.redis-write.journal.svc -p 26379 SENTINEL MASTER journal",
    ], "every Sentinel is asked, by the pod's name, as the operator"
    assert f"--user operator -h redis-1.redis-write.journal.svc -p {node.port} INFO replication keyspace persistence memory" in asked
    assert f"--user operator -h redis-2.redis-write.journal.svc -p {node.port} INFO replication keyspace persistence memory" in asked
    assert "pod(s) redis-1.redis-write.journal.svc redis-2.redis-write.journal.svc did not answer" in err
    assert "replica-announce-ip redis-0.redis-write.journal.svc" in node.config_lines()


def test_a_pod_asks_the_sentinels_with_the_password_only_in_redis_clis_environment(unstarted: RedisNodes) -> None:
    node, secret = unstarted.master, unstarted.secret
    # A Sentinel that accepts the connection and never answers keeps the question open
    # (until the launch script's own 3 s bound), long enough to read its /proc entries.
    # It asks its own Sentinel first, through REDIS_LOCAL_HOST: the silent one.
    with socket.socket() as silent_sentinel:
        silent_sentinel.bind(("127.0.0.2", 0))
        silent_sentinel.listen()
        sentinel_port = silent_sentinel.getsockname()[1]
        env = node.launch_env()
        env.update(REDIS_PODS="2", REDIS_HOSTS="127.0.0.1 127.0.0.2", REDIS_MASTER_PORT=str(node.port),
                   REDIS_SENTINEL_PORT=str(sentinel_port), REDIS_LOCAL_HOST="127.0.0.2",
                   REDIS_PEER_WAIT_SECONDS="0")
        launcher = spawn(["dash", str(LAUNCH_SCRIPT)], env=env)
        try:
            cli_pid = wait_for("the launch script's redis-cli", lambda: find_descendant(launcher.pid, "redis-cli"))
            cli_argv, cli_argv_leaked = read_proc(cli_pid, "cmdline", secret)
            cli_environ, _ = read_proc(cli_pid, "environ", secret)
        finally:
            commands.stop(launcher)

    assert not cli_argv_leaked, "redis-cli's command line shows the password"
    assert cli_argv.split() == ["redis-cli", "--user", "operator", "-h", "127.0.0.2", "-p", str(sentinel_port),
                                "SENTINEL", "MASTER", "journal"]
    assert f"REDISCLI_AUTH={PLACEHOLDER}" in cli_environ.split()


def assert_log_keeps_the_password(node: Node) -> None:
    assert not node.secret.redact(node.log.read_text(errors="replace"))[1], f"{node}'s log shows the password"


@pytest.mark.parametrize("name, value, message", [
    ("REDIS_RECOVERY", "wipe", "REDIS_RECOVERY must be empty, 'start-empty' or 'recover-from-<ordinal>'"),
    ("REDIS_RECOVERY", "recover-from-01", "REDIS_RECOVERY must be empty"),
    ("REDIS_PODS", "two", "REDIS_PODS must be the number of pods"),
    ("REDIS_PEER_WAIT_SECONDS", "1m", "REDIS_PEER_WAIT_SECONDS must be a number of seconds"),
])
def test_launch_fails_clearly_on_an_election_setting_it_cannot_read(
    unstarted: RedisNodes, name: str, value: str, message: str
) -> None:
    node = unstarted.master
    result = launch(node, **{name: value})
    assert_launch_refused(result, node, message)


# --- users: each may do only its part ---------------------------------------------------

FORBIDDEN_TO_THE_FRONTEND = [
    ("FLUSHALL",), ("CONFIG", "SET", "maxmemory", "1"), ("EVAL", "return 1", "0"), ("KEYS", "*"),
    ("REPLICAOF", "NO", "ONE"), ("SHUTDOWN", "NOSAVE"), ("DEBUG", "SLEEP", "0"), ("ACL", "LIST"),
]


def test_the_frontends_user_runs_the_journals_commands_on_its_keys_and_nothing_else(sentinel_pods: RedisPods) -> None:
    master = sentinel_pods.wait_until_settled()
    journal = sentinel_pods.users.passwords["journal"]
    for command in FORBIDDEN_TO_THE_FRONTEND:
        reply = master.cli_as("journal", journal, *command).reply
        # DEBUG is refused to every user (enable-debug-command no) before the ACL is
        # consulted: the ACL's own verdict is asked for it as for the others.
        assert reply.startswith("NOPERM") or command[0] == "DEBUG", (command, reply)
        verdict = master.cli("ACL", "DRYRUN", "journal", *command).reply
        assert "no permissions" in verdict, (command, verdict)
    assert master.cli_as("journal", journal, "GET", "other-key").reply.startswith("NOPERM"), "only the journal's keys"
    assert master.cli_as("journal", journal, "INCR", "journal:next-id").reply.isdigit()
    assert master.cli_as("journal", journal, "ZADD", "journal:entries", "1", "one").reply == "1"
    assert master.cli_as("journal", journal, "ZREVRANGE", "journal:entries", "0", "-1").reply == "one"
    assert master.cli_as("journal", journal, "WAIT", "1", "1000").reply in {"1", "2"}
    assert master.role() == "master" and master.ping() == "PONG", "still the master, still running"
    # At the Sentinels, it may ask for the master and nothing else.
    assert "journal" in master.cli_as("journal", journal, "SENTINEL", "MASTERS", port=master.sentinel_port).reply
    for command in (("SENTINEL", "FAILOVER", "journal"), ("SENTINEL", "SET", "journal", "quorum", "1"),
                    ("SENTINEL", "REMOVE", "journal")):
        reply = master.cli_as("journal", journal, *command, port=master.sentinel_port).reply
        assert reply.startswith("NOPERM"), (command, reply)


def test_default_is_off_on_every_server_and_sentinel(sentinel_pods: RedisPods) -> None:
    sentinel_pods.wait_until_settled()
    pod = sentinel_pods.pods[0]
    for port in (pod.port, pod.sentinel_port):
        refused = pod.cli_as("default", Secret.generate(), "PING", port=port)
        assert "WRONGPASS" in refused.stderr and refused.reply.startswith("NOAUTH"), (port, refused)
        no_user = run(["redis-cli", "-h", pod.address, "-p", str(port), "PING"], secret=pod.secret, env=base_env())
        assert no_user.reply.startswith("NOAUTH"), (port, no_user.reply)


def test_replicas_sync_as_the_replication_user_which_may_do_nothing_else(sentinel_pods: RedisPods) -> None:
    master = sentinel_pods.wait_until_settled()
    replication = sentinel_pods.users.passwords["replication"]
    clients = master.cli("CLIENT", "LIST", "TYPE", "replica").reply.splitlines()
    assert clients and all(" user=replication " in f" {line} " for line in clients), clients
    for command in (("GET", "journal:next-id"), ("INFO",), ("FLUSHALL",), ("REPLICAOF", "NO", "ONE")):
        assert master.cli_as("replication", replication, *command).reply.startswith("NOPERM"), command


def test_sentinels_watch_the_servers_as_the_sentinel_user(sentinel_pods: RedisPods) -> None:
    master = sentinel_pods.wait_until_settled()
    users = {field.split("=", 1)[1] for line in master.cli("CLIENT", "LIST", "TYPE", "normal").reply.splitlines()
             for field in line.split() if field.startswith("user=")}
    assert "sentinel" in users and "default" not in users, users
    sentinel = sentinel_pods.users.passwords["sentinel"]
    for command in (("GET", "journal:next-id"), ("FLUSHALL",), ("CONFIG", "SET", "maxmemory", "1")):
        assert master.cli_as("sentinel", sentinel, *command).reply.startswith("NOPERM"), command
    operator = sentinel_pods.users.passwords["operator"]
    for command in (("SET", "journal:next-id", "1"), ("FLUSHALL",), ("CONFIG", "SET", "maxmemory", "1"), ("ACL", "LIST")):
        assert master.cli_as("operator", operator, *command).reply.startswith("NOPERM"), command


def test_admin_may_do_what_no_other_user_may_on_the_servers_and_the_sentinels(sentinel_pods: RedisPods) -> None:
    master = sentinel_pods.wait_until_settled()
    admin = sentinel_pods.users.passwords["admin"]
    assert master.cli_as("admin", admin, "CONFIG", "GET", "maxmemory-policy").reply.splitlines()[-1] == "noeviction"
    assert master.cli_as("admin", admin, "SET", "any-key", "1").reply == "OK"
    assert "user admin on" in master.cli_as("admin", admin, "ACL", "LIST").reply
    assert master.cli_as("admin", admin, "SENTINEL", "CKQUORUM", "journal", port=master.sentinel_port).reply.startswith("OK")
