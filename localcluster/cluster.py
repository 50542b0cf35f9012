"""A one-node Kubernetes on this machine, for running the journal's stacks for real.

    up      etcd, the API server (Pod Security admission on), the controller manager and
            the scheduler; containerd (runc) with the images built here; the kubelet,
            kube-proxy (iptables) and kube-router (NetworkPolicy); then CoreDNS, a default
            StorageClass, Traefik as the `nginx` IngressClass in `ingress-nginx`, and the
            cert-manager CRDs. Returns once all of it is usable.
    down    stops everything and puts the host back as it was before `up`.
    status  whether a cluster is running.

Everything the cluster owns lives under one directory (JOURNAL_IAC_CLUSTER_DIR,
/var/lib/journal-iac/cluster by default), its processes in one cgroup (`journal-iac`),
so that `down` finds all of it even after the `up` that made it was killed. What it
changes elsewhere on the host is recorded before the first change (localcluster/host.py).

The node's address is on an interface of its own, pods sit on a bridge of their own,
and a raw-table rule drops anything a pod sends that is not for a pod, a Service or this
machine itself: no packet leaves the machine.
"""

from __future__ import annotations

import base64
import fcntl
import os
import shutil
import signal
import string
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from . import images, pki
from .api import Api
from .host import HostState
from .provisioner import PROVISIONER, STORAGE_CLASS

PROJECT_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("JOURNAL_IAC_CLUSTER_DIR") or "/var/lib/journal-iac/cluster")
LOCK_FILE = Path("/run/lock/journal-iac-cluster.lock")
LAST_LOGS = STATE_DIR.parent / "cluster-logs"

NODE_NAME = "journal-node"
NODE_LINK = "journal0"
# Addresses of the cluster's own; none of them is routed anywhere off this machine.
NODE_IP = "10.245.255.1"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
DNS_IP = "10.96.0.10"
INGRESS_IP = "10.96.0.80"
# Every name under this zone resolves to INGRESS_IP in the cluster DNS: the stacks' hosts
# (journal.dev.example.com, journal.example.com) are public names of the ingress there.
INGRESS_ZONE = "example.com"
# The ACME server (Pebble): its directory, and the fixed address of its Service, whose
# management port the host reads the issuing root from.
ACME_IP = "10.96.0.14"
ACME_HOST = "pebble.pebble.svc.cluster.local"
ACME_DIRECTORY = f"https://{ACME_HOST}:14000/dir"
ACME_ROOT_URL = f"https://{ACME_IP}:15000/roots/0"
GATEWAY_CLASS = "traefik"
CLUSTER_DOMAIN = "cluster.local"
BRIDGE = "journal-br0"
API_PORT = 6443
ETCD_CLIENT = "http://127.0.0.1:12379"
ETCD_PEER = "http://127.0.0.1:12380"
CGROUP = "journal-iac"
EGRESS_CHAIN = "JOURNAL-IAC-EGRESS"
SERVER = f"https://{NODE_IP}:{API_PORT}"
# The contexts of the admin kubeconfig: one per stack that may deploy here (a stack
# names the context it deploys to), and `local` for everything else.
KUBECONFIG_CONTEXTS = ("local", "journal-local")

# Images are imported, never pulled. An image that is not on the node would make
# containerd look its registry up and connect to it; through this proxy, which nothing
# listens on, a pull fails at once (ErrImagePull naming 127.0.0.1:9) and no name lookup
# or connection leaves the machine.
NO_PULLS = {name: "http://127.0.0.1:9" for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")} | {
    "NO_PROXY": "",
    "no_proxy": "",
}

STARTUP_TIMEOUT = float(os.environ.get("JOURNAL_IAC_CLUSTER_TIMEOUT", "240"))


class ClusterError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"cluster: {message}", file=sys.stderr, flush=True)


# --- paths ---------------------------------------------------------------------------


