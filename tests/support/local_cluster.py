"""The one-node cluster of scripts/cluster.sh, for tests: started when a test needs it
and no cluster runs, stopped at the end of the session if this session started it.

    def test_something(cluster):
        cluster.kubectl("get", "nodes")
        cluster.apply(manifest)
        cluster.exec(namespace, pod, "python3", "-c", "...")

Namespaces made with `cluster.namespace()` are deleted when the test ends.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path
from typing import Callable, TypeVar

import pytest

from localcluster import ClusterError, images, layout, polling
from localcluster import cluster as local_cluster
from localcluster.commands import CommandFailed
from support.kubectl import KubectlClient, Manifest

T = TypeVar("T")


class LocalCluster(KubectlClient):
    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.kubeconfig = layout.PATHS.admin_kubeconfig
        self.created_namespaces: list[str] = []

    def apply(self, *manifests: Manifest, namespace: str | None = None) -> None:
        document = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)})
        extra = ["-n", namespace] if namespace else []
        self.kubectl("apply", "-f", "-", *extra, input=document)

    def namespace(self, prefix: str, enforce: str = "restricted") -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": name,
                    "labels": {
                        "pod-security.kubernetes.io/enforce": enforce,
                        "pod-security.kubernetes.io/enforce-version": "v1.34",
                    },
                },
            }
        )
        self.created_namespaces.append(name)
        # Pods are refused until the namespace's default ServiceAccount exists.
        self.wait(lambda: self.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0, 30, f"{name}'s ServiceAccount")
        return name

    def wait(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        """What `check` returns once it is truthy."""
        # Each check is a kubectl or pulumi call: twice a second is often enough.
        return polling.wait_for(what, check, timeout, interval=0.5)

    def wait_ready(self, namespace: str, pod: str, timeout: float = 90) -> None:
        result = self.kubectl("wait", "--for=condition=Ready", f"pod/{pod}", "-n", namespace, f"--timeout={timeout:.0f}s", check=False, timeout=timeout + 10)
        if result.returncode != 0:
            described = self.kubectl("describe", "pod", pod, "-n", namespace, check=False).stdout
            raise AssertionError(f"pod {namespace}/{pod} not Ready in {timeout:.0f}s:\n{result.stderr}\n{described[-3000:]}")

    def exec(self, namespace: str, pod: str, *command: str, check: bool = True, timeout: float = 60,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        """`command` in the pod's default container; `input`, if given, is its stdin."""
        stdin = ["-i"] if input is not None else []
        return self.kubectl("exec", *stdin, "-n", namespace, pod, "--", *command, check=check, timeout=timeout, input=input)

    def cleanup(self) -> None:
        for name in self.created_namespaces:
            self.kubectl("delete", "namespace", name, "--wait=false", check=False)
        self.created_namespaces.clear()


def hardened_pod(name: str, image: str, command: list[str], labels: dict[str, str] | None = None, user: int = 10001) -> Manifest:
    """A pod that passes Pod Security "restricted", from an image built here."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": user,
                "runAsGroup": user,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": command,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                }
            ],
        },
    }


# The journal API image carries python3: tests use it as the client inside the cluster.
CLIENT_IMAGE = images.JOURNAL_API_IMAGE
SLEEPER = ["python3", "-c", "import signal, time; signal.signal(signal.SIGTERM, lambda *_: exit(0)); time.sleep(3600)"]


def cluster_bin_dir() -> Path:
    try:
        return local_cluster.tools()
    except ClusterError as error:
        pytest.fail(str(error), pytrace=False)


def running_cluster(session: dict[str, str | None]) -> LocalCluster:
    """The cluster, started first when none runs (an earlier test may have stopped it)."""
    bin_dir = cluster_bin_dir()
    if not local_cluster.is_running():
        try:
            local_cluster.up()
        except (ClusterError, CommandFailed) as error:
            pytest.fail(f"scripts/cluster.sh up failed: {error}", pytrace=False)
        session["started"] = layout.PATHS.ready.read_text()
    return LocalCluster(bin_dir)
