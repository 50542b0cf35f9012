"""The production shape on the local cluster: Pulumi.prod.yaml deployed with
scripts/pulumi.sh, with what one 2-core node forces on it and nothing else:

- `kubernetes:context` is `journal-local`, not `journal-prod`: this is not production;
- frontendCpuRequest 250m -> 100m and redisCpuRequest 500m -> 100m: prod's requests add up
  to 2.35 cores (3 x 250m + 3 x 500m + 2 x 50m), more than the node has beside CoreDNS
  and Traefik, and the scheduler would leave pods Pending. Replicas (3 frontends, a Redis
  master and two replicas, 2 file servers), limits, memory, 50Gi volumes and protectData
  stay as in prod;
- the certificate comes from the cluster's own ACME server, as dev's does (Pulumi.dev.yaml's
  tlsIssuer, acmeServer and acmeCaBundle), not from Let's Encrypt, which nothing here may
  reach.

Then Redis is shown working in the cluster (replication by the headless DNS name, reads
spread over replicas, replicas refusing writes, a master pod deleted and back with its
data), the NetworkPolicies shown enforced in both directions, and protectData shown to
stop `pulumi destroy` from taking the data."""

import json
import re
import time
from typing import Iterator

import pytest
import yaml

from support.program_mocks import stack_config
from support.deployed_stack import DeployedStack
from support.kubectl import has_condition
from support.local_cluster import CLIENT_IMAGE, SLEEPER, LocalCluster, hardened_pod
from localcluster import layout
from support.project_copy import Project, copy_project

pytestmark = pytest.mark.cluster

NAMESPACE = "journal-prod"
HOST = "journal.example.com"
LOCAL_NODE = {
    "kubernetes:context": "journal-local",
    "journal:frontendCpuRequest": "100m",
    "journal:redisCpuRequest": "100m",
    **{key: stack_config("dev")[key] for key in ("journal:tlsIssuer", "journal:acmeServer", "journal:acmeCaBundle")},
}


class Prod(DeployedStack):
    def __init__(self, project: Project, cluster: LocalCluster):
        super().__init__(project, cluster, NAMESPACE, HOST)

    def post(self, text: str) -> dict:
        """POST an entry over HTTPS through the ingress controller, from the host, as any client."""
        status, _, body = self.client.request("POST", "/api", text.encode())
        assert status == 201, body
        return json.loads(body)

    def status(self, path: str) -> int:
        return self.client.request("GET", path)[0]

    def replication(self, pod: str) -> dict[str, str]:
        info = self.redis_cli(pod, "INFO", "replication")
        return dict(line.split(":", 1) for line in info.splitlines() if ":" in line)

    def pod_name(self, component: str) -> str:
        return self.pods(component)[0]["metadata"]["name"]

    def pod_ip(self, name: str, namespace: str = NAMESPACE) -> str:
        return self.cluster.get("pod", name, "-n", namespace)["status"]["podIP"]


@pytest.fixture(scope="module")
def prod(module_cluster, tmp_path_factory) -> Iterator[Prod]:
    project = copy_project(tmp_path_factory.mktemp("prod"), layout.PATHS.admin_kubeconfig)
    stack_file = project.root / "Pulumi.prod.yaml"
    settings = yaml.safe_load(stack_file.read_text())
    settings["config"].update(LOCAL_NODE)
    stack_file.write_text(yaml.safe_dump(settings))
    project.pulumi("prod", "up", "--yes", "--skip-preview")
    deployed = Prod(project, module_cluster)
    module_cluster.wait(lambda: all(deployed.replication(f"redis-{n}").get("master_link_status") == "up" for n in (1, 2)), 60, "both replicas linked")
    deployed.wait_until_routed()
    yield deployed
    project.pulumi("prod", "up", "--yes", "--skip-preview", "--config", "journal:protectData=false", check=False)
    project.pulumi("prod", "destroy", "--yes", "--skip-preview", check=False)


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