class Paths:
    def __init__(self, root: Path):
        self.root = root
        self.pki = root / "pki"
        self.logs = root / "logs"
        self.host_state = root / "host-state.json"
        self.ready = root / "ready"
        self.admin_kubeconfig = root / "admin.kubeconfig"
        self.containerd = root / "containerd"
        self.containerd_socket = root / "containerd" / "containerd.sock"
        self.kubelet = root / "kubelet"
        self.cni_config = root / "cni" / "net.d"
        self.volumes = root / "volumes"

    def kubeconfig(self, user: str) -> Path:
        return self.root / "kubeconfigs" / f"{user}.kubeconfig"


PATHS = Paths(STATE_DIR)


# --- host plumbing -------------------------------------------------------------------


def run(*command: str, check: bool = True, input: str | None = None) -> str:
    result = subprocess.run(command, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and result.returncode != 0:
        raise ClusterError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def cgroup_hierarchies() -> list[Path]:
    """The mount points of the host's cgroup hierarchies (v1 controllers, and v2)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        if after.split()[0] in ("cgroup", "cgroup2"):
            found.append(Path(before.split()[4]))
    return found


def make_cgroups() -> None:
    """The cgroup the kubelet puts pods under (its cgroupRoot, which must exist in every
    hierarchy) and, beside the pods, one for the cluster's own processes."""
    for hierarchy in cgroup_hierarchies():
        for relative in (CGROUP, f"{CGROUP}/daemons"):
            directory = hierarchy / relative
            directory.mkdir(exist_ok=True)
            # A cpuset cgroup takes no process until it has CPUs and memory nodes.
            for name in ("cpuset.cpus", "cpuset.mems"):
                if (directory / name).exists() and not (directory / name).read_text().strip():
                    (directory / name).write_text((directory.parent / name).read_text())


def join_daemons_cgroup() -> None:
    """Runs in the child before exec: moves it into the cluster's cgroup everywhere."""
    for hierarchy in cgroup_hierarchies():
        procs = hierarchy / CGROUP / "daemons" / "cgroup.procs"
        if procs.exists():
            procs.write_text("0")


def cgroup_pids() -> set[int]:
    pids: set[int] = set()
    for hierarchy in cgroup_hierarchies():
        root = hierarchy / CGROUP
        if root.is_dir():
            for procs in root.rglob("cgroup.procs"):
                try:
                    pids.update(int(pid) for pid in procs.read_text().split())
                except OSError:
                    continue
    return pids


def kill_cluster_processes(timeout: float = 30.0) -> None:
    """Every process of the cluster, pods included, found by cgroup (pid files would
    miss what a killed `up` started), killed until none is left."""
    deadline = time.monotonic() + timeout
    while pids := cgroup_pids():
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise ClusterError(f"processes survive SIGKILL: {sorted(pids)[:10]}")
        time.sleep(0.1)


def remove_cgroups() -> None:
    for hierarchy in cgroup_hierarchies():
        root = hierarchy / CGROUP
        if not root.is_dir():
            continue
        directories = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for directory in [*directories, root]:
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    # A killed process leaves its cgroup a moment after it dies.
                    time.sleep(0.1)


def spawn(name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    PATHS.logs.mkdir(parents=True, exist_ok=True)
    with open(PATHS.logs / f"{name}.log", "ab") as output:
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=join_daemons_cgroup,
            env={**os.environ, **(env or {})},
        )


def log_tail(name: str, lines: int = 25) -> str:
    path = PATHS.logs / f"{name}.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_for(what: str, check: Callable[[], bool], timeout: float, logs: tuple[str, ...] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.25)
    tails = "".join(f"\n--- last lines of {name}.log ---\n{log_tail(name)}" for name in logs)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}{tails}")


# --- configuration -------------------------------------------------------------------


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


