"""The production shape on the local cluster (tests/support/prod_stack.py: Pulumi.prod.yaml
deployed with scripts/pulumi.sh, with what one 2-core node forces on it and nothing else).

Redis is shown working in the cluster (Sentinels naming one master that every pod follows
by its host name, reads spread over the pods, replicas refusing writes, a deleted master
handing its role over and coming back as a replica with its data, a lost volume refilled
from the master), the NetworkPolicies shown enforced in both directions, and protectData
shown to stop `pulumi destroy` from taking the data. tests/cluster/prod/test_redis_failover.py
shows the journal through faults, under traffic."""

import json
import re
import time
from typing import Iterator

import pytest

from support.kubectl import has_condition
from support.local_cluster import CLIENT_IMAGE, SLEEPER, LocalCluster, hardened_pod
from support.prod_stack import NAMESPACE, REDIS_PODS, Prod

pytestmark = pytest.mark.cluster


def host_of(pod: str) -> str:
    return f"{pod}.redis-write.{NAMESPACE}.svc"


def test_every_pod_of_the_production_shape_is_ready(prod):
    # The stack's own pods: cert-manager's HTTP-01 solver may still be on its way out.
    pods = prod.cluster.get("pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/part-of=journal")["items"]
    counts: dict[str, int] = {}
    for pod in pods:
        assert has_condition(pod, "Ready"), pod["metadata"]["name"]
        component = pod["metadata"]["labels"]["app.kubernetes.io/component"]
        counts[component] = counts.get(component, 0) + 1
    assert counts == {"frontend": 3, "redis": 3, "fileserver": 2}
    for claim in prod.cluster.get("pvc", "-n", NAMESPACE)["items"]:
        assert claim["status"]["phase"] == "Bound" and claim["spec"]["resources"]["requests"]["storage"] == "50Gi"


def test_every_redis_pod_follows_the_master_the_sentinels_name_by_its_host_name(prod):
    master = prod.wait_until_settled()
    assert prod.replication(master)["connected_slaves"] == "2"
    for replica in set(REDIS_PODS) - {master}:
        info = prod.replication(replica)
        assert info["role"] == "slave"
        assert info["master_host"] == host_of(master)
        assert info["master_link_status"] == "up"
    # The Sentinels know each other and the replicas by host name too: a pod IP changes
    # whenever a pod is rescheduled.
    for pod in REDIS_PODS:
        sentinels = prod.redis_cli(pod, "-p", "26379", "SENTINEL", "SENTINELS", "journal").split()
        assert sorted(word for word in sentinels if word.startswith("redis-")) == sorted(host_of(p) for p in REDIS_PODS if p != pod)
        replicas = prod.redis_cli(pod, "-p", "26379", "SENTINEL", "REPLICAS", "journal").split()
        assert {host_of(p) for p in REDIS_PODS if p != master} <= set(replicas)


def test_an_entry_reaches_the_master_and_every_replica(prod):
    entry = prod.post("replicated everywhere")
    member = str(entry["id"])
    for pod in REDIS_PODS:
        prod.cluster.wait(
            lambda: "replicated everywhere" in prod.redis_cli(pod, "ZRANGEBYSCORE", "journal:entries", member, member),
            10,
            f"the entry on {pod}",
        )


def test_a_replica_refuses_writes(prod):
    replica = next(pod for pod in REDIS_PODS if pod != prod.wait_until_settled())
    assert "READONLY" in prod.redis_cli(replica, "SET", "written-on-a-replica", "1", check=False)


def test_the_read_service_spreads_reads_over_the_replicas(prod):
    frontend = prod.pod_name("frontend")
    # Python in the frontend pod (allowed to reach Redis), as its Redis user: the role
    # of whichever pod the read Service picks, over fresh connections.
    code = (
        "import socket\n"
        "roles = set()\n"
        "password = open('/etc/redis-passwd/passwd').read().strip()\n"
        "for _ in range(30):\n"
        f"    s = socket.create_connection(('redis.{NAMESPACE}.svc', 6379), timeout=3)\n"
        "    s.sendall(b'AUTH journal ' + password.encode() + b'\\r\\nINFO replication\\r\\n')\n"
        "    data = b''\n"
        "    while b'role:' not in data or not data.endswith(b'\\r\\n'):\n"
        "        data += s.recv(4096)\n"
        "    roles.add(data.split(b'role:')[1].split(b'\\r\\n')[0].decode())\n"
        "    s.close()\n"
        "print(sorted(roles))\n"
    )
    roles = prod.cluster.exec(NAMESPACE, frontend, "python3", "-c", code).stdout.strip()
    assert roles == "['master', 'slave']"