def test_replicas_follow_the_master_by_its_headless_dns_name(prod):
    assert prod.replication("redis-0")["role"] == "master"
    assert prod.replication("redis-0")["connected_slaves"] == "2"
    for replica in ("redis-1", "redis-2"):
        info = prod.replication(replica)
        assert info["role"] == "slave"
        assert info["master_host"] == f"redis-0.redis-write.{NAMESPACE}.svc"
        assert info["master_link_status"] == "up"


def test_an_entry_reaches_the_master_and_every_replica(prod):
    entry = prod.post("replicated everywhere")
    member = str(entry["id"])
    for pod in ("redis-0", "redis-1", "redis-2"):
        prod.cluster.wait(
            lambda: "replicated everywhere" in prod.redis_cli(pod, "ZRANGEBYSCORE", "journal:entries", member, member),
            10,
            f"the entry on {pod}",
        )


def test_a_replica_refuses_writes(prod):
    assert "READONLY" in prod.redis_cli("redis-1", "SET", "written-on-a-replica", "1", check=False)


def test_the_read_service_spreads_reads_over_the_replicas(prod):
    frontend = prod.pod_name("frontend")
    # Python in the frontend pod (allowed to reach Redis): the role of whichever pod the
    # read Service picks, over fresh connections.
    code = (
        "import socket\n"
        "roles = set()\n"
        "password = open('/etc/redis-passwd/passwd').read().strip()\n"
        "for _ in range(30):\n"
        f"    s = socket.create_connection(('redis.{NAMESPACE}.svc', 6379), timeout=3)\n"
        "    s.sendall(b'AUTH ' + password.encode() + b'\\r\\nINFO replication\\r\\n')\n"
        "    data = b''\n"
        "    while b'role:' not in data or not data.endswith(b'\\r\\n'):\n"
        "        data += s.recv(4096)\n"
        "    roles.add(data.split(b'role:')[1].split(b'\\r\\n')[0].decode())\n"
        "    s.close()\n"
        "print(sorted(roles))\n"
    )
    roles = prod.cluster.exec(NAMESPACE, frontend, "python3", "-c", code).stdout.strip()
    assert roles == "['master', 'slave']"


def test_the_master_pod_comes_back_with_its_data_and_the_replicas_reattach(prod):
    entry = prod.post("survives the master pod")
    claim_uid = prod.cluster.get("pvc", "data-redis-0", "-n", NAMESPACE)["metadata"]["uid"]
    old_uid = prod.cluster.get("pod", "redis-0", "-n", NAMESPACE)["metadata"]["uid"]
    prod.cluster.kubectl("delete", "pod", "redis-0", "-n", NAMESPACE, "--wait=false")
    prod.cluster.wait(lambda: prod.cluster.get("pod", "redis-0", "-n", NAMESPACE)["metadata"]["uid"] != old_uid, 60, "a new redis-0")
    prod.cluster.wait_ready(NAMESPACE, "redis-0", timeout=90)
    assert prod.cluster.get("pvc", "data-redis-0", "-n", NAMESPACE)["metadata"]["uid"] == claim_uid
    member = str(entry["id"])
    assert "survives the master pod" in prod.redis_cli("redis-0", "ZRANGEBYSCORE", "journal:entries", member, member)
    prod.cluster.wait(
        lambda: all(prod.replication(f"redis-{n}").get("master_link_status") == "up" for n in (1, 2)), 90, "the replicas to re-attach"
    )
    # The API serves again without a redeploy: its next write goes to the new master.
    prod.cluster.wait(lambda: _posts(prod), 60, "the API to write again")


