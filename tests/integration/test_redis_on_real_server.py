"""The Redis launch and probe scripts, run verbatim against real redis-server processes.

A module-wide cluster of three nodes (redis-0 the master, redis-1 and redis-2 its
replicas) is started with `dash components/redis-launch.sh` and the environment the
StatefulSet sets; tests that need a node to themselves start their own. Probes are
`dash components/redis-probe.sh <mode>`, as the kubelet runs them in the pod.
See tests/support/redis_nodes.py for how the password is kept out of every message.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import time
import uuid
from typing import Optional

import pytest

from support.redis_nodes import (
    LAUNCH_SCRIPT,
    PLACEHOLDER,
    PROBE_SCRIPT,
    RedisNodes,
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
    assert cli_argv.split() == ["redis-cli", "-h", "127.0.0.1", "-p", str(master.port), "PING"]
    assert f"REDISCLI_AUTH={PLACEHOLDER}" in cli_environ.split()
    assert (result.returncode, result.stderr) == (0, ""), "the probe passes once the pause ends"
    assert not result.leaked_password


def test_probe_fails_with_a_wrong_password(cluster: RedisNodes) -> None:
    wrong = Secret.generate()
    wrong_file = wrong.write_to(cluster.workdir / "wrong-passwd")
    result = cluster.master.probe("liveness", password_file=wrong_file, secret=wrong)
    assert result.returncode == 1
    assert "WRONGPASS" in result.stderr
    assert not result.leaked_password


def test_probes_fail_when_nothing_listens(cluster: RedisNodes) -> None:
    env = base_env()
    env.update(REDIS_PASSWORD_FILE=str(cluster.password_file), REDIS_PORT=str(free_port()))
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


def test_generated_config_is_owner_only_and_authenticates_every_node(cluster: RedisNodes) -> None:
    for node in cluster.nodes:
        assert node.config_file.stat().st_mode & 0o777 == 0o600, node
        lines = node.config_lines()
        for directive in (f'requirepass "{PLACEHOLDER}"', f'masterauth "{PLACEHOLDER}"',
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
    missing = unstarted.workdir / "redis-passwd" / "absent"
    result = launch(node, REDIS_PASSWORD_FILE=str(missing))
    assert_launch_refused(result, node, f"password file {missing} does not exist")


def test_launch_fails_clearly_with_an_empty_password_file(unstarted: RedisNodes) -> None:
    node = unstarted.master
    empty = unstarted.workdir / "redis-passwd" / "empty"
    empty.write_text("\n")
    result = launch(node, REDIS_PASSWORD_FILE=str(empty))
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


@pytest.mark.parametrize("breaker", ['"', "\\", "\n", "\r"], ids=["quote", "backslash", "newline", "cr"])
def test_launch_rejects_a_password_that_would_break_the_config_quoting(
    unstarted: RedisNodes, breaker: str
) -> None:
    node = unstarted.master
    bad = Secret.around(breaker)
    bad_file = bad.write_to(unstarted.workdir / "redis-passwd" / "bad")
    result = launch(node, secret=bad, REDIS_PASSWORD_FILE=str(bad_file))
    assert_launch_refused(result, node, "cannot be written safely into redis.conf")


@pytest.mark.parametrize("port", ["tcp://10.0.0.1:6379", "0", "65536", "6379 "])
def test_launch_fails_clearly_on_a_port_that_is_not_a_port_number(unstarted: RedisNodes, port: str) -> None:
    # "tcp://<ip>:6379" is what a Service named "redis" injects as REDIS_PORT into
    # every pod of its namespace when service links are on.
    node = unstarted.master
    result = launch(node, REDIS_PORT=port)
    assert_launch_refused(result, node, "REDIS_PORT must be a port number from 1 to 65535")


# --- an empty master never wipes its replicas ----------------------------------------
# Pod 0 on a new, empty volume would start as an empty master under a new replication
# ID, and every replica would discard its data at its next full sync. The master asks
# its peers first (REDIS_PEERS, REDIS_PEER_WAIT_SECONDS, REDIS_RECOVERY).


@pytest.fixture
def guarded(redis_binaries: None):
    """A master that knows its two replicas, as the StatefulSet's pod 0 does."""
    with RedisNodes(replicas=2, master_asks_peers=True) as cluster:
        cluster.wait_until_replicas_linked()
        yield cluster


