"""Production's shape without production's machines: the real control plane (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, all v1.34.4) with a fleet of
fake nodes whose kubelets kwok simulates. The scheduler, the eviction API, the disruption
controller, the node lifecycle controller and the workload controllers are the real ones.

What kwok stands in for, and nothing more:
- the kubelets, one kwok process per node: nodes Ready with a lease heartbeat, pods
  Running and Ready as soon as they are bound (kwok's own "fast" stages), gone a second
  after they start terminating (tests/support/kwok_kubelet_stages.yaml); killing a node's process
  is that node's machine dying;
- the volume provisioner: the default StorageClass binds every claim;
- the controllers of the edge (tests/support/kwok_edge_stages.yaml): an Ingress gets the ingress
  address in its status, a cert-manager Issuer and Certificate become Ready, as the
  ingress controller and cert-manager would report them.

Nodes are labelled with their hostname and one of three zones, and sized like a modest
production node (4 cores, 16 GiB). Eviction on node loss is shortened (the API server's
default tolerations of 300 s become 5 s; a node is unreachable 20 s after its last
heartbeat instead of 50 s, its lease renewed every few seconds) so that a test can watch
it.

    with Fleet(bin_dir) as fleet:
        fleet.add_nodes(3)
        fleet.kubectl("get", "nodes")
        # fleet.kubeconfig has the contexts `fleet` and `journal-prod` (the one
        # Pulumi.prod.yaml names): prod deploys onto it unchanged.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Callable

from support.kube_apiserver import KubeAPIServer, StartError
from support.project_copy import Project
from support.kubectl import KubectlClient, has_condition

ZONES = ("zone-a", "zone-b", "zone-c")
NODE_CAPACITY = {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}
# The stages a node's own kwok runs (its kubelet's part); the cluster's kwok runs the rest.
NODE_STAGE_PREFIXES = ("node-", "pod-")
KUBECONFIG_CONTEXTS = ("fleet", "journal-prod")
EDGE_STAGES = Path(__file__).with_name("kwok_edge_stages.yaml")
KUBELET_STAGES = Path(__file__).with_name("kwok_kubelet_stages.yaml")
NOT_READY_SECONDS = 20
LEASE_SECONDS = 8
EVICTION_SECONDS = 5


class Fleet(KubectlClient, KubeAPIServer):
    def __init__(self, bin_dir: Path):
        super().__init__(
            bin_dir,
            extra_args=(
                f"--default-not-ready-toleration-seconds={EVICTION_SECONDS}",
                f"--default-unreachable-toleration-seconds={EVICTION_SECONDS}",
            ),
        )
        self.nodes: list[str] = []
        self._node_stages = Path()
        self._joined = 0

    def start(self, timeout: float = 90.0, attempts: int = 3) -> "Fleet":
        super().start(timeout, attempts)
        try:
            self._start_fleet(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_fleet(self, timeout: float) -> None:
        assert self.workdir is not None
        tls = self.workdir / "tls"
        self._write_kubeconfig()
        self.spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={self.kubeconfig}",
                "--secure-port=0",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                f"--service-account-private-key-file={tls / 'service-account.key'}",
                f"--root-ca-file={tls / 'ca.crt'}",
                f"--node-monitor-grace-period={NOT_READY_SECONDS}s",
                "--node-monitor-period=1s",
            ],
        )
        self.spawn("kube-scheduler", [f"--kubeconfig={self.kubeconfig}", "--secure-port=0", "--leader-elect=false"])
        # Before kwok starts: it watches the kinds its stages name from the start.
        self.install_crds("cert-manager-crds", "gateway-api-crds")
        module_files = sorted((self.bin_dir / "kwok-stages").resolve().glob("*.yaml"))
        # The one object among the module's stage files: the default StorageClass.
        (storage_class,) = [path for path in module_files if path.name.endswith("storage-class.yaml")]
        self.kubectl("create", "-f", str(storage_class))
        stages = [path for path in module_files if path != storage_class]
        node_stages = [path for path in stages if path.name.startswith(NODE_STAGE_PREFIXES)]
        self._node_stages = self._stage_file("node-stages.yaml", [*node_stages, KUBELET_STAGES])
        # The cluster's part (volumes, the edge's controllers), for no node of its own.
        cluster_stages = self._stage_file("cluster-stages.yaml", [*(p for p in stages if p not in node_stages), EDGE_STAGES])
        self._start_cluster_kwok(cluster_stages)
        self.wait(lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0, timeout, "the default ServiceAccount")

    def _start_cluster_kwok(self, stages: Path, attempts: int = 3) -> None:
        """The cluster's kwok, proven to act on the edge's kinds before anything is
        deployed: a probe Issuer must turn Ready. kwok reads each kind's OpenAPI schema
        when it starts and exits if one is missing, and the API server publishes a new
        CRD's schema a moment after the CRD is established: wait for those first."""
        for group_version in ("cert-manager.io/v1", "networking.k8s.io/v1"):
            self.wait(
                lambda: f"apis/{group_version}" in (self.request("GET", "/openapi/v3").body or {}).get("paths", {}),
                30,
                f"the OpenAPI schema of {group_version}",
            )
        probe = {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": "kwok-probe", "namespace": "default"},
            "spec": {"selfSigned": {}},
        }
        self.kubectl("create", "-f", "-", input=json.dumps(probe))
        for attempt in range(1, attempts + 1):
            self.spawn("kwok-cluster", self._kwok_args(stages, "no-such-node"), binary="kwok")
            try:
                self.wait(
                    lambda: has_condition(self.get("issuer", "kwok-probe", "-n", "default"), "Ready"),
                    20,
                    "the cluster's kwok to mark a probe Issuer Ready",
                )
                break
            except (AssertionError, StartError):
                _stop(self.processes.pop("kwok-cluster"))
                if attempt == attempts:
                    raise
        self.kubectl("delete", "issuer", "kwok-probe", "-n", "default")

    def _stage_file(self, name: str, paths: list[Path]) -> Path:
        assert self.workdir is not None
        path = self.workdir / name
        path.write_text("\n---\n".join(p.read_text() for p in paths))
        return path

    def _kwok_args(self, stages: Path, node: str) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--config={stages}",
            f"--manage-single-node={node}",
            f"--node-lease-duration-seconds={LEASE_SECONDS}",
            "--cidr=10.244.0.1/16",
            "--node-ip=127.0.0.1",
            "--server-address=",
        ]

    def _write_kubeconfig(self) -> None:
        assert self.workdir is not None
        self.kubeconfig = self.workdir / "kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fleet", "cluster": {"server": self.url, "certificate-authority": str(self.workdir / "tls" / "ca.crt")}}],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": name, "context": {"cluster": "fleet", "user": "admin"}} for name in KUBECONFIG_CONTEXTS],
            "current-context": KUBECONFIG_CONTEXTS[0],
        }
        self.kubeconfig.write_text(json.dumps(config))
        self.kubeconfig.chmod(0o600)

    # --- nodes ---------------------------------------------------------------------------

    def add_nodes(self, count: int) -> list[str]:
        """`count` more nodes, spread over the zones in turn, each Ready before this returns."""
        added = []
        for _ in range(count):
            # Numbered in the order they join: a lost node's name is never reused.
            index, self._joined = self._joined, self._joined + 1
            name = f"fleet-{index}"
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "topology.kubernetes.io/zone": ZONES[index % len(ZONES)],
                    },
                },
                "status": {"capacity": NODE_CAPACITY, "allocatable": NODE_CAPACITY},
            }
            self.kubectl("create", "-f", "-", input=json.dumps(node))
            self.spawn(f"kwok-{name}", self._kwok_args(self._node_stages, name), binary="kwok")
            added.append(name)
        self.nodes += added
        for name in added:
            self.wait(lambda: self.node_ready(name), 60, f"node {name} to be Ready")
        return added

    def node_ready(self, name: str) -> bool:
        return has_condition(self.get("node", name), "Ready")

    def lose_node(self, name: str) -> None:
        """The node's machine dies: its kubelet (its kwok) is killed, and nothing more is
        heard from it."""
        _stop(self.processes.pop(f"kwok-{name}"))

    def wait(self, check: Callable[[], object], timeout: float, what: str, interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise StartError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")
            time.sleep(interval)



def _stop(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()


def add_team_stack(project: Project, stack: str) -> None:
    """dev's stack file for `stack`: the fleet's context, a host of its own."""
    text = project.stack_files["dev"]
    text = text.replace("kubernetes:context: journal-local", "kubernetes:context: fleet")
    text = text.replace("journal:host: journal.dev.example.com", f"journal:host: journal.{stack}.example.com")
    (project.root / f"Pulumi.{stack}.yaml").write_text(text)