def test_a_master_that_loses_its_volume_recovers_the_journal_from_a_replica(prod):
    entry = prod.post("survives the master's volume")
    member = str(entry["id"])

    def holds_entry(pod: str) -> bool:
        return "survives the master's volume" in prod.redis_cli(pod, "ZRANGEBYSCORE", "journal:entries", member, member)

    prod.cluster.wait(lambda: holds_entry("redis-1") and holds_entry("redis-2"), 30, "the entry on both replicas")
    old_claim = prod.cluster.get("pvc", "data-redis-0", "-n", NAMESPACE)["metadata"]["uid"]
    # The claim goes once its pod does (its protection finalizer waits for that), and the
    # StatefulSet gives the new redis-0 a new, empty claim: a lost volume, as an operator
    # deleting the wrong claim or a failed disk would leave it.
    prod.cluster.kubectl("delete", "pvc", "data-redis-0", "-n", NAMESPACE, "--wait=false")
    prod.cluster.kubectl("delete", "pod", "redis-0", "-n", NAMESPACE, "--wait=false")

    def new_claim_bound() -> bool:
        claims = [c for c in prod.cluster.get("pvc", "-n", NAMESPACE)["items"] if c["metadata"]["name"] == "data-redis-0"]
        return bool(claims) and claims[0]["metadata"]["uid"] != old_claim and claims[0]["status"].get("phase") == "Bound"

    prod.cluster.wait(new_claim_bound, 120, "a new, empty claim for redis-0")
    prod.cluster.wait_ready(NAMESPACE, "redis-0", timeout=180)
    log = prod.cluster.kubectl("logs", "-n", NAMESPACE, "redis-0").stdout
    assert "holds no data: asking the peers" in log and "recovering from redis-" in log, log
    assert holds_entry("redis-0")
    prod.cluster.wait(
        lambda: all(prod.replication(f"redis-{n}").get("master_link_status") == "up" for n in (1, 2)), 90, "the replicas to re-attach"
    )
    assert holds_entry("redis-1") and holds_entry("redis-2")
    prod.cluster.wait(lambda: _posts(prod), 60, "the API to write again")


def test_the_operators_recovery_annotation_reaches_the_master_at_its_next_start(prod):
    # The README's procedure: annotate the pod, and its next container start reads the
    # decision. A master that holds its data ignores it, and says so.
    annotation = "journal-iac/redis-recovery"
    prod.cluster.kubectl("annotate", "pod", "redis-0", "-n", NAMESPACE, f"{annotation}=recover-from-1")
    try:
        restarts = prod.cluster.get("pod", "redis-0", "-n", NAMESPACE)["status"]["containerStatuses"][0]["restartCount"]
        prod.redis_cli("redis-0", "SHUTDOWN", check=False)
        prod.cluster.wait(
            lambda: prod.cluster.get("pod", "redis-0", "-n", NAMESPACE)["status"]["containerStatuses"][0]["restartCount"] > restarts,
            60,
            "redis-0's container to restart",
        )
        prod.cluster.wait_ready(NAMESPACE, "redis-0", timeout=120)
        log = prod.cluster.kubectl("logs", "-n", NAMESPACE, "redis-0").stdout
        assert "REDIS_RECOVERY=recover-from-1 ignored: /data holds data" in log, log
    finally:
        prod.cluster.kubectl("annotate", "pod", "redis-0", "-n", NAMESPACE, f"{annotation}-")
    prod.cluster.wait(lambda: _posts(prod), 60, "the API to write again")


def _posts(prod: Prod) -> bool:
    try:
        prod.post("after the master came back")
        return True
    except Exception:
        return False


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
    assert can_connect(prod.cluster, NAMESPACE, frontend, redis_ip, 6379)
    assert can_connect(prod.cluster, NAMESPACE, "redis-1", redis_ip, 6379)
    # Ingress controller -> frontend -> Redis master, and ingress controller -> file server.
    assert prod.post("through the ingress, to the frontend, to redis")["id"] > 0
    assert prod.status("/") == 200


@pytest.mark.parametrize(
    "source, target, port",
    [
        ("fileserver", "redis-0", 6379),
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
    result = prod.project.pulumi("prod", "preview", "--config", "journal:namespace=journal-prod-moved", check=False)
    assert result.returncode != 0
    refusals = re.findall(r'unable to replace resource "urn:[^"]*::(journal-namespace|redis-statefulset)"\s+as it is currently marked for protection', result.stdout)
    assert sorted(refusals) == ["journal-namespace", "redis-statefulset"], result.stdout[-2000:]
