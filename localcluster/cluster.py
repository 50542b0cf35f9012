"""A one-node Kubernetes on this machine, for running the journal's stacks for real.

    up      etcd, the API server (Pod Security admission on), the controller manager and
            the scheduler; containerd (runc) with the images built here; the kubelet,
            kube-proxy (iptables) and kube-router (NetworkPolicy); then CoreDNS, a default
            StorageClass, Traefik as the `nginx` IngressClass in `ingress-nginx`, and the
            cert-manager CRDs. Returns once all of it is usable.
    down    stops everything and puts the host back as it was before `up`.
    status  whether a cluster is running.
    acme-root  writes the root its ACME server signs certificates with to a file a
            browser or curl on the host can trust, and returns the file's path.

Everything the cluster owns lives under one directory (JOURNAL_IAC_CLUSTER_DIR,
/var/lib/journal-iac/cluster by default), its processes in one cgroup (`journal-iac`),
so that `down` finds all of it even after the `up` that made it was killed. What it
changes elsewhere on the host is recorded before the first change (localcluster/host.py).

    layout.py        its names, addresses and files
    startup.py       the steps of `up`, in order
    config_files.py  the files its components read
    processes.py     its processes and their cgroup
"""

from __future__ import annotations

import fcntl
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from . import ClusterError, commands, images
from .host import HostState
from .layout import ACME_ROOT_URL, NODE_NAME, PATHS, PROJECT_DIR, SERVER, STATE_DIR
from .processes import cgroup_pids, kill_cluster_processes, peak_memory_bytes, remove_cgroups
from .startup import STEPS, Startup, admin_api

LOCK_FILE = Path("/run/lock/journal-iac-cluster.lock")
LAST_LOGS = STATE_DIR.parent / "cluster-logs"
# Beside the cluster's directory, which only root may enter: the user's browser reads it.
ACME_ROOT_FILE = STATE_DIR.parent / "acme-root.pem"


def log(message: str) -> None:
    print(f"cluster: {message}", file=sys.stderr, flush=True)


def tools(installer: str = "install-kubernetes.sh") -> Path:
    """The bin dir `toolchain/<installer>` prints, once it has built what is missing."""
    result = subprocess.run([str(PROJECT_DIR / "toolchain" / installer)], stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise ClusterError(f"toolchain/{installer} failed (its output is above)")
    return Path(result.stdout.strip())


@contextmanager
def locked() -> Iterator[None]:
    """One `up` or `down` at a time on this machine."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ClusterError(f"another `up` or `down` is in progress (lock {LOCK_FILE})") from None
        yield


def is_running() -> bool:
    return PATHS.ready.exists() and admin_api().healthy()


def require_root() -> None:
    if os.geteuid() != 0:
        raise ClusterError("the local cluster needs root (it runs a kubelet, containerd and iptables)")


def up() -> float:
    require_root()
    bin_dir = tools()
    archives = [archive for _, archive in images.build_all(bin_dir)]
    started = time.monotonic()
    with locked():
        if PATHS.root.exists():
            if is_running():
                raise ClusterError(f"a cluster is already running; its kubeconfig is {PATHS.admin_kubeconfig}")
            log("clearing what an earlier cluster left behind ...")
            teardown()
        PATHS.root.mkdir(parents=True, mode=0o700)
        # Before anything on the host changes: what `down` puts back.
        HostState.read().save(PATHS.host_state)
        try:
            startup = Startup(bin_dir, archives)
            for step in STEPS:
                log(f"{step.name} ...")
                step.run(startup)
            PATHS.ready.write_text(f"{time.time()}\n")
        except BaseException:
            log("up failed; stopping what it started and restoring the host")
            keep_logs()
            teardown()
            raise
    return time.monotonic() - started


def keep_logs() -> None:
    """The logs outlive the cluster, for the next look at what went wrong."""
    if PATHS.logs.is_dir():
        shutil.rmtree(LAST_LOGS, ignore_errors=True)
        shutil.copytree(PATHS.logs, LAST_LOGS)


def teardown() -> None:
    kill_cluster_processes()
    if PATHS.host_state.exists():
        try:
            HostState.load(PATHS.host_state).restore(log)
        except RuntimeError as error:
            # The record stays, so that the next `down` or `up` tries again.
            raise ClusterError(f"could not restore the host ({error}); {PATHS.host_state} is kept for the next try") from None
    remove_cgroups()
    ACME_ROOT_FILE.unlink(missing_ok=True)
    if PATHS.root.exists():
        commands.run("rm", "-rf", "--one-file-system", str(PATHS.root), check=False)
    if PATHS.root.exists():
        raise ClusterError(f"{PATHS.root} could not be removed")


def down() -> tuple[float, int | None]:
    """Stops the cluster; returns the seconds it took and the cluster's peak memory."""
    require_root()
    started = time.monotonic()
    with locked():
        if not PATHS.root.exists() and not cgroup_pids():
            return 0.0, None
        peak = peak_memory_bytes()
        keep_logs()
        teardown()
    return time.monotonic() - started, peak


def acme_root() -> Path:
    """Pebble makes up a new root each time it starts and serves it on its management
    port, over HTTPS under Pebble's published test CA: fetched anew on every call."""
    if not is_running():
        raise ClusterError("no cluster is running")
    context = ssl.create_default_context(cafile=str(tools() / "pebble-test-ca" / "ca.crt"))
    try:
        with urllib.request.urlopen(ACME_ROOT_URL, context=context, timeout=10) as response:
            root = response.read()
    except OSError as error:
        raise ClusterError(f"could not read the ACME server's root at {ACME_ROOT_URL}: {error}") from None
    staged = ACME_ROOT_FILE.with_suffix(".partial")
    staged.write_bytes(root)
    staged.chmod(0o644)
    os.replace(staged, ACME_ROOT_FILE)
    return ACME_ROOT_FILE


def status() -> str:
    if not PATHS.root.exists():
        return "not running"
    if is_running():
        return f"running: node {NODE_NAME} at {SERVER}; kubeconfig {PATHS.admin_kubeconfig}"
    return "not running (an earlier cluster left state behind; the next up clears it)"
