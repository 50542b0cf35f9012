"""Where the cluster is: its names and addresses on this machine, none of them routed
anywhere off it, and the files it keeps under its own directory."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("JOURNAL_IAC_CLUSTER_DIR") or "/var/lib/journal-iac/cluster")

NODE_NAME = "journal-node"
NODE_LINK = "journal0"
NODE_IP = "10.245.255.1"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
DNS_IP = "10.96.0.10"
INGRESS_IP = "10.96.0.80"
# Every name under this zone resolves to INGRESS_IP in the cluster DNS: the stacks' hosts
# (journal.dev.example.com, journal.example.com) are public names of the ingress there.
INGRESS_ZONE = "example.com"
# The stacks' hosts on this machine too, in its /etc/hosts while the cluster runs: a
# browser or curl here opens https://journal.dev.example.com/ as written.
HOST_NAMES = ("journal.dev.example.com", "journal.example.com")
# The ACME server (Pebble): its directory, and the fixed address of its Service, whose
# management port the host reads the issuing root from.
ACME_IP = "10.96.0.14"
ACME_HOST = "pebble.pebble.svc.cluster.local"
ACME_DIRECTORY = f"https://{ACME_HOST}:14000/dir"
ACME_ROOT_URL = f"https://{ACME_IP}:15000/roots/0"
# The cluster's image registry (Debian's docker-registry, the CNCF distribution
# registry) on the node's address, under the name the journal's images carry: containerd
# and the host's builders reach it by that name (an /etc/hosts line while the cluster
# runs), over TLS from the cluster's CA, with a password.
REGISTRY_HOST = "registry.example.com"
REGISTRY_LISTEN = f"{NODE_IP}:443"
REGISTRY_USER = "journal"
GATEWAY_CLASS = "traefik"
CLUSTER_DOMAIN = "cluster.local"
# How long the cluster DNS answers a name from its cache (record TTL and cache alike):
# CoreDNS's own default for cluster names, where kubeadm sets 30. Redis's rollouts wait
# it out between pods, so the stacks here set `clusterDnsCacheSeconds` to it.
CLUSTER_DNS_CACHE_SECONDS = 5
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
        self.registry = root / "registry"
        # The registry's password, owner-only; what `make images` and a pull secret use.
        self.registry_password = root / "registry" / "password"

    def kubeconfig(self, user: str) -> Path:
        return self.root / "kubeconfigs" / f"{user}.kubeconfig"


PATHS = Paths(STATE_DIR)
