"""Production at its real shape, on a fleet of kwok nodes (tests/support/kwok_fleet.py): the real
scheduler, eviction API, disruption, node lifecycle and workload controllers; only the
kubelets and the edge's controllers are simulated.

Pulumi.prod.yaml, unchanged, deployed with scripts/pulumi.sh on 3 and on 6 nodes (its
context `journal-prod` is one of the fleet's kubeconfig): every tier spread so that losing
any one node leaves it serving; every node drained in turn without a tier ever going
below its disruption budget; a rollout of new images never below the desired ready
capacity, the StatefulSet one pod at a time; a node lost, and what the operator does
about the Redis pod left on it. Then many stacks side by side on one fleet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import pytest

from support.background_watch import BackgroundWatch
from support.kube_apiserver import install
from support.kubectl import has_condition
from support.kwok_fleet import Fleet
from support.project_copy import Project, copy_project

pytestmark = pytest.mark.fleet

NAMESPACE = "journal-prod"
TIERS = {"frontend": 3, "redis": 3, "fileserver": 2}
# The rollout: a new release of each image (kwok pulls nothing, so any pinned name runs).
NEW_IMAGES = {
    "journal:frontendImage": "registry.example.com/journal/api:v1.0.2-5c0a9e2d",
    "journal:fileserverImage": "registry.example.com/journal/static:v1.0.2-5c0a9e2d",
    "journal:redisImage": "docker.io/library/redis:7.0.15-bookworm-r1",
}


@dataclass
class Prod:
    fleet: Fleet
    project: Project
    nodes: int

    def up(self, *args: str, **kwargs):
        return self.project.pulumi("prod", "up", "--yes", "--skip-preview", *args, **kwargs)

    def placement(self) -> dict[str, list[str]]:
        """Tier -> the nodes of its live pods."""
        return {tier: [pod["spec"].get("nodeName", "") for pod in self.fleet.pods(NAMESPACE, tier)] for tier in TIERS}

    def ready_counts(self) -> dict[str, int]:
        return {tier: sum(1 for pod in self.fleet.pods(NAMESPACE, tier) if has_condition(pod, "Ready")) for tier in TIERS}

    def settled(self) -> bool:
        """Every tier at its replica count, every pod Ready, none on its way out."""
        pods = self.fleet.get("pods", "-n", NAMESPACE)["items"]
        return all(has_condition(pod, "Ready") and "deletionTimestamp" not in pod["metadata"] for pod in pods) and self.ready_counts() == TIERS


@pytest.fixture(scope="module", params=[3, 6], ids=["3-nodes", "6-nodes"])
def prod(request, tmp_path_factory) -> Iterator[Prod]:
    with Fleet(install()) as fleet:
        fleet.add_nodes(request.param)
        project = copy_project(tmp_path_factory.mktemp(f"fleet-{request.param}"), fleet.kubeconfig)
        deployed = Prod(fleet, project, request.param)
        deployed.up()
        yield deployed


class Watch(BackgroundWatch):
    """Samples the ready pods of every tier in the background, keeping the lowest counts,
    and the most Redis pods seen not Ready at once."""

    def __init__(self, prod: Prod):
        super().__init__(interval=0.1)
        self.prod = prod
        self.lowest = dict(TIERS)
        self.most_redis_unready = 0

    def sample(self) -> None:
        counts = self.prod.ready_counts()
        for tier, count in counts.items():
            self.lowest[tier] = min(self.lowest[tier], count)
        self.most_redis_unready = max(self.most_redis_unready, TIERS["redis"] - counts["redis"])


def test_up_awaits_every_resource_and_every_pod_is_ready(prod):
    assert prod.settled()
    outputs = prod.project.pulumi("prod", "stack", "output", "url").stdout.strip()
    assert outputs == "https://journal.example.com/"
    claims = prod.fleet.get("pvc", "-n", NAMESPACE)["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-redis-0", "data-redis-1", "data-redis-2"]
    assert all(c["status"]["phase"] == "Bound" for c in claims)


def tiers_left_without_pods(prod: Prod) -> list[str]:
    """For each node, the tiers that would have no pod left if it were lost."""
    placement = prod.placement()
    return [
        f"losing {lost} leaves no {tier}"
        for lost in prod.fleet.nodes
        for tier, nodes in placement.items()
        if not [node for node in nodes if node != lost]
    ]


def test_every_tier_is_spread_so_that_it_survives_the_loss_of_any_one_node(prod):
    for tier, nodes in prod.placement().items():
        # No two pods of a tier on one node while another node has none of them.
        assert len(set(nodes)) == len(nodes), f"{tier}: {nodes}"
    assert tiers_left_without_pods(prod) == []


def test_draining_each_node_in_turn_keeps_every_tier_within_its_budget(prod):
    with Watch(prod) as watch:
        for node in prod.fleet.nodes:
            prod.fleet.kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s", timeout=150)
            assert not [pod for pod in prod.fleet.get("pods", "-n", NAMESPACE, "--field-selector", f"spec.nodeName={node}")["items"]]
            prod.fleet.kubectl("uncordon", node)
            prod.fleet.wait(prod.settled, 60, f"the stack to settle after draining {node}")
    # maxUnavailable 1 per tier: never more than one pod of a tier down at once.
    assert watch.samples > 10
    assert all(watch.lowest[tier] >= count - 1 for tier, count in TIERS.items()), watch.lowest
    assert prod.settled()
    # Nothing moves pods back onto an uncordoned node, but the spread rule kept each
    # tier on more than one node throughout.
    assert tiers_left_without_pods(prod) == []


def test_a_new_release_rolls_every_tier_without_losing_ready_capacity(prod):
    config = [arg for key, image in NEW_IMAGES.items() for arg in ("--config", f"{key}={image}")]
    with Watch(prod) as watch:
        prod.up(*config)
        returned = prod.placement()
        images_when_up_returned = {
            tier: {pod["spec"]["containers"][0]["image"] for pod in prod.fleet.pods(NAMESPACE, tier)} for tier in TIERS
        }
    assert watch.lowest["frontend"] >= TIERS["frontend"] and watch.lowest["fileserver"] >= TIERS["fileserver"], watch.lowest
    assert watch.most_redis_unready <= 1, watch.most_redis_unready
    expected = {"frontend": NEW_IMAGES["journal:frontendImage"], "fileserver": NEW_IMAGES["journal:fileserverImage"], "redis": NEW_IMAGES["journal:redisImage"]}
    assert images_when_up_returned == {tier: {image} for tier, image in expected.items()}
    assert all(len(nodes) == TIERS[tier] for tier, nodes in returned.items())
    prod.fleet.wait(prod.settled, 30, "the stack to settle")


def test_a_lost_node_is_replaced_for_the_stateless_tiers_and_by_the_operator_for_redis(prod):
    """A node stops heartbeating. The Deployments' pods on it are replaced elsewhere once
    it is unreachable; a StatefulSet pod is not (its name must stay unique, and the node
    might still run it): the operator deletes the Node, and the pod comes back elsewhere
    with its claim."""
    (redis_replica,) = [p for p in prod.fleet.pods(NAMESPACE, "redis") if p["metadata"]["name"] == "redis-1"]
    lost = redis_replica["spec"]["nodeName"]
    prod.fleet.lose_node(lost)
    prod.fleet.wait(lambda: not prod.fleet.node_ready(lost), 60, f"{lost} to be NotReady")

    def stateless_replaced() -> bool:
        placement = prod.placement()
        return all(
            len(placement[tier]) == TIERS[tier] and lost not in placement[tier] for tier in ("frontend", "fileserver")
        ) and all(prod.ready_counts()[tier] == TIERS[tier] for tier in ("frontend", "fileserver"))

    prod.fleet.wait(stateless_replaced, 90, "the frontend and file server pods to be replaced off the lost node")
    time.sleep(10)
    pod = prod.fleet.get("pod", "redis-1", "-n", NAMESPACE)
    assert pod["spec"]["nodeName"] == lost and "deletionTimestamp" in pod["metadata"], "redis-1 should wait for the operator"

    # The operator's procedure (README, Operating it): make sure the machine is gone, then
    # delete its Node.
    prod.fleet.kubectl("delete", "node", lost)
    prod.fleet.nodes.remove(lost)

    def redis_back() -> bool:
        pods = {p["metadata"]["name"]: p for p in prod.fleet.pods(NAMESPACE, "redis")}
        return "redis-1" in pods and pods["redis-1"]["spec"].get("nodeName") not in (None, lost) and has_condition(pods["redis-1"], "Ready")

    prod.fleet.wait(redis_back, 120, "redis-1 to come back on another node")
    claim = prod.fleet.get("pod", "redis-1", "-n", NAMESPACE)["spec"]["volumes"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-redis-1"}} in claim
    prod.fleet.wait(prod.settled, 60, "the stack to settle")
    prod.fleet.add_nodes(1)
