"""The journal through the events of an ordinary week, under steady traffic: prod's shape
(support/prod_stack.py), with writes (25 a second), API reads and page loads (10 a second
each) through the ingress, every request recorded (support/journal_traffic.py), while the
frontend rolls out a config change and a new release, the file server rolls out a new
release, a frontend pod and a Redis replica are deleted, and the node is drained of the
journal's pods.

None of these is a fault: after each, not one request of the stream may have failed, and
every acknowledged entry is read back by its id. Each test prints its figures on a line
starting with "routine:".

What makes it so, and which test goes red without it: a stopping API or file server pod
keeps serving for the seconds the ingress controller takes to forget it (preStop), a new
pod takes traffic only once it answers (readiness), a rollout starts a new pod before it
stops an old one (maxUnavailable 0), a stopping API finishes what it has in flight, a
drain evicts one pod of a tier at a time (PodDisruptionBudget), and a stopping Redis
master hands its role over first (test_redis_failover.py).
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

import pytest

from localcluster.images import FILESERVER_IMAGES, JOURNAL_API_NEXT_IMAGE
from localcluster.layout import NODE_NAME
from support.journal_traffic import JournalTraffic, TrafficReport, through_edge
from support.kubectl import has_condition
from support.prod_stack import NAMESPACE, REDIS_PODS, Prod

pytestmark = pytest.mark.cluster

#: Traffic before the event, and after it is over (every pod Ready, none stopping): a
#: request sent just before a pod went away is answered, or fails, by then.
BEFORE_SECONDS = 3
AFTER_SECONDS = 5
#: Writes in flight at most: a write takes about 50 ms here, so 16 hold 25 a second with
#: room for a slow one.
WRITERS = 16


def whole(prod: Prod) -> bool:
    """Every workload of the stack at its replica count with every pod Ready and none
    stopping, and the Redis tier settled (one master, followed and named by all)."""
    workloads = [*prod.cluster.get("deployments", "-n", NAMESPACE)["items"],
                 *prod.cluster.get("statefulsets", "-n", NAMESPACE)["items"]]
    for workload in workloads:
        status, wanted = workload.get("status", {}), workload["spec"]["replicas"]
        if (status.get("readyReplicas"), status.get("updatedReplicas")) != (wanted, wanted):
            return False
    pods = prod.cluster.get("pods", "-n", NAMESPACE)["items"]
    if any("deletionTimestamp" in pod["metadata"] or not has_condition(pod, "Ready") for pod in pods):
        return False
    return prod.settled_master() is not None


def wait_until_whole(prod: Prod) -> None:
    prod.cluster.wait(lambda: whole(prod), 240, "every pod of the stack Ready, none stopping, one Redis master")


@pytest.fixture
def settled(prod: Prod) -> Iterator[Prod]:
    wait_until_whole(prod)
    yield prod
    wait_until_whole(prod)


def steadily_through(prod: Prod, label: str, event: Callable[[], None]) -> TrafficReport:
    """Traffic, then `event` (which returns once it has been set going, or is over),
    then traffic until the stack is whole again and AFTER_SECONDS more; asserts that not
    one request failed and that every acknowledged entry reads back."""
    with JournalTraffic(through_edge(prod.client), max_seconds=300, writers=WRITERS, page_rate=10) as traffic:
        time.sleep(BEFORE_SECONDS)
        traffic.mark(label)
        event()
        wait_until_whole(prod)
        time.sleep(AFTER_SECONDS)
    report = traffic.report()
    print(f"\nroutine: {label}: {report.summary()}")
    failures = {"writes": report.write_failures, "reads": report.read_failures, "pages": report.page_failures}
    assert failures == {"writes": {}, "reads": {}, "pages": {}}, report.summary()
    assert report.pages_sent > 0 and report.reads_sent > 0 and report.writes_acknowledged > 0, report.summary()
    verification = traffic.verify(patience=10)
    assert verification.ok, verification.summary()
    return report


def up(prod: Prod, *settings: str) -> Callable[[], None]:
    """`pulumi up` of prod with `settings` ("key=value") changed: a rollout."""
    config = [arg for setting in settings for arg in ("--config", f"journal:{setting}")]
    return lambda: prod.project.pulumi("prod", "up", "--yes", "--skip-preview", *config)


def delete(prod: Prod, pod: str) -> Callable[[], None]:
    """The pod deleted as `kubectl delete pod` does, with its grace period (preStop first)."""
    return lambda: prod.cluster.kubectl("delete", "pod", pod, "-n", NAMESPACE, "--wait=false")


def images(prod: Prod, component: str) -> set[str]:
    return {container["image"] for pod in prod.pods(component) for container in pod["spec"]["containers"]}


def test_a_frontend_config_change_rolls_out_without_a_failed_request(settled):
    before = {pod["metadata"]["uid"] for pod in settled.pods("frontend")}
    steadily_through(settled, "frontend rollout (frontendJournalEntries changed)", up(settled, "frontendJournalEntries=12"))
    assert not before & {pod["metadata"]["uid"] for pod in settled.pods("frontend")}


def test_a_frontend_release_rolls_out_without_a_failed_request(settled):
    steadily_through(settled, "frontend release (frontendImage changed)", up(settled, f"frontendImage={JOURNAL_API_NEXT_IMAGE}"))
    assert images(settled, "frontend") == {JOURNAL_API_NEXT_IMAGE}


def test_a_file_server_release_rolls_out_without_a_failed_page_load(settled):
    # The same local build under its other name: a new reference rolls the pods.
    new_image = next(image for image in FILESERVER_IMAGES if image not in images(settled, "fileserver"))
    steadily_through(settled, "file server release (fileserverImage changed)", up(settled, f"fileserverImage={new_image}"))
    assert images(settled, "fileserver") == {new_image}


def test_a_deleted_frontend_pod_fails_no_request(settled):
    pod = settled.pods("frontend")[0]["metadata"]["name"]
    steadily_through(settled, f"frontend pod {pod} deleted", delete(settled, pod))


def test_a_deleted_redis_replica_fails_no_request(settled):
    master = settled.wait_until_settled()
    replica = next(pod for pod in REDIS_PODS if pod != master)
    steadily_through(settled, f"Redis replica {replica} deleted", delete(settled, replica))


def test_a_drain_evicts_one_pod_of_each_tier_at_a_time_and_fails_no_request(settled):
    # On one node the evicted pods' replacements have nowhere to go: the drain evicts one
    # pod of each tier (their disruption budgets allow one), is then refused every other
    # eviction until its timeout, and the journal serves meanwhile from what is left.
    # The cluster's own add-ons (CoreDNS, Traefik) stay: only the journal's pods are drained.
    drained: dict[str, str] = {}

    def drain() -> None:
        result = settled.cluster.kubectl(
            "drain", NODE_NAME, "--pod-selector=app.kubernetes.io/part-of=journal", "--delete-emptydir-data",
            "--timeout=40s", check=False,
        )
        drained["output"] = result.stdout + result.stderr
        settled.cluster.kubectl("uncordon", NODE_NAME)

    try:
        steadily_through(settled, "the journal's pods drained from the node", drain)
    finally:
        settled.cluster.kubectl("uncordon", NODE_NAME, check=False)
    assert "violate the pod's disruption budget" in drained["output"], drained["output"]
    evicted = [line for line in drained["output"].splitlines() if line.endswith(" evicted")]
    assert {line.split("/")[1].split("-")[0] for line in evicted} == {"frontend", "fileserver", "redis"}, drained["output"]