IDENTITIES = (
    pki.Identity("apiserver", "kube-apiserver", alt_names=(
        "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
        f"DNS:kubernetes.default.svc.{CLUSTER_DOMAIN}", f"IP:{API_SERVICE_IP}", f"IP:{NODE_IP}",
    )),  # fmt: skip
    pki.Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
    pki.Identity("admin", "journal-iac-admin", "system:masters"),
    pki.Identity("controller-manager", "system:kube-controller-manager"),
    pki.Identity("scheduler", "system:kube-scheduler"),
    pki.Identity("kube-proxy", "system:kube-proxy", "system:node-proxier"),
    pki.Identity("kubelet-client", f"system:node:{NODE_NAME}", "system:nodes"),
    pki.Identity("kubelet-serving", NODE_NAME, alt_names=(f"DNS:{NODE_NAME}", f"IP:{NODE_IP}")),
    pki.Identity("kube-router", "journal-iac:kube-router"),
    pki.Identity("provisioner", "journal-iac:volume-provisioner"),
    # cert-manager's webhook, as the API server calls it through its Service.
    pki.Identity("cert-manager-webhook", "cert-manager-webhook", alt_names=("DNS:cert-manager-webhook.cert-manager.svc",)),
)


def make_credentials() -> None:
    pki.make_ca(PATHS.pki)
    for identity in IDENTITIES:
        pki.issue(PATHS.pki, identity)
    pki.service_account_keys(PATHS.pki)
    for user in ("controller-manager", "scheduler", "kube-proxy", "kubelet-client", "kube-router"):
        PATHS.kubeconfig(user).parent.mkdir(exist_ok=True)
        pki.kubeconfig(PATHS.kubeconfig(user), SERVER, PATHS.pki, user)
    pki.kubeconfig(PATHS.admin_kubeconfig, SERVER, PATHS.pki, "admin", KUBECONFIG_CONTEXTS)
    # What the provisioner needs to find the API server and its node.
    write(PATHS.root / "api-server", SERVER + "\n")
    write(PATHS.root / "node-name", NODE_NAME + "\n")


def containerd_config() -> Path:
    c = PATHS.containerd
    return write(
        c / "config.toml",
        f'''version = 2
root = "{c / 'root'}"
state = "{c / 'state'}"
# Nothing but what a CRI node needs.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{PATHS.containerd_socket}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images.PAUSE_IMAGE}"
  # This machine's capability bounding set lacks CAP_SYS_RESOURCE: runc may not write
  # a negative oom_score_adj, and without this every pod sandbox fails to start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{c / 'runc'}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{PATHS.cni_config}"
''',
    )


def cni_config() -> None:
    # ipMasq false: masquerading would send pod traffic for other addresses out of the
    # machine's interface; here it has nowhere to go (see the egress rule).
    write(
        PATHS.cni_config / "10-journal.conflist",
        f'''{{
  "cniVersion": "1.0.0",
  "name": "journal",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{"subnet": "{POD_CIDR}"}}]],
        "routes": [{{"dst": "0.0.0.0/0"}}],
        "dataDir": "{PATHS.root / 'cni' / 'ipam'}"
      }}
    }},
    {{"type": "portmap", "capabilities": {{"portMappings": true}}}},
    {{"type": "firewall"}}
  ]
}}
''',
    )


def kubelet_config() -> Path:
    k = PATHS.kubelet
    # An empty resolv.conf: pods get the cluster DNS and the cluster's search domains,
    # nothing from the host's resolver.
    write(k / "resolv.conf", "")
    return write(
        k / "config.yaml",
        f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {NODE_IP}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {PATHS.pki / 'ca.crt'}}}
