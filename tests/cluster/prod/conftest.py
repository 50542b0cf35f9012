"""Prod's shape, deployed once for the tests of this directory, which share it: a package
(it has an __init__.py), so the stack is destroyed after its last test, before the
modules after it run on the same one node."""

from typing import Iterator

import pytest

from localcluster import layout
from support.local_cluster import running_cluster
from support.prod_stack import Prod, configure_for_the_local_node
from support.project_copy import copy_project


@pytest.fixture(scope="package")
def prod(cluster_session: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prod]:
    """Prod's shape (support/prod_stack.py), deployed once, and destroyed at the end with
    its protection lifted."""
    handle = running_cluster(cluster_session)
    project = copy_project(tmp_path_factory.mktemp("prod"), layout.PATHS.admin_kubeconfig)
    configure_for_the_local_node(project)
    # As the README teaches a team's first deployment: plain Pulumi with prod's passphrase.
    project.plain_pulumi("prod", "stack", "init", "prod", "--secrets-provider", "passphrase", "--no-select")
    project.plain_pulumi("prod", "up", "--stack", "prod", "--yes", "--skip-preview")
    deployed = Prod(project, handle)
    deployed.wait_until_settled()
    deployed.wait_until_routed()
    yield deployed
    project.pulumi("prod", "up", "--yes", "--skip-preview", "--config", "journal:protectData=false", check=False)
    project.plain_pulumi("prod", "destroy", "--stack", "prod", "--yes", "--skip-preview")
    handle.cleanup()
