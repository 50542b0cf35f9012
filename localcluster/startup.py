"""The steps of `up`, in order, each small and named (the way kind brings a node up):
what each one starts or writes, and what it waits for before the next may begin.

The node's address is on an interface of its own, pods sit on a bridge of their own,
and a raw-table rule drops anything a pod sends that is not for a pod, a Service or this
machine itself: no packet leaves the machine.
"""

from __future__ import annotations

import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, TypeVar

from . import ClusterError, commands, polling
from .api import Api
from .config_files import (
    addon_manifests,
    cni_config,
    containerd_config,
    kube_proxy_config,
    kubelet_config,
    make_credentials,
    registry_config,
)
from .layout import (
    API_PORT,
    CLUSTER_DOMAIN,
    EGRESS_CHAIN,
    ETCD_CLIENT,
    ETCD_PEER,
    HOST_NAMES,
    INGRESS_IP,
    NODE_IP,
    NODE_LINK,
    NODE_NAME,
    PATHS,
    POD_CIDR,
    PROJECT_DIR,
    REGISTRY_HOST,
    SERVER,
    SERVICE_CIDR,
)
from .host import add_host_names
from .processes import log_tail, make_cgroups, spawn

T = TypeVar("T")

STARTUP_TIMEOUT = float(os.environ.get("JOURNAL_IAC_CLUSTER_TIMEOUT", "240"))

# Images come from the cluster's own registry, or are imported. An image of any other
# registry would make containerd look that registry up and connect to it; through this
# proxy, which nothing listens on, such a pull fails at once (ErrImagePull naming
# 127.0.0.1:9) and no name lookup or connection leaves the machine.
NO_PULLS = {name: "http://127.0.0.1:9" for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")} | {
    "NO_PROXY": REGISTRY_HOST,
    "no_proxy": REGISTRY_HOST,
}


class Startup:
    """What the steps share: the binaries and image archives, the deadline of the whole
    `up`, and the API as the admin."""

    def __init__(self, bin_dir: Path, archives: list[Path]):
        self.bin_dir = bin_dir
        self.archives = archives
        self.deadline = time.monotonic() + STARTUP_TIMEOUT

    @cached_property
    def api(self) -> Api:
        # Not before the credentials step has written the admin's certificate.
        return admin_api()

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 1)


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Startup], None]


def wait_for(what: str, check: Callable[[], T | None], timeout: float, logs: tuple[str, ...] = ()) -> T:
    """polling.wait_for at the pace of the cluster's checks (each an API call or a
    command); on timeout, the error ends with the last lines of the named logs."""
    try:
        return polling.wait_for(what, check, timeout, interval=0.25)
    except polling.TimedOut as error:
        tails = "".join(f"\n--- last lines of {name}.log ---\n{log_tail(name)}" for name in logs)
        raise ClusterError(f"{error}{tails}") from error


def network(_: Startup) -> None:
    # The node's address on an interface of its own: a veth pair, as this kernel may
    # have no dummy interfaces (no modules); nothing is attached to the other end.
    commands.run("ip", "link", "add", NODE_LINK, "type", "veth", "peer", "name", f"{NODE_LINK}-peer")
    commands.run("ip", "addr", "add", f"{NODE_IP}/32", "dev", NODE_LINK)
    for link in (NODE_LINK, f"{NODE_LINK}-peer"):
        commands.run("ip", "link", "set", link, "up")
    # br_netfilter: bridged pod-to-pod traffic goes through iptables, where kube-proxy's
    # Service rules and kube-router's policies are.
    Path("/proc/sys/net/bridge/bridge-nf-call-iptables").write_text("1")
    # In the raw table, before any other chain can accept it: a pod may talk to pods,
    # Services and this machine's own addresses, and nothing else.
    commands.run("iptables", "-t", "raw", "-N", EGRESS_CHAIN)
    for rule in (
        ["-d", POD_CIDR, "-j", "RETURN"],
        ["-d", SERVICE_CIDR, "-j", "RETURN"],
        ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "RETURN"],
        ["-j", "DROP"],
    ):
        commands.run("iptables", "-t", "raw", "-A", EGRESS_CHAIN, *rule)
    commands.run("iptables", "-t", "raw", "-I", "PREROUTING", "1", "-s", POD_CIDR, "-j", EGRESS_CHAIN)