def lose_volume(node: Node) -> None:
    """Kill the node and give it a new, empty data directory, as a replaced claim would."""
    node.stop(signal.SIGKILL)
    shutil.rmtree(node.data_dir)
    node.data_dir.mkdir(mode=0o700)


def write_and_wait(master: Node, replicas: list, key: str, value: str) -> None:
    assert master.cli("SET", key, value).reply == "OK"
    for replica in replicas:
        wait_for(f"{key} on {replica}", lambda: replica.cli("GET", key).reply == value)


def assert_log_keeps_the_password(node: Node) -> None:
    assert not node.secret.redact(node.log.read_text(errors="replace"))[1], f"{node}'s log shows the password"


def test_a_first_start_with_every_pod_empty_asks_the_peers_and_starts_the_master(
    guarded: RedisNodes,
) -> None:
    log = guarded.master.log_text()
    assert "holds no data: asking the peers" in log
    assert f"127.0.0.1:{guarded.replicas[0].port} holds 0 keys" in log
    assert "no peer holds data: starting as an empty master" in log
    assert guarded.master.info("replication")["connected_slaves"] == "2"


def test_an_empty_master_recovers_the_data_of_the_replica_that_holds_the_most(
    guarded: RedisNodes,
) -> None:
    master, (behind, ahead) = guarded.master, guarded.replicas
    early, late = unique("entry"), unique("entry")
    write_and_wait(master, [behind, ahead], early, "early")
    behind.stop(signal.SIGKILL)
    write_and_wait(master, [ahead], late, "late")
    lose_volume(master)
    guarded.start_replica(behind)  # back on its own data, which lacks the late entry

    guarded.start_master()

    assert (master.cli("GET", early).reply, master.cli("GET", late).reply) == ("early", "late")
    log = master.log_text()
    assert f"recovering from 127.0.0.1:{ahead.port}, the peer with the most data (2 keys" in log
    assert f"recovered 2 keys from 127.0.0.1:{ahead.port}" in log
    guarded.wait_until_replicas_linked()
    for replica in guarded.replicas:
        assert replica.info("replication")["master_port"] == str(master.port), "it follows pod 0 again"
        assert replica.cli("GET", late).reply == "late", f"{replica} lost the journal"
    # The master runs from an append-only file built from the copy, so it keeps the
    # data across its next restart as any master does.
    master.stop(signal.SIGKILL)
    guarded.start_master()
    assert master.cli("GET", late).reply == "late"
    assert "DB loaded from append only file" in master.log_text()
    assert_log_keeps_the_password(master)


def test_among_replicas_restarted_without_their_master_the_larger_dataset_wins(guarded: RedisNodes) -> None:
    # As in the journal: one key however many entries; replicas restarted while their
    # master is away all report replication offset 0. Only the data's size tells them apart.
    master, (short, long) = guarded.master, guarded.replicas
    for replica in guarded.replicas:
        # After its full sync a replica rewrites its append-only file, and until that is
        # done what it receives is not on disk yet: a kill would lose it.
        wait_for(f"{replica}'s append-only file", lambda: replica.info("persistence")["aof_rewrite_in_progress"] == "0"
                 and replica.info("persistence")["aof_rewrite_scheduled"] == "0")
    journal = unique("journal")
    write_and_wait(master, [short, long], journal, "first entry")
    short.stop(signal.SIGKILL)
    write_and_wait(master, [long], journal, "first entry" + ", and a later one" * 500)
    lose_volume(master)
    long.stop(signal.SIGKILL)
    guarded.start_replica(short)
    guarded.start_replica(long)
    assert short.info("replication")["master_repl_offset"] == long.info("replication")["master_repl_offset"] == "0"

    guarded.start_master()

    assert master.cli("GET", journal).reply.endswith(", and a later one"), master.log_text()
    assert f"recovering from 127.0.0.1:{long.port}, the peer with the most data (1 keys" in master.log_text()