authorization: {{mode: Webhook}}
tlsCertFile: {PATHS.pki / 'kubelet-serving.crt'}
tlsPrivateKeyFile: {PATHS.pki / 'kubelet-serving.key'}
containerRuntimeEndpoint: unix://{PATHS.containerd_socket}
cgroupDriver: cgroupfs
cgroupRoot: /{CGROUP}
# cgroup v1 hosts: Kubernetes 1.34 only warns, 1.35 refuses unless this is set.
failCgroupV1: false
failSwapOn: false
clusterDomain: {CLUSTER_DOMAIN}
clusterDNS: [{DNS_IP}]
resolvConf: {k / 'resolv.conf'}
volumePluginDir: {k / 'volume-plugins'}
podLogsDir: {k / 'pod-logs'}
# Images are never pulled, so none may be collected.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}}
serializeImagePulls: false
rotateCertificates: false
""",
    )


def kube_proxy_config() -> Path:
    return write(
        PATHS.root / "kube-proxy" / "config.yaml",
        f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {{kubeconfig: {PATHS.kubeconfig('kube-proxy')}}}
hostnameOverride: {NODE_NAME}
mode: iptables
clusterCIDR: {POD_CIDR}
healthzBindAddress: {NODE_IP}:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [{NODE_IP}/32]
iptables: {{localhostNodePorts: false}}
# Zero leaves the host's conntrack settings alone.
conntrack: {{maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}}
""",
    )


# --- steps of `up` --------------------------------------------------------------------


def tools() -> Path:
    result = subprocess.run(
        [str(PROJECT_DIR / "toolchain" / "install-kubernetes.sh")], stdout=subprocess.PIPE, text=True
    )
    if result.returncode != 0:
        raise ClusterError("toolchain/install-kubernetes.sh failed (its output is above)")
    return Path(result.stdout.strip())


def network() -> None:
    # The node's address on an interface of its own: a veth pair, as this kernel may
    # have no dummy interfaces (no modules); nothing is attached to the other end.
    run("ip", "link", "add", NODE_LINK, "type", "veth", "peer", "name", f"{NODE_LINK}-peer")
    run("ip", "addr", "add", f"{NODE_IP}/32", "dev", NODE_LINK)
    for link in (NODE_LINK, f"{NODE_LINK}-peer"):
        run("ip", "link", "set", link, "up")
    # br_netfilter: bridged pod-to-pod traffic goes through iptables, where kube-proxy's
    # Service rules and kube-router's policies are.
    Path("/proc/sys/net/bridge/bridge-nf-call-iptables").write_text("1")
    # In the raw table, before any other chain can accept it: a pod may talk to pods,
    # Services and this machine's own addresses, and nothing else.
    run("iptables", "-t", "raw", "-N", EGRESS_CHAIN)
    for rule in (
        ["-d", POD_CIDR, "-j", "RETURN"],
        ["-d", SERVICE_CIDR, "-j", "RETURN"],
        ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "RETURN"],
        ["-j", "DROP"],
    ):
        run("iptables", "-t", "raw", "-A", EGRESS_CHAIN, *rule)
    run("iptables", "-t", "raw", "-I", "PREROUTING", "1", "-s", POD_CIDR, "-j", EGRESS_CHAIN)


def start_control_plane(bin_dir: Path, api: Api) -> None:
    p = PATHS.pki
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
    wait_for("the API server", api.healthy, 60, logs=("kube-apiserver", "etcd"))
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


def start_containerd(archives: list[Path]) -> None:
    config = containerd_config()
    cni_config()
    spawn("containerd", ["containerd", f"--config={config}"], env=NO_PULLS)
    ctr = ["ctr", f"--address={PATHS.containerd_socket}", "--namespace=k8s.io"]
    wait_for("containerd", lambda: subprocess.run([*ctr, "version"], capture_output=True).returncode == 0, 30, logs=("containerd",))
    for archive in archives:
        run(*ctr, "images", "import", str(archive))


def start_node(bin_dir: Path) -> None:
    spawn("kubelet", [
        str(bin_dir / "kubelet"), f"--config={kubelet_config()}",
        f"--kubeconfig={PATHS.kubeconfig('kubelet-client')}", f"--root-dir={PATHS.kubelet / 'root'}",
        f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}",
    ])  # fmt: skip
    spawn("kube-proxy", [str(bin_dir / "kube-proxy"), f"--config={kube_proxy_config()}"])


def node_ready(api: Api) -> bool:
    node = api.get(f"/api/v1/nodes/{NODE_NAME}")
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))
    return ready and bool(node["spec"].get("podCIDR"))