def start_control_plane(startup: Startup) -> None:
    bin_dir, p = startup.bin_dir, PATHS.pki
    spawn("etcd", [
        str(bin_dir / "etcd"), "--name=journal-node", f"--data-dir={PATHS.root / 'etcd'}",
        f"--listen-client-urls={ETCD_CLIENT}", f"--advertise-client-urls={ETCD_CLIENT}",
        f"--listen-peer-urls={ETCD_PEER}", f"--initial-advertise-peer-urls={ETCD_PEER}",
        f"--initial-cluster=journal-node={ETCD_PEER}", "--initial-cluster-state=new",
        # The cluster lives only as long as this machine's session: no fsync.
        "--unsafe-no-fsync", "--log-level=warn",
    ])  # fmt: skip
    spawn("kube-apiserver", [
        str(bin_dir / "kube-apiserver"), f"--etcd-servers={ETCD_CLIENT}",
        f"--bind-address={NODE_IP}", f"--advertise-address={NODE_IP}", f"--secure-port={API_PORT}",
        f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--client-ca-file={p / 'ca.crt'}", "--anonymous-auth=false",
        "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=false", "--profiling=false",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
        f"--service-account-key-file={p / 'service-account.pub'}",
        f"--service-account-signing-key-file={p / 'service-account.key'}",
        f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={p / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP",
    ])  # fmt: skip
    wait_for("the API server", startup.api.healthy, 60, logs=("kube-apiserver", "etcd"))
    spawn("kube-controller-manager", [
        str(bin_dir / "kube-controller-manager"), f"--kubeconfig={PATHS.kubeconfig('controller-manager')}",
        "--secure-port=0", "--leader-elect=false", "--use-service-account-credentials=true",
        f"--cluster-signing-cert-file={p / 'ca.crt'}", f"--cluster-signing-key-file={p / 'ca.key'}",
        f"--root-ca-file={p / 'ca.crt'}", f"--service-account-private-key-file={p / 'service-account.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # The node's podCIDR (kube-router reads it) is the whole pod range.
        "--allocate-node-cidrs=true", f"--cluster-cidr={POD_CIDR}", "--node-cidr-mask-size=24",
    ])  # fmt: skip
    spawn("kube-scheduler", [
        str(bin_dir / "kube-scheduler"), f"--kubeconfig={PATHS.kubeconfig('scheduler')}",
        "--secure-port=0", "--leader-elect=false",
    ])  # fmt: skip



def start_registry(startup: Startup) -> None:
    config = registry_config()
    # Before anything pulls: containerd and the host's builders find it by this name.
    add_host_names(NODE_IP, (REGISTRY_HOST,))
    spawn("registry", ["docker-registry", "serve", str(config)])
    status = wait_for("the registry", registry_status, 30, logs=("registry",))
    if status != 401:
        raise ClusterError(f"the registry at {REGISTRY_HOST} answered {status} where it must ask for credentials (401)")


def registry_status() -> int | None:
    """The HTTP status of its API over TLS from the cluster's CA, or None while it does
    not answer."""
    context = ssl.create_default_context(cafile=str(PATHS.pki / "ca.crt"))
    try:
        with urllib.request.urlopen(f"https://{REGISTRY_HOST}/v2/", context=context, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def start_containerd(startup: Startup) -> None:
    config = containerd_config()
    cni_config()
    spawn("containerd", ["containerd", f"--config={config}"], env=NO_PULLS)
    ctr = ["ctr", f"--address={PATHS.containerd_socket}", "--namespace=k8s.io"]
    wait_for("containerd", lambda: commands.run(*ctr, "version").returncode == 0, 30, logs=("containerd",))
    for archive in startup.archives:
        commands.run(*ctr, "images", "import", str(archive))


def start_node(startup: Startup) -> None:
    spawn("kubelet", [
        str(startup.bin_dir / "kubelet"), f"--config={kubelet_config()}",
        f"--kubeconfig={PATHS.kubeconfig('kubelet-client')}", f"--root-dir={PATHS.kubelet / 'root'}",
        f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}",
    ])  # fmt: skip
    spawn("kube-proxy", [str(startup.bin_dir / "kube-proxy"), f"--config={kube_proxy_config()}"])
    wait_for("the node to be Ready", lambda: node_ready(startup.api), startup.remaining(), logs=("kubelet",))


def node_ready(api: Api) -> bool:
    node = api.get(f"/api/v1/nodes/{NODE_NAME}")
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))
    return ready and bool(node["spec"].get("podCIDR"))