# Python in the frontend pod, as the frontend's Redis user with the password it mounts:
# AUTH, then each command of argv[1] (JSON), printing the first line of each reply.
AS_THE_FRONTEND = """
import json, socket, sys
host, port, commands = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
password = open('/etc/redis-passwd/passwd').read().strip()
connection = socket.create_connection((host, port), timeout=5)
replies = connection.makefile('rb')
def ask(*words):
    encoded = [word.encode() for word in words]
    connection.sendall(b'*%d\\r\\n' % len(encoded) + b''.join(b'$%d\\r\\n%s\\r\\n' % (len(w), w) for w in encoded))
    return replies.readline().decode().strip()
print(ask('AUTH', 'journal', password))
for command in commands:
    print(ask(*command))
"""


def asked_by_the_frontend(prod: Prod, host: str, port: int, commands: list[list[str]]) -> list[str]:
    frontend = prod.pod_name("frontend")
    replies = prod.cluster.exec(NAMESPACE, frontend, "python3", "-c", AS_THE_FRONTEND, host, str(port),
                                json.dumps(commands)).stdout.splitlines()
    assert replies[0] == "+OK", f"AUTH as journal: {replies[0]}"
    return replies[1:]


FORBIDDEN_TO_THE_FRONTEND = [
    ["FLUSHALL"], ["CONFIG", "SET", "maxmemory", "1"], ["EVAL", "return 1", "0"], ["KEYS", "*"],
    ["REPLICAOF", "NO", "ONE"], ["SHUTDOWN", "NOSAVE"], ["DEBUG", "SLEEP", "0"], ["ACL", "LIST"],
]
FORBIDDEN_AT_THE_SENTINELS = [
    ["SENTINEL", "FAILOVER", "journal"], ["SENTINEL", "SET", "journal", "quorum", "1"], ["SENTINEL", "REMOVE", "journal"],
]


def test_the_frontends_redis_user_is_refused_all_but_the_journals_commands_while_the_journal_works(prod):
    master = prod.wait_until_settled()
    for pod in REDIS_PODS:
        replies = asked_by_the_frontend(prod, host_of(pod), 6379, FORBIDDEN_TO_THE_FRONTEND)
        for command, reply in zip(FORBIDDEN_TO_THE_FRONTEND, replies, strict=True):
            # DEBUG is refused to every user (enable-debug-command no) before the ACL is asked.
            assert reply.startswith("-NOPERM") or (command[0] == "DEBUG" and "not allowed" in reply), (pod, command, reply)
        replies = asked_by_the_frontend(prod, host_of(pod), 26379, FORBIDDEN_AT_THE_SENTINELS)
        for command, reply in zip(FORBIDDEN_AT_THE_SENTINELS, replies, strict=True):
            assert reply.startswith("-NOPERM"), (pod, command, reply)
    assert prod.post("written by the frontend after every refusal")["id"] > 0
    assert prod.settled_master() == master, "nothing moved, nothing stopped"


def test_replicas_and_sentinels_reach_the_master_as_users_of_their_own(prod):
    master = prod.wait_until_settled()
    users = {}
    for line in prod.redis_cli(master, "CLIENT", "LIST").splitlines():
        fields = dict(field.split("=", 1) for field in line.split() if "=" in field)
        users.setdefault(fields.get("user"), set()).add(fields.get("flags", ""))
    assert any("S" in flags for flags in users.get("replication", ())), users  # replicas' links
    assert "sentinel" in users and "default" not in users, users


def test_a_deleted_master_hands_its_role_over_and_comes_back_as_a_replica_with_its_data(prod):
    master = prod.wait_until_settled()
    entry = prod.post("survives the master pod")
    claim_uid = prod.cluster.get("pvc", f"data-{master}", "-n", NAMESPACE)["metadata"]["uid"]
    old_uid = prod.cluster.get("pod", master, "-n", NAMESPACE)["metadata"]["uid"]
    witness = next(pod for pod in REDIS_PODS if pod != master)
    started = time.monotonic()
    prod.cluster.kubectl("delete", "pod", master, "-n", NAMESPACE, "--wait=false")
    prod.cluster.wait(lambda: prod.sentinel_master(witness) not in (None, master), 30, "a new master")
    # The preStop hook handed the role over before the pod stopped: the Sentinels on
    # their own would take 5 s (down-after-milliseconds) before they even agreed it was down.
    assert time.monotonic() - started < 5
    prod.cluster.wait(lambda: prod.cluster.get("pod", master, "-n", NAMESPACE)["metadata"]["uid"] != old_uid, 60, f"a new {master}")
    prod.cluster.wait_ready(NAMESPACE, master, timeout=120)
    assert prod.cluster.get("pvc", f"data-{master}", "-n", NAMESPACE)["metadata"]["uid"] == claim_uid
    new_master = prod.wait_until_settled()
    assert new_master != master
    member = str(entry["id"])
    assert "survives the master pod" in prod.redis_cli(master, "ZRANGEBYSCORE", "journal:entries", member, member)
    # The API writes again without a redeploy: it asks the Sentinels for the master.
    prod.cluster.wait(prod.posts, 60, "the API to write again")


