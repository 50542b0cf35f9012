"""The journal API's per-client write budget (images/journal-api/journal_api/ratelimit.py)
on a clock of the test's own: the bucket's arithmetic and its bounded memory. The API
answering 429 is shown on the real process (tests/integration/test_journal_api.py)."""

import sys

# The journal API's package turns bytecode writing off for the whole interpreter (its
# image has a read-only root filesystem): back as it was once the module is loaded.
_write_bytecode = sys.dont_write_bytecode
from journal_api.ratelimit import WriteRateLimit  # noqa: E402

sys.dont_write_bytecode = _write_bytecode


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_spends_its_burst_then_waits_for_the_rate():
    clock = Clock()
    limit = WriteRateLimit(per_minute=30, burst=2, clock=clock)
    assert [limit.wait_seconds("a"), limit.wait_seconds("a")] == [0, 0]
    assert limit.wait_seconds("a") == 2.0, "one write every 60/30 s"
    clock.now += 1.5
    assert limit.wait_seconds("a") == 0.5, "a refused write takes nothing"
    clock.now += 0.5
    assert limit.wait_seconds("a") == 0
    clock.now += 3600
    assert [limit.wait_seconds("a") for _ in range(3)] == [0, 0, 2.0], "an idle client gets its burst, no more"


def test_clients_are_counted_apart():
    limit = WriteRateLimit(per_minute=60, burst=1, clock=Clock())
    assert [limit.wait_seconds("a"), limit.wait_seconds("b"), limit.wait_seconds("a")] == [0, 0, 1.0]


def test_memory_is_bounded_by_forgetting_the_longest_unused_client():
    limit = WriteRateLimit(per_minute=1, burst=1, max_clients=3, clock=Clock())
    for client in ("a", "b", "c"):
        assert limit.wait_seconds(client) == 0
    assert limit.wait_seconds("a") > 0  # a is now the most recently used: b is the oldest
    assert limit.wait_seconds("d") == 0  # a fourth client: b is forgotten
    assert limit.wait_seconds("b") == 0, "b starts again with a full bucket"
    assert limit.wait_seconds("a") > 0, "a, used since, is still counted"
