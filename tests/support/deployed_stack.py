"""A stack deployed on the local cluster (tests/support/local_cluster.py), reached as its users
reach it, over HTTPS to its host name through the ingress controller verified against the
cluster's ACME root (its writes with the stack's write credential), and as its operator
does, with redis-cli in its Redis pods."""

from __future__ import annotations

import base64
import subprocess
import time

from support.edge_client import EdgeClient, acme_root
from support.kubectl import Manifest
from support.local_cluster import LocalCluster
from support.project_copy import Project


def failure_output(result: subprocess.CompletedProcess[str], started: float) -> str:
    """What a command that had to fail printed, once it is shown to have failed, and within
    two minutes of `started`: a stack with a rolloutTimeout of 30s gives up long before."""
    took = time.monotonic() - started
    assert result.returncode != 0
    assert took < 120, f"it took {took:.0f}s to fail"
    return result.stdout + result.stderr


def names_a_pull_failure(output: str, workload: str) -> bool:
    """`up`'s failure names the workload and its pods' pull error."""
    return workload in output and ("ErrImagePull" in output or "ImagePullBackOff" in output)


class DeployedStack:
    def __init__(self, project: Project, cluster: LocalCluster, stack: str, namespace: str, host: str):
        self.project, self.cluster, self.namespace = project, cluster, namespace
        self.client = EdgeClient(host, acme_root(cluster.bin_dir), credential=project.write_credential(stack))
        self._admin_password: str | None = None

    def wait_until_routed(self) -> None:
        """`up` returns once the pods are Ready, the Services have endpoints and the
        certificate is issued; the ingress controller routes a Service only once it has
        seen its endpoints (Traefik batches its updates for up to two seconds)."""
        self.cluster.wait(
            lambda: self.client.serves_https("/api/healthz") and self.client.serves_https("/"), 30, "the ingress to route /api and /"
        )

    def redis_cli(self, pod: str, *command: str, check: bool = True) -> str:
        """redis-cli in a Redis pod as the Redis user `admin`, the way docs/operations.md
        tells people to: its password, which no container mounts, read from its Secret
        and piped in (REDISCLI_AUTH from stdin: never in an argument)."""
        script = 'REDISCLI_AUTH=$(cat) exec redis-cli --user admin "$@"'
        return self.cluster.exec(self.namespace, pod, "sh", "-c", script, "redis-cli", *command, check=check,
                                 input=self._redis_admin_password()).stdout

    def _redis_admin_password(self) -> str:
        if self._admin_password is None:
            encoded = self.cluster.kubectl("get", "secret", "redis-admin-password", "-n", self.namespace,
                                           "-o", "jsonpath={.data.passwd}").stdout
            self._admin_password = base64.b64decode(encoded).decode()
        return self._admin_password

    def pods(self, component: str) -> list[Manifest]:
        """The component's pods, those on their way out (terminating) left out."""
        return self.cluster.pods(self.namespace, component)
