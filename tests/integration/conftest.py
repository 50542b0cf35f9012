"""Fixtures of the integration layer: the reference journal API on a master and its
replica (real redis-server), one pair a module, as test_journal_api.py,
test_journal_api_bounds.py and test_journal_traffic.py use them. A module that defines its own `cluster` (the Redis
tests) or `api` keeps it."""

from typing import Iterator

import pytest

from support.journal_api_process import Api, master_and_replica
from support.redis_nodes import RedisNodes, require_binaries, wait_for


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisNodes]:
    require_binaries()
    with master_and_replica() as cluster:
        cluster.wait_until_replicas_linked()
        yield cluster


@pytest.fixture(scope="module")
def api(cluster: RedisNodes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with Api(tmp_path_factory.mktemp("api"), cluster.password_file, [cluster.secret],
             redis_port=cluster.master.port) as api:
        yield api


@pytest.fixture
def clean(cluster: RedisNodes) -> RedisNodes:
    """No journal data, on the master and (once it has caught up) on the replica."""
    cluster.master.cli("DEL", "journal:entries", "journal:next-id")
    replica = cluster.replicas[0]
    wait_for("the replica to drop the journal",
             lambda: replica.cli("EXISTS", "journal:entries", "journal:next-id").reply == "0")
    return cluster
