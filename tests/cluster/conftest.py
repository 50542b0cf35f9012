"""The local cluster's fixtures: one cluster for the session, started when none runs and
stopped at the end only if this session started it."""

from typing import Iterator

import pytest

from localcluster import cluster as local_cluster
from localcluster import layout
from support.local_cluster import LocalCluster, running_cluster
from support.prod_stack import Prod, configure_for_the_local_node
from support.project_copy import copy_project


@pytest.fixture(scope="session")
def cluster_session() -> Iterator[dict]:
    """Records whether this session started a cluster, and stops it at the end if so."""
    session = {"started": None}
    yield session
    # Only the cluster this session started: not one started since by someone else.
    if session["started"] and local_cluster.is_running() and layout.PATHS.ready.read_text() == session["started"]:
        local_cluster.down()


@pytest.fixture
def cluster(cluster_session: dict) -> Iterator[LocalCluster]:
    handle = running_cluster(cluster_session)
    yield handle
    handle.cleanup()


@pytest.fixture(scope="module")
def module_cluster(cluster_session: dict) -> Iterator[LocalCluster]:
    handle = running_cluster(cluster_session)
    yield handle
    handle.cleanup()


@pytest.fixture(scope="session")
def prod(cluster_session: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prod]:
    """Prod's shape, deployed once for every module that needs it (support/prod_stack.py),
    and destroyed at the end with its protection lifted."""
    handle = running_cluster(cluster_session)
    project = copy_project(tmp_path_factory.mktemp("prod"), layout.PATHS.admin_kubeconfig)
    configure_for_the_local_node(project)
    project.pulumi("prod", "up", "--yes", "--skip-preview")
    deployed = Prod(project, handle)
    deployed.wait_until_settled()
    deployed.wait_until_routed()
    yield deployed
    project.pulumi("prod", "up", "--yes", "--skip-preview", "--config", "journal:protectData=false", check=False)
    project.pulumi("prod", "destroy", "--yes", "--skip-preview", check=False)
    handle.cleanup()