def acme_server_certificate(bin_dir: Path) -> tuple[Path, Path]:
    """The ACME server's HTTPS certificate and key, signed by Pebble's published test CA
    (the bundle a stack names in acmeCaBundle to trust the server)."""
    test_ca = (bin_dir / "pebble-test-ca").resolve()
    identity = pki.Identity("acme-server", "pebble", alt_names=(
        "DNS:pebble.pebble.svc", f"DNS:{ACME_HOST}", f"IP:{ACME_IP}",
    ))  # fmt: skip
    pki.issue(PATHS.pki, identity, ca=(test_ca / "ca.crt", test_ca / "ca.key"))
    return PATHS.pki / "acme-server.crt", PATHS.pki / "acme-server.key"


def manifest(name: str, values: dict[str, str]) -> str:
    return string.Template((Path(__file__).parent / name).read_text()).substitute(values)


def start_addons(bin_dir: Path, api: Api, deadline: float) -> None:
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
    wait_for("the CRDs to be established", lambda: crds_established(api), max(deadline - time.monotonic(), 1))
    acme_crt, acme_key = acme_server_certificate(bin_dir)
    # One set of values for every manifest: each takes the ones it names.
    values = {
        "cluster_domain": CLUSTER_DOMAIN,
        "dns_ip": DNS_IP,
        "ingress_ip": INGRESS_IP,
        "ingress_zone": INGRESS_ZONE,
        "acme_host": ACME_HOST,
        "acme_ip": ACME_IP,
        "acme_tls_crt": base64.b64encode(acme_crt.read_bytes()).decode(),
        "acme_tls_key": base64.b64encode(acme_key.read_bytes()).decode(),
        "storage_class": STORAGE_CLASS,
        "provisioner": PROVISIONER,
        "coredns_image": images.COREDNS_IMAGE,
        "traefik_image": images.TRAEFIK_IMAGE,
        "pebble_image": images.PEBBLE_IMAGE,
        "cluster_ca_bundle": base64.b64encode((PATHS.pki / "ca.crt").read_bytes()).decode(),
        "cert_manager_webhook_tls_crt": base64.b64encode((PATHS.pki / "cert-manager-webhook.crt").read_bytes()).decode(),
        "cert_manager_webhook_tls_key": base64.b64encode((PATHS.pki / "cert-manager-webhook.key").read_bytes()).decode(),
        **{f"cert_manager_{command}_image": images.cert_manager_image(command) for command in images.CERT_MANAGER_COMMANDS},
    }
    addons = [manifest(name, values) for name in ("addons.yaml", "acme.yaml", "cert-manager.yaml")]
    apply(bin_dir, "-f", "-", input="\n---\n".join(addons))


def apply(bin_dir: Path, *args: str, input: str | None = None) -> None:
    kubectl(bin_dir, "apply", "--server-side", "--field-manager=journal-iac-cluster", *args, input=input)


def crds_established(api: Api) -> bool:
    return all(
        any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"].get("conditions", []))
        for crd in api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
    )


def kubectl(bin_dir: Path, *args: str, input: str | None = None) -> str:
    return run(str(bin_dir / "kubectl"), f"--kubeconfig={PATHS.admin_kubeconfig}", *args, input=input)


def wait_usable(api: Api, deadline: float) -> None:
    def available(namespace: str, name: str) -> bool:
        deployment = api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        return any(c["type"] == "Available" and c["status"] == "True" for c in deployment["status"].get("conditions", []))

    remaining = lambda: max(deadline - time.monotonic(), 1)  # noqa: E731
    for namespace, name in (
        ("kube-system", "coredns"),
        ("ingress-nginx", "traefik"),
        ("pebble", "pebble"),
        ("cert-manager", "cert-manager"),
        ("cert-manager", "cert-manager-webhook"),
    ):
        wait_for(f"{namespace}/{name}", lambda: available(namespace, name), remaining(), logs=("kubelet",))
    wait_for("the default ServiceAccount", lambda: bool(api.get("/api/v1/namespaces/default/serviceaccounts/default")), remaining())
    # The webhook can be Available before the API server reaches it through its Service:
    # until then every cert-manager object is refused.
    wait_for("cert-manager's webhook to admit objects", lambda: webhook_admits(api), remaining())


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


