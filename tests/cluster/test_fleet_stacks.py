"""Many instances of the stack on one fleet (tests/support/kwok_fleet.py, three nodes): twenty
stacks, each Pulumi.dev.yaml with its own stack name (hence its own namespace and
instance label) and its own host, deployed side by side. None of them touches another's
objects, cluster-scoped ones included (their Namespaces and the claims' volumes), a stack
destroyed in the middle leaves the others exactly as they were, and every stack still
previews as no change."""

from __future__ import annotations

import json
from typing import Iterator

import pytest

from support.kube_apiserver import install
from support.kwok_fleet import Fleet, add_team_stack
from support.project_copy import Project, copy_project

pytestmark = pytest.mark.fleet

STACKS = [f"team-{number}" for number in range(1, 21)]


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with Fleet(install()) as fleet:
        fleet.add_nodes(3)
        yield fleet


@pytest.fixture(scope="module")
def project(fleet, tmp_path_factory) -> Project:
    project = copy_project(tmp_path_factory.mktemp("teams"), fleet.kubeconfig)
    for stack in STACKS:
        add_team_stack(project, stack)
        project.pulumi(stack, "up", "--yes", "--skip-preview")
    return project


def snapshot(fleet: Fleet, namespace: str) -> dict[str, str]:
    """kind/name -> resourceVersion of what the stack made in its namespace."""
    kinds = "deployments,statefulsets,services,configmaps,secrets,networkpolicies,ingresses,poddisruptionbudgets,persistentvolumeclaims,issuers,certificates"
    items = fleet.get(kinds, "-n", namespace)["items"]
    return {f"{item['kind']}/{item['metadata']['name']}": item["metadata"]["resourceVersion"] for item in items}


def test_every_stack_has_its_own_namespace_pods_and_volumes(fleet, project):
    namespaces = {item["metadata"]["name"] for item in fleet.get("namespaces")["items"]}
    assert {f"journal-{stack}" for stack in STACKS} <= namespaces
    for stack in STACKS:
        pods = fleet.get("pods", "-n", f"journal-{stack}")["items"]
        assert sorted(pod["metadata"]["labels"]["app.kubernetes.io/component"] for pod in pods) == ["fileserver", "frontend", "redis"]
        assert all(pod["metadata"]["labels"]["app.kubernetes.io/instance"] == f"journal-{stack}" for pod in pods)
    # Each claim's volume belongs to exactly one claim, of one stack.
    claims = [pv["spec"]["claimRef"] for pv in fleet.get("pv")["items"]]
    assert sorted(ref["namespace"] for ref in claims) == sorted(f"journal-{stack}" for stack in STACKS)


def test_no_stack_reaches_into_another_namespace(fleet, project):
    for stack in (STACKS[0], STACKS[-1]):
        state = json.loads(project.pulumi(stack, "stack", "export").stdout)
        namespaced = [
            r["outputs"]["metadata"]["namespace"]
            for r in state["deployment"]["resources"]
            if r["type"].startswith("kubernetes:") and "namespace" in r.get("outputs", {}).get("metadata", {})
        ]
        assert namespaced and set(namespaced) == {f"journal-{stack}"}


def test_a_stack_destroyed_in_the_middle_leaves_the_others_untouched(fleet, project):
    middle, neighbours = STACKS[9], (STACKS[8], STACKS[10])
    before = {stack: snapshot(fleet, f"journal-{stack}") for stack in neighbours}
    project.pulumi(middle, "destroy", "--yes", "--skip-preview")
    assert fleet.kubectl("get", "namespace", f"journal-{middle}", check=False).returncode != 0
    assert {stack: snapshot(fleet, f"journal-{stack}") for stack in neighbours} == before
    for stack in (STACKS[0], *neighbours, STACKS[-1]):
        project.pulumi(stack, "preview", "--expect-no-changes")