def test_a_pod_that_loses_its_volume_gets_the_journal_back_from_the_master(prod):
    master = prod.wait_until_settled()
    entry = prod.post("survives a lost volume")
    member = str(entry["id"])

    def holds_entry(pod: str) -> bool:
        return "survives a lost volume" in prod.redis_cli(pod, "ZRANGEBYSCORE", "journal:entries", member, member)

    prod.cluster.wait(lambda: all(holds_entry(pod) for pod in REDIS_PODS), 30, "the entry on every pod")
    lost = next(pod for pod in REDIS_PODS if pod != master)
    old_claim = prod.cluster.get("pvc", f"data-{lost}", "-n", NAMESPACE)["metadata"]["uid"]
    # The claim goes once its pod does (its protection finalizer waits for that), and the
    # StatefulSet gives the new pod a new, empty claim: a lost volume, as an operator
    # deleting the wrong claim or a failed disk would leave it.
    prod.cluster.kubectl("delete", "pvc", f"data-{lost}", "-n", NAMESPACE, "--wait=false")
    prod.cluster.kubectl("delete", "pod", lost, "-n", NAMESPACE, "--wait=false")

    def new_claim_bound() -> bool:
        claims = [c for c in prod.cluster.get("pvc", "-n", NAMESPACE)["items"] if c["metadata"]["name"] == f"data-{lost}"]
        return bool(claims) and claims[0]["metadata"]["uid"] != old_claim and claims[0]["status"].get("phase") == "Bound"

    prod.cluster.wait(new_claim_bound, 120, f"a new, empty claim for {lost}")
    prod.cluster.wait_ready(NAMESPACE, lost, timeout=180)
    # It asked the Sentinels, followed the master they name, and synced the journal from it.
    assert prod.wait_until_settled() == master
    assert holds_entry(lost)
    prod.cluster.wait(prod.posts, 60, "the API to write again")


def test_the_operators_recovery_annotation_reaches_the_redis_container_at_its_next_start(prod):
    # docs/operations.md's procedure for an election that cannot be held: annotate the
    # pods, and their next container start reads the decision (it is ignored while the
    # Sentinels know a master, as here).
    annotation = "journal-iac/redis-recovery"
    replica = next(pod for pod in REDIS_PODS if pod != prod.wait_until_settled())
    prod.cluster.kubectl("annotate", "pod", replica, "-n", NAMESPACE, f"{annotation}=recover-from-1")

    def restarts() -> int:
        statuses = prod.cluster.get("pod", replica, "-n", NAMESPACE)["status"]["containerStatuses"]
        return next(status["restartCount"] for status in statuses if status["name"] == "redis")

    try:
        before = restarts()
        prod.redis_cli(replica, "SHUTDOWN", check=False)
        prod.cluster.wait(lambda: restarts() > before, 60, f"{replica}'s redis container to restart")
        prod.cluster.wait_ready(NAMESPACE, replica, timeout=120)
        seen = prod.cluster.exec(NAMESPACE, replica, "sh", "-c", 'printf %s "$REDIS_RECOVERY"').stdout
        assert seen == "recover-from-1"
    finally:
        prod.cluster.kubectl("annotate", "pod", replica, "-n", NAMESPACE, f"{annotation}-")
    prod.wait_until_settled()
    prod.cluster.wait(prod.posts, 60, "the API to write again")


# --- NetworkPolicies, enforced by kube-router --------------------------------------------


def can_connect(cluster: LocalCluster, namespace: str, pod: str, address: str, port: int) -> bool:
    """A TCP connect from inside `pod`, by bash (every image built here has it)."""
    probe = f"timeout 3 bash -c 'exec 3<>/dev/tcp/{address}/{port}' && echo open || echo closed"
    return cluster.exec(namespace, pod, "bash", "-c", probe, check=False).stdout.strip() == "open"


