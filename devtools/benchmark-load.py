#!/usr/bin/env python3
"""How much traffic the journal serves, through the ingress of the local cluster, measured
with vegeta (toolchain/install-loadgen.sh: requests at a constant rate, each one's latency
and status recorded):

    sudo venv/bin/python devtools/benchmark-load.py        (make bench runs it)

For each shape, dev (one pod per tier) and prod on the one node (tests/support/prod_stack.py:
three API pods, three Redis pods with Sentinels, two file servers), deployed from a copy of
the project:

- writes: the highest rate of POST /api (with the stack's write credential) that holds for
  STEP_SECONDS with every request sent on time, answered 201, and p99 under 100 ms:
  doubled from 25 a second while it holds, then halved between the last rate that held
  and the first that did not, twice (a rate that fails is tried a second time);
- reads: the same for GET /api (the newest entries);
- the path's ceiling: the same for GET /app.js, a static file from the file server
  through the same ingress (the page itself, /, is the same path);
- the store's ceiling: redis-benchmark in the master's pod against its own Redis (SET and
  GET, 50 clients, no pipelining), as a throwaway ACL user with a password of its own (the
  stack's password never leaves its file);

and where the time goes at the highest write and read rates: the CPU each part used per
request (the API pods, Traefik, Redis, vegeta itself, from their cgroups and getrusage),
and how often the API pods' CPU limit throttled them. One host, two cores: vegeta and the
cluster share them, so the figures are the journal's on this machine, not its limit on
a larger one.

The stacks' write budgets are raised for the run (all its traffic comes from one
address). Everything runs on copies of the project; the cluster is started if none runs
and stopped after only if this run started it. Traffic goes to the ingress's cluster
address only, for STEP_SECONDS at a time.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from localcluster import cluster as local_cluster  # noqa: E402
from localcluster import layout  # noqa: E402
from support.deployed_stack import DeployedStack  # noqa: E402
from support.edge_client import acme_root  # noqa: E402
from support.local_cluster import LocalCluster  # noqa: E402
from support.prod_stack import Prod, configure_for_the_local_node  # noqa: E402
from support.project_copy import Project, copy_project  # noqa: E402

STEP_SECONDS = 10
FIRST_RATE = 25
MAX_RATE = 3200
P99_BOUND = 0.100
#: One address sends everything: the API's per-client budget would refuse it.
UNLIMITED_WRITES = ("journal:frontendWritesPerMinute=60000", "journal:frontendWriteBurst=10000")
CGROUPS = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Shape:
    stack: str
    namespace: str
    host: str


SHAPES = (Shape("dev", "journal-dev", "journal.dev.example.com"), Shape("prod", "journal-prod", "journal.example.com"))


@dataclass(frozen=True)
class Step:
    rate: int
    #: Requests vegeta sent: fewer than rate x STEP_SECONDS when it could not keep up.
    sent: int
    success: float
    p50: float
    p99: float
    statuses: dict[str, int]

    @property
    def held(self) -> bool:
        return self.success == 1.0 and self.p99 < P99_BOUND and self.sent >= 0.95 * self.rate * STEP_SECONDS

    def __str__(self) -> str:
        return (f"{self.rate}/s: {self.sent} sent, {self.success:.1%} answered as expected, median {self.p50 * 1000:.1f} ms, "
                f"p99 {self.p99 * 1000:.1f} ms {self.statuses}")


class Vegeta:
    def __init__(self, binary: Path, shape: Shape, root_pem: str, credential: str, work: Path):
        self.binary, self.shape, self.work = binary, shape, work
        self.root_certs = work / "root.pem"
        self.root_certs.write_text(root_pem)
        self.body = work / "body.txt"
        self.body.write_text("an entry of the load benchmark")
        self.credential = credential

    def targets(self, method: str, path: str) -> Path:
        """A targets file, owner-only: it holds the credential, which no argument may."""
        lines = [f"{method} https://{self.shape.host}{path}"]
        if method == "POST":
            lines += [f"Authorization: Bearer {self.credential}", "Content-Type: text/plain; charset=utf-8", f"@{self.body}"]
        target = self.work / f"{method.lower()}-{path.strip('/').replace('/', '-') or 'root'}.txt"
        target.touch(mode=0o600)
        target.write_text("\n".join(lines) + "\n")
        return target

    def step(self, targets: Path, rate: int, expected: int) -> Step:
        attack = subprocess.Popen(
            [str(self.binary), "attack", f"-targets={targets}", f"-rate={rate}/s", f"-duration={STEP_SECONDS}s",
             "-timeout=5s", f"-root-certs={self.root_certs}", f"-connect-to={self.shape.host}:443:{layout.INGRESS_IP}:443"],
            stdout=subprocess.PIPE,
        )
        report = subprocess.run([str(self.binary), "report", "-type=json"], stdin=attack.stdout, capture_output=True,
                                check=True, text=True)
        attack.wait()
        figures = json.loads(report.stdout)
        statuses: dict[str, int] = dict(figures.get("status_codes") or {})
        expected_count = statuses.get(str(expected), 0)
        sent, latencies = figures["requests"], figures["latencies"]
        return Step(rate, sent, expected_count / max(sent, 1), latencies["50th"] / 1e9, latencies["99th"] / 1e9, statuses)


def highest_rate(attempt: Callable[[int], Step]) -> tuple[Optional[Step], list[Step]]:
    """The highest rate that held, and every step tried. A rate that fails is tried once
    more after a pause: one slow stretch of a shared machine is not the journal's limit."""
    steps: list[Step] = []

    def run(rate: int) -> Step:
        step = attempt(rate)
        steps.append(step)
        if not step.held:
            time.sleep(5)
            step = attempt(rate)
            steps.append(step)
        return step

    held: Optional[Step] = None
    failed: Optional[int] = None
    rate = FIRST_RATE
    while rate <= MAX_RATE:
        step = run(rate)
        if not step.held:
            failed = rate
            break
        held, rate = step, rate * 2
        time.sleep(2)
    for _ in range(2):
        if held is None or failed is None:
            break
        rate = (held.rate + failed) // 2
        time.sleep(2)
        step = run(rate)
        if step.held:
            held = step
        else:
            failed = rate
    return held, steps


