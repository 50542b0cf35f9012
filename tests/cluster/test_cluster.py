"""The local cluster is a real Kubernetes: pods run from the images built here, cluster DNS
and Services work, NetworkPolicies are enforced, Pod Security refuses a root pod, no
packet can leave the machine, and `down` leaves the host as it was before `up`."""

import json
import os
import signal
import socket
import ssl
import subprocess
import urllib.request

import pytest

from support.kubectl import has_condition
from support.local_cluster import CLIENT_IMAGE, SLEEPER, hardened_pod
from localcluster import ClusterError, images, layout, polling
from localcluster import cluster as local_cluster
from localcluster.host import HostState

pytestmark = pytest.mark.cluster


def python_in(cluster, namespace: str, pod: str, code: str, check: bool = True) -> subprocess.CompletedProcess:
    return cluster.exec(namespace, pod, "python3", "-c", code, check=check)


def http_get(url: str, timeout: float = 3) -> str:
    """Python run inside a pod: prints the status and body of GET url, or the error."""
    return (
        "import urllib.request, sys\n"
        "try:\n"
        f"    r = urllib.request.urlopen({url!r}, timeout={timeout})\n"
        "    print(r.status); print(r.read().decode()[:200])\n"
        "except Exception as e:\n"
        "    print('failed:', type(e).__name__, e); sys.exit(1)\n"
    )


