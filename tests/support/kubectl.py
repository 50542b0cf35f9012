"""kubectl as the tests drive it, for the clusters they run on (tests/support/local_cluster.py's
node, tests/support/kwok_fleet.py's fleet), and what they read in the objects it returns."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Optional

from localcluster import commands

# A Kubernetes object (or a List of them) as kubectl prints it or a test writes it.
Manifest = dict[str, Any]


def has_condition(obj: Manifest, condition: str) -> bool:
    """Whether the object reports `condition` (Ready, Established, Accepted...) as True.
    An object no controller has looked at yet has no status at all."""
    return any(c["type"] == condition and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions") or [])


class KubectlClient:
    """kubectl from `bin_dir` against `kubeconfig`, for a class that has both."""

    bin_dir: Path
    kubeconfig: Path

    def kubectl(self, *args: str, input: Optional[str] = None, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = commands.run(str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args, input=input, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def get(self, *args: str) -> Manifest:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def pods(self, namespace: str, component: str) -> list[Manifest]:
        """The component's pods that are not on their way out (terminating)."""
        pods = self.get("pods", "-n", namespace, "-l", f"app.kubernetes.io/component={component}")["items"]
        return [pod for pod in pods if "deletionTimestamp" not in pod["metadata"]]
