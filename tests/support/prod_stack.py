"""Pulumi.prod.yaml deployed on the local cluster, with what one 2-core node and the tests'
one client force on it and nothing else:

- `kubernetes:context` is `journal-local`, not `journal-prod`: this is not production;
- frontendCpuRequest 250m -> 100m and redisCpuRequest 500m -> 100m: prod's requests add up
  to 2.35 cores (3 x 250m + 3 x 500m + 2 x 50m), more than the node has beside CoreDNS
  and Traefik, and the scheduler would leave pods Pending. Replicas (3 frontends, three
  Redis pods with their Sentinels, 2 file servers), limits, memory, 50Gi volumes and
  protectData stay as in prod;
- the certificate comes from the cluster's own ACME server, as dev's does (Pulumi.dev.yaml's
  tlsIssuer, acmeServer and acmeCaBundle), not from Let's Encrypt, which nothing here may
  reach;
- clusterDnsCacheSeconds is the local cluster's, as dev's: its CoreDNS caches names for
  5 s, where kubeadm's caches them for 30, and a Redis rollout waits that out between pods;
- frontendWritesPerMinute and frontendWriteBurst raised: the failover tests' traffic (25
  writes a second, up to 160 in flight) comes from one address, the host's, where prod expects
  each client to write at a person's pace.

One deployment serves the test modules under tests/cluster/prod/ (its conftest.py).
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from support.deployed_stack import DeployedStack
from support.local_cluster import LocalCluster
from support.program_mocks import stack_config
from support.project_copy import Project

NAMESPACE = "journal-prod"
HOST = "journal.example.com"
REDIS_PODS = ("redis-0", "redis-1", "redis-2")
SENTINEL_PORT = "26379"
LOCAL_NODE = {
    "kubernetes:context": "journal-local",
    "journal:frontendCpuRequest": "100m",
    "journal:redisCpuRequest": "100m",
    "journal:frontendWritesPerMinute": "6000",
    "journal:frontendWriteBurst": "500",
    **{
        key: stack_config("dev")[key]
        for key in ("journal:tlsIssuer", "journal:acmeServer", "journal:acmeCaBundle", "journal:clusterDnsCacheSeconds")
    },
}


def configure_for_the_local_node(project: Project) -> None:
    stack_file = project.root / "Pulumi.prod.yaml"
    settings = yaml.safe_load(stack_file.read_text())
    settings["config"].update(LOCAL_NODE)
    stack_file.write_text(yaml.safe_dump(settings))


class Prod(DeployedStack):
    def __init__(self, project: Project, cluster: LocalCluster):
        super().__init__(project, cluster, "prod", NAMESPACE, HOST)

    def post(self, text: str) -> dict[str, Any]:
        """POST an entry over HTTPS through the ingress controller, from the host, as any writer."""
        status, _, body = self.client.request("POST", "/api", text.encode())
        assert status == 201, body
        return json.loads(body)

    def posts(self, text: str = "a write") -> bool:
        """Whether a write through the ingress succeeds now."""
        try:
            self.post(text)
            return True
        except Exception:
            return False

    def status(self, path: str) -> int:
        return self.client.request("GET", path)[0]

    def replication(self, pod: str) -> dict[str, str]:
        info = self.redis_cli(pod, "INFO", "replication")
        return dict(line.split(":", 1) for line in info.splitlines() if ":" in line)

    def sentinel_master(self, pod: str) -> str | None:
        """The pod the Sentinel of `pod` names the master, None if it names none."""
        reply = self.redis_cli(pod, "-p", SENTINEL_PORT, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "journal", check=False).split()
        return reply[0].split(".")[0] if len(reply) == 2 else None

    def settled_master(self) -> str | None:
        """The master's pod once the Redis tier is whole again: every pod available and
        none stopping, exactly one master, every other pod its replica with the link up,
        and every Sentinel naming it; else None.

        A pod still in its preStop hook answers like a settled one (it follows the new
        master), and the next fault would meet its stop half-way. A pod restarted less
        than the StatefulSet's minReadySeconds ago may still be out of its peers' reach
        by name (the cluster DNS caches its old address), as it would be for the
        StatefulSet's own rollout."""
        try:
            if not self.redis_pods_available():
                return None
            roles = {pod: self.replication(pod) for pod in REDIS_PODS}
            masters = [pod for pod, info in roles.items() if info.get("role") == "master"]
            if len(masters) != 1:
                return None
            (master,) = masters
            for pod, info in roles.items():
                if pod != master and (info.get("master_host", "").split(".")[0], info.get("master_link_status")) != (master, "up"):
                    return None
            if any(self.sentinel_master(pod) != master for pod in REDIS_PODS):
                return None
            return master
        except Exception:  # a pod restarting, exec refused: not settled yet
            return None

    def redis_pods_available(self) -> bool:
        """Whether every Redis pod has been Ready for the StatefulSet's minReadySeconds
        and none is being deleted."""
        statefulset = self.cluster.get("statefulset", "redis", "-n", NAMESPACE)
        if statefulset.get("status", {}).get("availableReplicas") != len(REDIS_PODS):
            return False
        selector = ",".join(f"{key}={value}" for key, value in statefulset["spec"]["selector"]["matchLabels"].items())
        pods = self.cluster.get("pods", "-n", NAMESPACE, "-l", selector)["items"]
        return not any(pod["metadata"].get("deletionTimestamp") for pod in pods)

    def wait_until_settled(self, timeout: float = 120) -> str:
        return self.cluster.wait(self.settled_master, timeout, "one master that every Redis pod follows and every Sentinel names")

    def redis_story(self) -> str:
        """What the Redis pods' logs say happened: every Sentinel's events (+sdown,
        +switch-master...) and each Redis's own lines, for a failure's message."""
        story = []
        for pod in REDIS_PODS:
            for container in ("sentinel", "redis"):
                log = self.cluster.kubectl("logs", "-n", NAMESPACE, pod, "-c", container, "--tail=60", check=False)
                story.append(f"--- {pod} {container}\n{log.stdout.strip() or log.stderr.strip()}")
        return "\n".join(story)

    def pod_name(self, component: str) -> str:
        return self.pods(component)[0]["metadata"]["name"]

    def pod_ip(self, name: str, namespace: str = NAMESPACE) -> str:
        return self.cluster.get("pod", name, "-n", namespace)["status"]["podIP"]
