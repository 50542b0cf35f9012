"""Faults done to a running pod from the host, as a hung process or a cut cable would do
them: its Redis stopped with SIGSTOP, or its network namespace cut off. Each is a context
manager that undoes the fault on the way out, also after a failure, and bounds it in time.

The pod's processes are found by their cgroup, whose path ends in the container's ID
(cgroup v1 and v2 alike, as the kubelet lays them out under kubepods).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Iterator

from localcluster import commands
from support.local_cluster import LocalCluster


def container_id(cluster: LocalCluster, namespace: str, pod: str, container: str) -> str:
    statuses = cluster.get("pod", pod, "-n", namespace)["status"]["containerStatuses"]
    (status,) = [s for s in statuses if s["name"] == container]
    return status["containerID"].split("://", 1)[1]


def processes_of(container: str, command: str) -> list[int]:
    """Host pids of the processes named `command` that run in the container with this ID."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != command:
                continue
            if any(line.endswith("/" + container) for line in (entry / "cgroup").read_text().splitlines()):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile
            continue
    return found


def redis_server_pid(cluster: LocalCluster, namespace: str, pod: str) -> int:
    (pid,) = processes_of(container_id(cluster, namespace, pod, "redis"), "redis-server")
    return pid


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The process stopped (SIGSTOP) until the block ends: it holds its sockets and
    answers nothing, as a process stuck in the kernel or a frozen VM would."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


# Everything in and out of the pod but its own loopback: the pod's two containers still
# talk to each other, as they would on a machine whose cable was pulled.
CUT_RULES = (("INPUT", "-i"), ("OUTPUT", "-o"))


@contextlib.contextmanager
def network_cut(pid: int) -> Iterator[None]:
    """Every packet to and from the network namespace of `pid` dropped until the block
    ends (iptables inside that namespace only: the host's own rules are not touched)."""

    def iptables(*arguments: str) -> None:
        commands.run("nsenter", f"--net=/proc/{pid}/ns/net", "iptables", "-w", "5", *arguments, timeout=15)

    added = []
    try:
        for chain, interface in CUT_RULES:
            iptables("-I", chain, "1", "!", interface, "lo", "-j", "DROP")
            added.append((chain, interface))
        yield
    finally:
        for chain, interface in added:
            # The namespace goes with its pod: a pod deleted meanwhile took the rule with it.
            with contextlib.suppress(commands.CommandFailed):
                iptables("-D", chain, "!", interface, "lo", "-j", "DROP")