def test_an_empty_master_refuses_to_start_while_a_peer_does_not_answer(unstarted: RedisNodes) -> None:
    master = unstarted.master
    nobody = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = launch(master, REDIS_PEERS=nobody, REDIS_MASTER_HOST="127.0.0.1",
                    REDIS_MASTER_PORT=str(master.port), REDIS_PEER_WAIT_SECONDS="2")
    assert time.monotonic() - started >= 2, "it waits the bounded time before refusing"
    assert result.returncode == 1
    assert f"refusing to start redis-0 as an empty master: {master.data_dir} holds no data" in result.stderr
    assert f"peer(s) {nobody} did not answer within 2 s" in result.stderr
    assert "Connection refused" in result.stderr
    assert not result.leaked_password
    assert not any(master.data_dir.iterdir()), "no server ran on the empty directory"


def test_an_empty_master_names_its_peers_after_itself_in_the_statefulsets_domain(
    unstarted: RedisNodes,
) -> None:
    # A redis-cli that records whom it was asked to reach and answers as an unknown
    # host would: the names are the promise here, and no lookup leaves the machine.
    master = unstarted.master
    shims, record = unstarted.workdir / "cli-shim", unstarted.workdir / "asked"
    shims.mkdir()
    (shims / "redis-cli").write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$*\" >> {record}\n"
        "printf 'Could not connect to Redis at %s:%s: Name or service not known\\n' \"$2\" \"$4\"\n"
        "exit 1\n"
    )
    (shims / "redis-cli").chmod(0o700)
    result = launch(master, PATH=f"{shims}:{base_env()['PATH']}", REDIS_PODS="3",
                    REDIS_MASTER_HOST="redis-0.redis-write.journal.svc", REDIS_MASTER_PORT="6379",
                    REDIS_PEER_WAIT_SECONDS="0")
    assert result.returncode == 1
    assert record.read_text().splitlines() == [
        "-h redis-1.redis-write.journal.svc -p 6379 INFO replication keyspace persistence memory",
        "-h redis-2.redis-write.journal.svc -p 6379 INFO replication keyspace persistence memory",
    ]
    assert "redis-1.redis-write.journal.svc:6379 redis-2.redis-write.journal.svc:6379 did not answer" in result.stderr


def test_an_empty_master_asks_its_peers_with_the_password_only_in_redis_clis_environment(
    unstarted: RedisNodes,
) -> None:
    master, secret = unstarted.master, unstarted.secret
    # A peer that accepts the connection and never answers keeps the question open
    # (until the launch script's own 5 s bound), long enough to read its /proc entries.
    with socket.socket() as silent_peer:
        silent_peer.bind(("127.0.0.1", 0))
        silent_peer.listen()
        address = f"127.0.0.1:{silent_peer.getsockname()[1]}"
        env = master.launch_env()
        env.update(REDIS_PEERS=address, REDIS_MASTER_HOST="127.0.0.1",
                   REDIS_MASTER_PORT=str(master.port), REDIS_PEER_WAIT_SECONDS="0")
        launcher = spawn(["dash", str(LAUNCH_SCRIPT)], env=env)
        try:
            cli_pid = wait_for("the launch script's redis-cli", lambda: find_descendant(launcher.pid, "redis-cli"))
            cli_argv, cli_argv_leaked = read_proc(cli_pid, "cmdline", secret)
            cli_environ, _ = read_proc(cli_pid, "environ", secret)
        finally:
            result = collect(launcher, secret=secret, timeout=10)

    assert not cli_argv_leaked, "redis-cli's command line shows the password"
    assert cli_argv.split() == ["redis-cli", "-h", "127.0.0.1", "-p", address.split(":")[1],
                                "INFO", "replication", "keyspace", "persistence", "memory"]
    assert f"REDISCLI_AUTH={PLACEHOLDER}" in cli_environ.split()
    assert result.returncode == 1 and f"{address}: no answer within 5 s" in result.stderr
    assert not result.leaked_password