class CpuMeter:
    """CPU seconds used by the pods of a namespace (by label), from the node's cgroups."""

    def __init__(self, cluster: LocalCluster):
        self.cluster = cluster

    def pod_dirs(self, namespace: str, selector: str) -> list[Path]:
        pods = self.cluster.get("pods", "-n", namespace, "-l", selector)["items"]
        dirs = []
        for pod in pods:
            uid = pod["metadata"]["uid"]
            found = [*CGROUPS.glob(f"cpuacct/{layout.CGROUP}/kubepods/pod{uid}"),
                     *CGROUPS.glob(f"cpuacct/{layout.CGROUP}/kubepods/*/pod{uid}")]
            dirs += found
        return dirs

    @staticmethod
    def usage(dirs: list[Path]) -> float:
        return sum(int((d / "cpuacct.usage").read_text()) for d in dirs) / 1e9

    @staticmethod
    def throttled(dirs: list[Path]) -> int:
        """Periods in which a pod's CPU limit held it back (the cpu controller's count)."""
        total = 0
        for d in dirs:
            stat = CGROUPS / "cpu" / d.relative_to(CGROUPS / "cpuacct") / "cpu.stat"
            total += int(dict(line.split() for line in stat.read_text().splitlines()).get("nr_throttled", "0"))
        return total


