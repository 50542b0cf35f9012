"""The local cluster's fixtures: one cluster for the session, started when none runs and
stopped at the end only if this session started it."""

from typing import Iterator

import pytest

from localcluster import cluster as local_cluster
from localcluster import layout
from support.local_cluster import LocalCluster, running_cluster


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

