"""The cluster's processes: spawned into its cgroup (`journal-iac`, beside the pods the
kubelet puts under it), and found and killed by it, so that `down` gets all of them even
after the `up` that started them was killed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from . import ClusterError
from .layout import CGROUP, PATHS


def cgroup_hierarchies() -> list[Path]:
    """The mount points of the host's cgroup hierarchies (v1 controllers, and v2)."""
    found: list[Path] = []
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


def cgroup_directories(root: Path) -> list[Path]:
    """`root` and every cgroup below it, parents first. The kubelet removes a pod's cgroup
    while this walks (teardown kills it last): a directory gone mid-walk is skipped
    (os.walk ignores what it cannot list), where Path.rglob raised and stopped teardown."""
    return [Path(directory) for directory, _subdirectories, _files in os.walk(root)]


def cgroup_pids() -> set[int]:
    pids: set[int] = set()
    for hierarchy in cgroup_hierarchies():
        for directory in cgroup_directories(hierarchy / CGROUP):
            try:
                pids.update(int(pid) for pid in (directory / "cgroup.procs").read_text().split())
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
        for directory in reversed(cgroup_directories(hierarchy / CGROUP)):
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    # A killed process leaves its cgroup a moment after it dies.
                    time.sleep(0.1)


def peak_memory_bytes() -> int | None:
    """The most memory the cluster's processes and pods used at once, from its cgroup
    (cgroup v1's max_usage, or v2's peak), or None where neither is kept."""
    for hierarchy in cgroup_hierarchies():
        for name in ("memory.max_usage_in_bytes", "memory.peak"):
            path = hierarchy / CGROUP / name
            if path.exists():
                return int(path.read_text())
    return None


def spawn(name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    """Starts a long-running part of the cluster in its cgroup, its output in logs/<name>.log."""
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
