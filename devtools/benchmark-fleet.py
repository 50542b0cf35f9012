#!/usr/bin/env python3
"""How `pulumi up`, a no-op `up` and `destroy` grow with the number of stacks on one
cluster and with the replica counts of one stack, on a kwok fleet (tests/support/kwok_fleet.py:
the real control plane, simulated kubelets):

    venv/bin/python devtools/benchmark-fleet.py        (make bench runs it)

- instances: 1, 5 and 20 copies of the dev stack (each its own stack and namespace) on
  three nodes, deployed, updated with no change and destroyed one after the other: the
  total and the time per stack, which stays flat when the cost grows linearly;
- replicas: Pulumi.prod.yaml at 1x, 3x and 10x its replica counts (frontend 3, file
  server 2, Redis 3, which stops at its maximum of 9) on six nodes.

Figures, not a pass/fail. Everything runs on copies of the project; nothing else is
touched.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from support.kube_apiserver import install  # noqa: E402
from support.kwok_fleet import Fleet, add_team_stack  # noqa: E402
from support.project_copy import Project, copy_project  # noqa: E402

from components.settings import MAX_REDIS_REPLICAS  # noqa: E402

INSTANCES = (1, 5, 20)
FACTORS = (1, 3, 10)
PROD_REPLICAS = {"frontendReplicas": 3, "fileserverReplicas": 2, "redisReplicas": 3}


def timed(action) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def row(label: str, up: float, noop: float, destroy: float, per: int = 1) -> None:
    print(f"{label:<28} {up:7.1f} s {noop:7.1f} s {destroy:7.1f} s    per stack: {up / per:5.1f} {noop / per:5.1f} {destroy / per:5.1f} s")


def instances(bin_dir: Path, count: int) -> None:
    with Fleet(bin_dir) as fleet, tempfile.TemporaryDirectory() as work:
        fleet.add_nodes(3)
        project = copy_project(Path(work), fleet.kubeconfig)
        stacks = [f"team-{number}" for number in range(1, count + 1)]
        for stack in stacks:
            add_team_stack(project, stack)

        def each(*args: str):
            return lambda: [project.pulumi(stack, *args) for stack in stacks]

        up = timed(each("up", "--yes", "--skip-preview"))
        noop = timed(each("up", "--yes", "--skip-preview"))
        destroy = timed(each("destroy", "--yes", "--skip-preview"))
        row(f"{count:>2} dev stacks", up, noop, destroy, per=count)


def replicas(bin_dir: Path, factor: int) -> None:
    counts = {key: count * factor for key, count in PROD_REPLICAS.items()}
    counts["redisReplicas"] = min(counts["redisReplicas"], MAX_REDIS_REPLICAS)
    with Fleet(bin_dir) as fleet, tempfile.TemporaryDirectory() as work:
        fleet.add_nodes(6)
        project: Project = copy_project(Path(work), fleet.kubeconfig)
        config = [arg for key, count in counts.items() for arg in ("--config", f"journal:{key}={count}")]
        config += ["--config", "journal:protectData=false"]
        up = timed(lambda: project.pulumi("prod", "up", "--yes", "--skip-preview", *config))
        noop = timed(lambda: project.pulumi("prod", "up", "--yes", "--skip-preview"))
        destroy = timed(lambda: project.pulumi("prod", "destroy", "--yes", "--skip-preview"))
        pods = sum(counts.values())
        row(f"prod x{factor:<2} ({pods} pods)", up, noop, destroy)


def main() -> None:
    bin_dir = install()
    print(f"{'on a kwok fleet':<28} {'up':>9} {'no-op up':>9} {'destroy':>9}")
    for count in INSTANCES:
        instances(bin_dir, count)
    for factor in FACTORS:
        replicas(bin_dir, factor)


if __name__ == "__main__":
    main()