def service_on_8080(name: str, selects: str) -> dict:
    """A ClusterIP Service on port 80 for the pods labelled app=`selects`, port 8080."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": selects}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def test_the_cluster_has_one_ready_node(cluster):
    nodes = cluster.get("nodes")["items"]
    assert [node["metadata"]["name"] for node in nodes] == [layout.NODE_NAME]
    assert has_condition(nodes[0], "Ready")
    assert nodes[0]["spec"]["podCIDR"] == layout.POD_CIDR


def test_a_pod_runs_from_an_image_built_here_and_never_pulled(cluster):
    namespace = cluster.namespace("image")
    cluster.apply(hardened_pod("api", CLIENT_IMAGE, SLEEPER), namespace=namespace)
    cluster.wait_ready(namespace, "api")
    assert python_in(cluster, namespace, "api", "import os; print(os.getuid())").stdout.strip() == "10001"
    pod = cluster.get("pod", "api", "-n", namespace)
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Never"
    assert pod["status"]["containerStatuses"][0]["image"] == CLIENT_IMAGE


def test_every_image_the_stacks_name_is_on_the_node(cluster):
    node = cluster.get("node", layout.NODE_NAME)
    on_node = {name for image in node["status"]["images"] for name in image["names"]}
    for image in images.IMAGES:
        for name in image.names:
            assert name in on_node


def test_cluster_dns_resolves_services_the_public_zone_and_nothing_outside(cluster):
    namespace = cluster.namespace("dns")
    cluster.apply(
        hardened_pod("client", CLIENT_IMAGE, SLEEPER),
        service_on_8080("named-service", selects="client"),
        namespace=namespace,
    )
    cluster.wait_ready(namespace, "client")
    service_ip = cluster.get("service", "named-service", "-n", namespace)["spec"]["clusterIP"]
    resolve = "import socket, sys; print(socket.gethostbyname(sys.argv[1]))"
    for name in ("named-service", f"named-service.{namespace}.svc.cluster.local"):
        result = cluster.exec(namespace, "client", "python3", "-c", resolve, name)
        assert result.stdout.strip() == service_ip
    assert cluster.exec(namespace, "client", "python3", "-c", resolve, "kubernetes.default").stdout.strip() == layout.API_SERVICE_IP
    # The stacks' public names are the ingress address, as a public zone would have them.
    for name in (f"journal.dev.{layout.INGRESS_ZONE}", f"journal.{layout.INGRESS_ZONE}"):
        assert cluster.exec(namespace, "client", "python3", "-c", resolve, name).stdout.strip() == layout.INGRESS_IP
    # Anything else gets an error answer from CoreDNS, in the cluster: it forwards nothing.
    for name in ("example.org", "pypi.org"):
        outside = cluster.exec(namespace, "client", "python3", "-c", resolve, name, check=False)
        assert outside.returncode != 0 and "gaierror" in outside.stderr


def test_a_cluster_ip_service_reaches_its_pod(cluster):
    namespace = cluster.namespace("service")
    server = hardened_pod("server", CLIENT_IMAGE, ["python3", "-m", "http.server", "8080", "--directory", "/opt/journal"])
    cluster.apply(
        server,
        hardened_pod("client", CLIENT_IMAGE, SLEEPER),
        service_on_8080("server", selects="server"),
        namespace=namespace,
    )
    cluster.wait_ready(namespace, "server")
    cluster.wait_ready(namespace, "client")
    # The server pod has no readiness probe: Ready means started, not yet listening.
    def answer() -> subprocess.CompletedProcess:
        return python_in(cluster, namespace, "client", http_get("http://server/"), check=False)

    cluster.wait(lambda: answer().returncode == 0, 20, "the Service to answer")
    result = answer()
    assert result.stdout.startswith("200") and "journal_api" in result.stdout


def test_a_network_policy_blocks_what_it_should_and_lets_through_what_it_should(cluster):
    namespace = cluster.namespace("policy")
    cluster.apply(
        hardened_pod("server", CLIENT_IMAGE, ["python3", "-m", "http.server", "8080", "--directory", "/opt/journal"]),
        hardened_pod("allowed", CLIENT_IMAGE, SLEEPER, labels={"app": "allowed", "role": "client"}),
        hardened_pod("other", CLIENT_IMAGE, SLEEPER, labels={"app": "other"}),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "server-from-clients-only"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "server"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}], "ports": [{"port": 8080}]}],
            },
        },
        namespace=namespace,
    )
    for pod in ("server", "allowed", "other"):
        cluster.wait_ready(namespace, pod)
    server_ip = cluster.get("pod", "server", "-n", namespace)["status"]["podIP"]
    url = f"http://{server_ip}:8080/"

    # kube-router programs a new pod's rules within about a second of its start: the
    # allowed client retries for a few seconds before the result counts.
    def reaches(pod: str) -> bool:
        return python_in(cluster, namespace, pod, http_get(url, timeout=2), check=False).returncode == 0

    cluster.wait(lambda: reaches("allowed"), 20, "the allowed client to reach the server")
    assert not reaches("other")
    assert reaches("allowed")


def test_pod_security_refuses_a_root_pod_in_a_restricted_namespace(cluster):
    namespace = cluster.namespace("restricted")
    root = hardened_pod("root", CLIENT_IMAGE, SLEEPER)
    root["spec"]["securityContext"] = {"runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}}
    result = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(root), check=False)
    assert result.returncode != 0
    assert "violates PodSecurity" in result.stderr and "restricted" in result.stderr
    assert cluster.kubectl("get", "pod", "root", "-n", namespace, check=False).returncode != 0


def test_the_ingress_controller_publishes_ingress_status(cluster):
    ingress_classes = cluster.get("ingressclass")["items"]
    assert [c["metadata"]["name"] for c in ingress_classes] == ["nginx"]
    traefik = cluster.get("deployment", "traefik", "-n", "ingress-nginx")
    assert traefik["status"]["readyReplicas"] == 1
    storage_classes = cluster.get("storageclass")["items"]
    defaults = [c["metadata"]["name"] for c in storage_classes if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"]
    assert defaults == ["local"]


def test_this_machine_resolves_the_stacks_hosts_to_the_ingress_while_the_cluster_runs(cluster):
    # What `make up` prints the URL with: a browser here opens it with nothing edited by hand.
    for name in layout.HOST_NAMES:
        assert socket.gethostbyname(name) == layout.INGRESS_IP
    assert HostState.load(layout.PATHS.host_state).hosts.count(layout.INGRESS_IP) == 0


def test_the_acme_root_is_written_where_a_user_can_read_it(cluster):
    written = local_cluster.acme_root()
    assert written.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert written.stat().st_mode & 0o777 == 0o644 and os.access(written.parent, os.X_OK)
    assert not str(written).startswith(str(layout.PATHS.root))


def test_the_edge_add_ons_answer_cert_manager_pebble_and_the_gateway_class(cluster):
    # cert-manager's webhook is wired into admission: only it refuses an Issuer of two kinds.
    namespace = cluster.namespace("issuer")
    issuer = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Issuer",
        "metadata": {"name": "two-kinds", "namespace": namespace},
        "spec": {"selfSigned": {}, "ca": {"secretName": "ca"}},
    }
    refused = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(issuer), check=False)
    assert refused.returncode != 0 and "webhook.cert-manager.io" in refused.stderr, refused.stderr
    # Pebble serves its ACME directory over HTTPS under its published test CA.
    context = ssl.create_default_context(cafile=str(cluster.bin_dir / "pebble-test-ca" / "ca.crt"))
    directory_url = layout.ACME_DIRECTORY.replace(layout.ACME_HOST, layout.ACME_IP)
    with urllib.request.urlopen(directory_url, context=context, timeout=10) as response:
        assert {"newAccount", "newNonce", "newOrder"} <= set(json.loads(response.read()))
    # Traefik has taken the GatewayClass the gateway edge names.
    assert has_condition(cluster.get("gatewayclass", layout.GATEWAY_CLASS), "Accepted")


def test_the_default_storage_class_binds_a_claim_a_non_root_pod_can_write(cluster):
    namespace = cluster.namespace("storage")
    writer = hardened_pod("writer", CLIENT_IMAGE, SLEEPER)
    writer["spec"]["securityContext"]["fsGroup"] = 10001
    writer["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    writer["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    cluster.apply(claim, writer, namespace=namespace)
    cluster.wait_ready(namespace, "writer")
    python_in(cluster, namespace, "writer", "open('/data/proof', 'w').write('written')")
    assert python_in(cluster, namespace, "writer", "print(open('/data/proof').read())").stdout.strip() == "written"
    assert cluster.get("pvc", "data", "-n", namespace)["status"]["phase"] == "Bound"


def test_pods_can_send_nothing_off_the_machine(cluster):
    """Checked on the rule, never by sending a packet elsewhere: pod traffic for anything
    but pods, Services and this machine's own addresses is dropped before routing, and
    the bridge does not masquerade."""
    rules = subprocess.run(["iptables", "-t", "raw", "-S"], capture_output=True, text=True, check=True).stdout.splitlines()
    chain = layout.EGRESS_CHAIN
    assert f"-A PREROUTING -s {layout.POD_CIDR} -j {chain}" in rules
    chain_rules = [rule for rule in rules if rule.startswith(f"-A {chain} ")]
    assert chain_rules == [
        f"-A {chain} -d {layout.POD_CIDR} -j RETURN",
        f"-A {chain} -d {layout.SERVICE_CIDR} -j RETURN",
        f"-A {chain} -m addrtype --dst-type LOCAL -j RETURN",
        f"-A {chain} -j DROP",
    ]
    conflist = json.loads((layout.PATHS.cni_config / "10-journal.conflist").read_text())
    assert conflist["plugins"][0]["ipMasq"] is False


def test_an_image_not_on_the_node_is_never_fetched_from_outside(cluster):
    """The pull goes to the dead local proxy containerd is given, and fails there: any
    registry but the cluster's own (tests/cluster/test_registry.py) is out of reach."""
    namespace = cluster.namespace("pull")
    missing = hardened_pod("missing", "docker.io/library/busybox:1.36.1", SLEEPER)
    missing["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    cluster.apply(missing, namespace=namespace)

    def pull_failed() -> bool:
        events = cluster.get("events", "-n", namespace, "--field-selector", "involvedObject.name=missing")["items"]
        return any(event["reason"] == "Failed" and "127.0.0.1:9" in event["message"] for event in events)

    cluster.wait(pull_failed, 60, "the pull to fail at the local proxy")


def test_up_twice_is_refused_and_down_restores_the_host(cluster):
    with pytest.raises(ClusterError, match="already running"):
        local_cluster.up()
    before = HostState.load(layout.PATHS.host_state)
    local_cluster.down()
    assert local_cluster.status() == "not running"
    assert before.differences(HostState.read()) == []
    assert not local_cluster.ACME_ROOT_FILE.exists()


def test_an_up_killed_half_way_is_cleared_by_the_next_up(cluster_session):
    """What a session stopped hard leaves (processes, mounts, rules, links, cgroups, the
    state directory) is recognised and cleared, and the host still ends as it began."""
    if local_cluster.is_running():
        local_cluster.down()
    before = HostState.read()
    up = subprocess.Popen([str(layout.PROJECT_DIR / "scripts" / "cluster.sh"), "up"], start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        # Killed once the node runs: containerd, the kubelet and the network are all set up.
        polling.wait_for("the kubelet to start", lambda: (layout.PATHS.logs / "kubelet.log").exists() or up.poll() is not None, 240, interval=0.2)
    finally:
        os.killpg(up.pid, signal.SIGKILL)
        up.wait()
    assert local_cluster.status().startswith("not running (an earlier cluster left state behind")
    assert before.differences(HostState.read()) != []
    local_cluster.up()
    assert local_cluster.is_running()
    local_cluster.down()
    assert before.differences(HostState.read()) == []