def start_addons(startup: Startup) -> None:
    bin_dir = startup.bin_dir
    spawn("kube-router", [
        str(bin_dir / "kube-router"), f"--kubeconfig={PATHS.kubeconfig('kube-router')}",
        "--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false",
        f"--hostname-override={NODE_NAME}", f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--enable-ipv6=false",
    ])  # fmt: skip
    spawn("provisioner", [sys.executable, "-m", "localcluster.provisioner", str(PATHS.root)], env={"PYTHONPATH": str(PROJECT_DIR)})
    # The CRDs first: the GatewayClass below is one of their objects, and cert-manager and
    # Traefik watch their kinds from the start.
    for crds in ("cert-manager-crds", "gateway-api-crds"):
        apply(bin_dir, "-f", str((bin_dir / crds).resolve()))
    wait_for("the CRDs to be established", lambda: crds_established(startup.api), startup.remaining())
    apply(bin_dir, "-f", "-", input=addon_manifests(bin_dir))


def apply(bin_dir: Path, *args: str, input: str | None = None) -> None:
    commands.run(
        str(bin_dir / "kubectl"), f"--kubeconfig={PATHS.admin_kubeconfig}",
        "apply", "--server-side", "--field-manager=journal-iac-cluster", *args, input=input,
    )  # fmt: skip


def crds_established(api: Api) -> bool:
    return all(
        any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"].get("conditions", []))
        for crd in api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
    )


def wait_usable(startup: Startup) -> None:
    api = startup.api

    def available(namespace: str, name: str) -> bool:
        deployment = api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        return any(c["type"] == "Available" and c["status"] == "True" for c in deployment["status"].get("conditions", []))

    for namespace, name in (
        ("kube-system", "coredns"),
        ("ingress-nginx", "traefik"),
        ("pebble", "pebble"),
        ("cert-manager", "cert-manager"),
        ("cert-manager", "cert-manager-webhook"),
    ):
        wait_for(f"{namespace}/{name}", lambda: available(namespace, name), startup.remaining(), logs=("kubelet",))
    wait_for("the default ServiceAccount", lambda: bool(api.get("/api/v1/namespaces/default/serviceaccounts/default")), startup.remaining())
    # The webhook can be Available before the API server reaches it through its Service:
    # until then every cert-manager object is refused.
    wait_for("cert-manager's webhook to admit objects", lambda: webhook_admits(api), startup.remaining())


def webhook_admits(api: Api) -> bool:
    issuer = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Issuer",
        "metadata": {"name": "webhook-check", "namespace": "default"},
        "spec": {"selfSigned": {}},
    }
    api.create("/apis/cert-manager.io/v1/namespaces/default/issuers?dryRun=All", issuer)
    return True


def admin_api() -> Api:
    return Api(SERVER, PATHS.pki / "ca.crt", PATHS.pki / "admin.crt", PATHS.pki / "admin.key", timeout=5)


STEPS = (
    Step("cgroups", lambda _: make_cgroups()),
    Step("network", network),
    Step("credentials", lambda _: make_credentials()),
    Step("control plane", start_control_plane),
    Step("registry", start_registry),
    Step("containerd and its images", start_containerd),
    Step("node", start_node),
    Step("addons", start_addons),
    Step("addons available", wait_usable),
    Step("host names", lambda _: add_host_names(INGRESS_IP, HOST_NAMES)),
)