@pytest.fixture(scope="module")
def outsider(prod) -> Iterator[str]:
    """A pod in another namespace, running a server, for flows the stack must not have."""
    namespace = prod.cluster.namespace("outsider")
    server = hardened_pod("outsider", CLIENT_IMAGE, ["python3", "-m", "http.server", "8080", "--directory", "/opt/journal"])
    prod.cluster.apply(server, namespace=namespace)
    prod.cluster.wait_ready(namespace, "outsider")
    yield namespace


def test_every_flow_the_service_needs_is_open(prod):
    frontend = prod.pod_name("frontend")
    redis_ip = prod.pod_ip("redis-0")
    for port in (6379, 26379):  # Redis, and its Sentinel
        assert can_connect(prod.cluster, NAMESPACE, frontend, redis_ip, port)
        assert can_connect(prod.cluster, NAMESPACE, "redis-1", redis_ip, port)
    # Ingress controller -> frontend -> Redis master, and ingress controller -> file server.
    assert prod.post("through the ingress, to the frontend, to redis")["id"] > 0
    assert prod.status("/") == 200


@pytest.mark.parametrize(
    "source, target, port",
    [
        ("fileserver", "redis-0", 6379),
        ("fileserver", "redis-0", 26379),
        ("outsider", "redis-0", 26379),
        ("frontend", "fileserver", 8080),
        ("redis", "outsider", 8080),
        ("frontend", "outsider", 8080),
        ("outsider", "redis-0", 6379),
        ("outsider", "frontend", 8080),
    ],
)
def test_a_flow_the_service_does_not_need_is_refused(prod, outsider, source, target, port):
    def locate(name: str) -> tuple[str, str]:
        if name == "outsider":
            return outsider, "outsider"
        if name.startswith("redis"):
            return NAMESPACE, name if "-" in name else "redis-1"
        return NAMESPACE, prod.pod_name(name)

    source_namespace, source_pod = locate(source)
    target_namespace, target_pod = locate(target)
    address = prod.pod_ip(target_pod, target_namespace)
    assert not can_connect(prod.cluster, source_namespace, source_pod, address, port)


def test_pod_security_admits_every_pod_of_the_stack_and_refuses_a_root_pod(prod):
    namespace = prod.cluster.get("namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    root = hardened_pod("root", CLIENT_IMAGE, SLEEPER)
    root["spec"]["securityContext"] = {"runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}}
    refused = prod.cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(root), check=False)
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr


# --- protectData ----------------------------------------------------------------------


def test_destroy_refuses_to_delete_the_protected_data(prod):
    """With its preview, as `pulumi destroy` runs by default, the refusal comes before any
    deletion. (With --skip-preview the engine deletes every unprotected object first and
    stops at the protected ones: the data stays, the service does not.)"""
    started = time.monotonic()
    result = prod.project.pulumi("prod", "destroy", "--yes", check=False)
    assert result.returncode != 0
    refusals = re.findall(r'"urn:[^"]*::(journal-namespace|redis-statefulset)" cannot be deleted\s+because it is protected', result.stdout)
    # The engine reports the first protected resource it meets; both are, under mocks.
    assert refusals and set(refusals) <= {"journal-namespace", "redis-statefulset"}
    assert time.monotonic() - started < 120
    assert prod.cluster.get("namespace", NAMESPACE)["status"]["phase"] == "Active"
    assert prod.cluster.get("statefulset", "redis", "-n", NAMESPACE)["status"]["readyReplicas"] == 3
    assert len(prod.cluster.get("pvc", "-n", NAMESPACE)["items"]) == 3
    # Nothing else went either: the refusal comes before any deletion.
    assert prod.cluster.get("deployment", "frontend", "-n", NAMESPACE)["status"]["readyReplicas"] == 3


def test_a_namespace_change_refuses_to_replace_the_protected_namespace(prod):
    try:
        result = prod.project.pulumi("prod", "preview", "--config", "journal:namespace=journal-prod-moved", check=False)
    finally:
        # `--config` saves the value in the stack's config: the stack is shared with the
        # modules after this one.
        prod.project.pulumi("prod", "config", "rm", "journal:namespace", check=False)
    assert result.returncode != 0
    refusals = re.findall(r'unable to replace resource "urn:[^"]*::(journal-namespace|redis-statefulset)"\s+as it is currently marked for protection', result.stdout)
    assert sorted(refusals) == ["journal-namespace", "redis-statefulset"], result.stdout[-2000:]