# --- the operator's decisions (README: "A Redis master on an empty volume") ------------


def test_the_operator_recovers_from_a_chosen_replica_while_another_is_gone(guarded: RedisNodes) -> None:
    master, (gone, survivor) = guarded.master, guarded.replicas
    key = unique("entry")
    write_and_wait(master, [gone, survivor], key, "kept")
    gone.stop(signal.SIGKILL)
    lose_volume(master)
    master.env_overrides["REDIS_PEER_WAIT_SECONDS"] = "1"

    refused = launch(master)
    assert refused.returncode == 1
    assert f"peer(s) 127.0.0.1:{gone.port} did not answer" in refused.stderr
    assert "journal-iac/redis-recovery" in refused.stderr, "the refusal points to the operator's way out"

    master.env_overrides["REDIS_RECOVERY"] = "recover-from-2"
    guarded.start_master()
    assert master.cli("GET", key).reply == "kept"
    assert f"recovered 1 keys from 127.0.0.1:{survivor.port}" in master.log_text()
    wait_for(f"{survivor} to follow the master again",
             lambda: survivor.info("replication").get("master_link_status") == "up")
    assert survivor.cli("GET", key).reply == "kept"
    assert_log_keeps_the_password(master)


def test_the_operator_starts_an_empty_master_knowingly_and_the_replicas_follow_it_empty(
    guarded: RedisNodes,
) -> None:
    master, replicas = guarded.master, guarded.replicas
    write_and_wait(master, replicas, unique("entry"), "discarded")
    lose_volume(master)
    master.env_overrides["REDIS_RECOVERY"] = "start-empty"

    guarded.start_master()

    assert master.cli("DBSIZE").reply == "0"
    assert "REDIS_RECOVERY=start-empty: starting as an EMPTY master without asking any peer" in master.log_text()
    for replica in replicas:
        wait_for(f"{replica} to discard its data at its full sync", lambda: replica.cli("DBSIZE").reply == "0")


def test_a_recovery_decision_left_on_the_pod_is_ignored_while_the_master_has_its_data(
    guarded: RedisNodes,
) -> None:
    master = guarded.master
    key = unique("entry")
    write_and_wait(master, guarded.replicas, key, "kept")
    master.stop(signal.SIGKILL)
    master.env_overrides["REDIS_RECOVERY"] = "start-empty"
    guarded.start_master()
    assert master.cli("GET", key).reply == "kept"
    assert "REDIS_RECOVERY=start-empty ignored" in master.log_text()


@pytest.mark.parametrize("name, value, message", [
    ("REDIS_RECOVERY", "wipe", "REDIS_RECOVERY must be empty, 'start-empty' or 'recover-from-<ordinal>'"),
    ("REDIS_RECOVERY", "recover-from-0", "REDIS_RECOVERY must be empty"),
    ("REDIS_PODS", "two", "REDIS_PODS must be the number of pods"),
    ("REDIS_PEER_WAIT_SECONDS", "1m", "REDIS_PEER_WAIT_SECONDS must be a number of seconds"),
])
def test_launch_fails_clearly_on_a_guard_setting_it_cannot_read(
    unstarted: RedisNodes, name: str, value: str, message: str
) -> None:
    node = unstarted.master
    result = launch(node, **{name: value})
    assert_launch_refused(result, node, message)