# --- the commands --------------------------------------------------------------------


@contextmanager
def locked() -> Iterator[None]:
    """One `up` or `down` at a time on this machine."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ClusterError(f"another `up` or `down` is in progress (lock {LOCK_FILE})") from None
        yield


def is_running() -> bool:
    return PATHS.ready.exists() and admin_api().healthy()


def require_root() -> None:
    if os.geteuid() != 0:
        raise ClusterError("the local cluster needs root (it runs a kubelet, containerd and iptables)")


def up() -> float:
    require_root()
    bin_dir = tools()
    archives = [archive for _, archive in images.build_all(bin_dir)]
    started = time.monotonic()
    with locked():
        if PATHS.root.exists():
            if is_running():
                raise ClusterError(f"a cluster is already running; its kubeconfig is {PATHS.admin_kubeconfig}")
            log("clearing what an earlier cluster left behind ...")
            teardown()
        PATHS.root.mkdir(parents=True, mode=0o700)
        # Before anything on the host changes: what `down` puts back.
        HostState.read().save(PATHS.host_state)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            make_cgroups()
            network()
            make_credentials()
            api = admin_api()
            start_control_plane(bin_dir, api)
            start_containerd(archives)
            start_node(bin_dir)
            wait_for("the node to be Ready", lambda: node_ready(api), max(deadline - time.monotonic(), 1), logs=("kubelet",))
            start_addons(bin_dir, api, deadline)
            wait_usable(api, deadline)
            PATHS.ready.write_text(f"{time.time()}\n")
        except BaseException:
            log("up failed; stopping what it started and restoring the host")
            keep_logs()
            teardown()
            raise
    return time.monotonic() - started


def keep_logs() -> None:
    """The logs outlive the cluster, for the next look at what went wrong."""
    if PATHS.logs.is_dir():
        shutil.rmtree(LAST_LOGS, ignore_errors=True)
        shutil.copytree(PATHS.logs, LAST_LOGS)


def teardown() -> None:
    kill_cluster_processes()
    if PATHS.host_state.exists():
        try:
            HostState.load(PATHS.host_state).restore(log)
        except RuntimeError as error:
            # The record stays, so that the next `down` or `up` tries again.
            raise ClusterError(f"could not restore the host ({error}); {PATHS.host_state} is kept for the next try") from None
    remove_cgroups()
    if PATHS.root.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(PATHS.root)], check=False)
    if PATHS.root.exists():
        raise ClusterError(f"{PATHS.root} could not be removed")


def peak_memory_bytes() -> int | None:
    """The most memory the cluster's processes and pods used at once, from its cgroup
    (cgroup v1's max_usage, or v2's peak), or None where neither is kept."""
    for hierarchy in cgroup_hierarchies():
        for name in ("memory.max_usage_in_bytes", "memory.peak"):
            path = hierarchy / CGROUP / name
            if path.exists():
                return int(path.read_text())
    return None


def down() -> tuple[float, int | None]:
    """Stops the cluster; returns the seconds it took and the cluster's peak memory."""
    require_root()
    started = time.monotonic()
    with locked():
        if not PATHS.root.exists() and not cgroup_pids():
            return 0.0, None
        peak = peak_memory_bytes()
        keep_logs()
        teardown()
    return time.monotonic() - started, peak


def status() -> str:
    if not PATHS.root.exists():
        return "not running"
    if is_running():
        return f"running: node {NODE_NAME} at {SERVER}; kubeconfig {PATHS.admin_kubeconfig}"
    return "not running (an earlier cluster left state behind; the next up clears it)"
