"""The files the cluster's components read: the credentials and kubeconfigs, the
configuration of containerd, the CNI plugins, the kubelet and kube-proxy, and the
addons' manifests filled in with the cluster's names and addresses."""

from __future__ import annotations

import base64
import secrets
import string
from pathlib import Path

from . import commands, images, pki
from .layout import (
    ACME_HOST,
    ACME_IP,
    API_SERVICE_IP,
    BRIDGE,
    CGROUP,
    CLUSTER_DNS_CACHE_SECONDS,
    CLUSTER_DOMAIN,
    DNS_IP,
    INGRESS_IP,
    INGRESS_ZONE,
    KUBECONFIG_CONTEXTS,
    NODE_IP,
    NODE_NAME,
    PATHS,
    POD_CIDR,
    REGISTRY_HOST,
    REGISTRY_LISTEN,
    REGISTRY_USER,
    SERVER,
)
from .provisioner import PROVISIONER, STORAGE_CLASS


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
    pki.Identity("registry", REGISTRY_HOST, alt_names=(f"DNS:{REGISTRY_HOST}",)),
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
  # Where each registry's hosts.toml is: the cluster's registry and its CA.
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{registry_hosts()}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{PATHS.cni_config}"
''',
    )


def registry_hosts() -> Path:
    """containerd's certs.d: the cluster's registry by its name (containerd, on the host,
    reads the name's /etc/hosts line), trusting the cluster's CA. By name and not by
    address: the kubelet hands containerd a pull secret's credential for the host the
    secret names, and containerd gives it only to a host of that same name."""
    hosts = PATHS.containerd / "certs.d"
    write(
        hosts / REGISTRY_HOST / "hosts.toml",
        f'''server = "https://{REGISTRY_HOST}"

[host."https://{REGISTRY_HOST}"]
  capabilities = ["pull", "resolve"]
  ca = "{PATHS.pki / 'ca.crt'}"
''',
    )
    return hosts


def registry_config() -> Path:
    """The registry's configuration, its password (made here, owner-only) and the
    password's bcrypt hash (htpasswd, the only kind of file it reads)."""
    r = PATHS.registry
    password = secrets.token_urlsafe(24)
    write(PATHS.registry_password, password + "\n", mode=0o600)
    hashed = commands.run("htpasswd", "-niB", REGISTRY_USER, input=password).stdout
    write(r / "htpasswd", hashed, mode=0o600)
    return write(
        r / "config.yml",
        f'''version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {r / 'storage'}
  # Pushed manifests are never deleted: a digest, once pushed, stays pullable.
  delete:
    enabled: false
http:
  addr: {REGISTRY_LISTEN}
  tls:
    certificate: {PATHS.pki / 'registry.crt'}
    key: {PATHS.pki / 'registry.key'}
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: {REGISTRY_HOST}
    path: {r / 'htpasswd'}
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


def addon_manifests(bin_dir: Path) -> str:
    """addons.yaml, acme.yaml and cert-manager.yaml as one stream, their $name
    placeholders filled in."""
    acme_crt, acme_key = acme_server_certificate(bin_dir)
    # One set of values for every manifest: each takes the ones it names.
    values = {
        "cluster_domain": CLUSTER_DOMAIN,
        "cluster_dns_cache_seconds": CLUSTER_DNS_CACHE_SECONDS,
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
    return "\n---\n".join(manifest(name, values) for name in ("addons.yaml", "acme.yaml", "cert-manager.yaml"))