def where_the_time_goes(meter: CpuMeter, shape: Shape, vegeta: Vegeta, targets: Path, rate: int, expected: int) -> str:
    parts = {
        "API": (shape.namespace, "app.kubernetes.io/component=frontend"),
        "Redis": (shape.namespace, "app.kubernetes.io/component=redis"),
        "Traefik": ("ingress-nginx", "app.kubernetes.io/name=traefik"),
    }
    dirs = {name: meter.pod_dirs(*where) for name, where in parts.items()}
    before = {name: meter.usage(d) for name, d in dirs.items()}
    throttled_before = meter.throttled(dirs["API"])
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    step = vegeta.step(targets, rate, expected)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = {name: meter.usage(d) - before[name] for name, d in dirs.items()}
    used["vegeta"] = (children_after.ru_utime + children_after.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    requests = sum(step.statuses.values()) or 1
    per_request = ", ".join(f"{name} {seconds / requests * 1000:.2f} ms" for name, seconds in used.items())
    cores = ", ".join(f"{name} {seconds / STEP_SECONDS:.2f}" for name, seconds in used.items())
    return (f"      CPU per request: {per_request}\n      cores busy: {cores} (of 2); the API pods' CPU limit "
            f"throttled them {meter.throttled(dirs['API']) - throttled_before} times in {STEP_SECONDS} s")


def store_ceiling(stack: DeployedStack, master: str) -> str:
    """SET and GET requests a second, redis-benchmark in the master's pod, as a throwaway
    user that may run only those on the benchmark's keys."""
    password = secrets.token_hex(16)
    user = f"load-benchmark-{secrets.token_hex(4)}"
    stack.redis_cli(master, "ACL", "SETUSER", user, "on", f">{password}", "~key:*", "+set", "+get", "+ping", "+config|get")
    try:
        # The throwaway password is an argument here: it opens nothing once the user is deleted.
        out = stack.cluster.exec(stack.namespace, master, "redis-benchmark", "--user", user, "-a", password,
                                 "-t", "set,get", "-n", "100000", "-c", "50", "-q", "--csv").stdout
    finally:
        stack.redis_cli(master, "ACL", "DELUSER", user)
    rows = [line.replace('"', "").split(",") for line in out.splitlines() if line.startswith('"SET"') or line.startswith('"GET"')]
    return ", ".join(f"{name} {float(rps):,.0f}/s" for name, rps, *_ in rows)


def master_of(stack: DeployedStack) -> str:
    for pod in stack.pods("redis"):
        name = pod["metadata"]["name"]
        if "role:master" in stack.redis_cli(name, "INFO", "replication"):
            return name
    raise RuntimeError("no Redis master")


def measure(shape: Shape, project: Project, cluster: LocalCluster, vegeta_bin: Path, work: Path) -> None:
    config = [arg for setting in UNLIMITED_WRITES for arg in ("--config", setting)]
    project.pulumi(shape.stack, "up", "--yes", "--skip-preview", *config)
    stack = Prod(project, cluster) if shape.stack == "prod" else DeployedStack(project, cluster, shape.stack, shape.namespace, shape.host)
    stack.wait_until_routed()
    vegeta = Vegeta(vegeta_bin, shape, acme_root(cluster.bin_dir), project.write_credential(shape.stack), work)
    meter = CpuMeter(cluster)
    print(f"{shape.stack} ({', '.join(f'{c} {len(stack.pods(c))}' for c in ('frontend', 'redis', 'fileserver'))} pods):")
    runs = {"writes (POST /api)": ("POST", "/api", 201), "reads (GET /api)": ("GET", "/api", 200),
            "path's ceiling (GET /app.js)": ("GET", "/app.js", 200)}
    for label, (method, path, expected) in runs.items():
        targets = vegeta.targets(method, path)
        held, steps = highest_rate(lambda rate: vegeta.step(targets, rate, expected))
        print(f"  {label}: {held.rate if held else 'under ' + str(FIRST_RATE)}/s held")
        for step in steps:
            print(f"      {step}")
        if held and path == "/api":
            time.sleep(2)
            print(where_the_time_goes(meter, shape, vegeta, targets, held.rate, expected))
    print(f"  store's ceiling (redis-benchmark in the master's pod): {store_ceiling(stack, master_of(stack))}")


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("benchmark-load.py: run as root (the local cluster needs it)")
    vegeta_bin = Path(subprocess.run([str(ROOT / "toolchain/install-loadgen.sh")], capture_output=True, text=True,
                                     check=True).stdout.strip()) / "vegeta"
    started = not local_cluster.is_running()
    if started:
        local_cluster.up()
    cluster = LocalCluster(local_cluster.tools())
    try:
        for shape in SHAPES:
            with tempfile.TemporaryDirectory() as work:
                (Path(work) / "project").mkdir()
                project = copy_project(Path(work) / "project", layout.PATHS.admin_kubeconfig)
                if shape.stack == "prod":
                    configure_for_the_local_node(project)
                try:
                    measure(shape, project, cluster, vegeta_bin, Path(work))
                finally:
                    project.pulumi(shape.stack, "up", "--yes", "--skip-preview", "--config", "journal:protectData=false", check=False)
                    project.pulumi(shape.stack, "destroy", "--yes", "--skip-preview", check=False)
    finally:
        cluster.cleanup()
        if started:
            local_cluster.down()


if __name__ == "__main__":
    main()
