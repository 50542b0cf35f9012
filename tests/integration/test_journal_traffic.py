"""The traffic recorder (tests/support/journal_traffic.py) against the real journal API
and real Redis servers: a master and its replica started by the launch script, and a
`python -m journal_api` writing to the master and reading from the replica, as in
tests/integration/test_journal_api.py.

It must see what a fault does (failed writes, a write gap as long as the fault) without
inventing losses, and it must report a broken promise when the answers break one.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Optional

import pytest

from support.journal_api_process import Api
from support.journal_traffic import JournalTraffic, Misplaced, Send, through_api
from support.redis_nodes import RedisNodes, stopped, wait_for

pytestmark = pytest.mark.journalapi

#: How long the master stays frozen under traffic.
FROZEN = 3.0


def test_steady_traffic_is_all_acknowledged_read_back_and_never_pauses(api: Api) -> None:
    traffic = JournalTraffic(through_api(api), max_seconds=4, write_rate=25, read_rate=10)
    with traffic:
        traffic.wait()
    report, verification = traffic.report(), traffic.verify()
    print(report.summary(), verification.summary(), sep="\n")

    assert verification.ok, verification.summary()
    assert verification.checked == report.writes_acknowledged == report.writes_sent
    assert report.write_failures == {} and report.read_failures == {}
    # Bounded by its schedule: 4 s of slots at 25 + 10 per second, each sent or skipped.
    assert report.writes_sent + report.reads_sent + report.slots_skipped == 4 * (25 + 10)
    assert report.writes_sent >= 90
    assert report.longest_write_gap < 1.0, report.summary()


def test_a_frozen_master_shows_as_failed_writes_and_a_gap_as_long_and_loses_nothing(
        api: Api, cluster: RedisNodes) -> None:
    with JournalTraffic(through_api(api), max_seconds=2 + FROZEN + 3) as traffic:
        time.sleep(2)
        with stopped(cluster.master):
            traffic.mark("master frozen")
            time.sleep(FROZEN)
        traffic.wait()
    report, verification = traffic.report(), traffic.verify()
    print(report.summary(), verification.summary(), sep="\n")

    assert verification.ok, verification.summary()
    # The API gives up on Redis after 2 s: the writes sent meanwhile are 503s.
    # Every failure is the API's 503 for a Redis that did not answer, counted as one.
    (outcome,) = report.write_failures
    assert outcome.startswith("503 the journal store is unavailable: ") and "did not answer within # s" in outcome, outcome
    [mark] = report.marks
    assert mark.first_write_after is not None, report.summary()
    assert FROZEN <= mark.first_write_after < FROZEN + 2.5, report.summary()
    assert report.longest_write_gap >= FROZEN, report.summary()
    # Writes flow again: most of the last seconds' slots are acknowledged.
    assert report.writes_acknowledged >= 25 * (2 + 2), report.summary()


def test_page_loads_are_counted_beside_the_api_and_their_failures_by_status(api: Api) -> None:
    # The API's health path stands in for a page; a path it does not serve fails as a page would.
    served = JournalTraffic(through_api(api), max_seconds=2, write_rate=5, read_rate=5, page_rate=10,
                            page_path="/api/healthz")
    missing = JournalTraffic(through_api(api), max_seconds=2, write_rate=5, read_rate=5, page_rate=10,
                             page_path="/no-such-page")
    for traffic in (served, missing):
        with traffic:
            traffic.wait()
    report = served.report()
    assert report.pages_sent + report.writes_sent + report.reads_sent + report.slots_skipped == 2 * (5 + 5 + 10)
    assert report.pages_sent >= 15 and report.page_failures == {}, report.summary()
    failed = missing.report()
    assert failed.page_failures == {"404": failed.pages_sent} and failed.pages_sent >= 15, failed.summary()
    assert failed.write_failures == {} and failed.read_failures == {}


def test_stop_ends_the_traffic_early(api: Api) -> None:
    started = time.monotonic()
    with JournalTraffic(through_api(api), max_seconds=60) as traffic:
        time.sleep(1)
    assert time.monotonic() - started < 3
    report = traffic.report()
    assert report.seconds < 3 and 0 < report.writes_sent <= 2 * 25, report.summary()


class FalseAnswers:
    """The real API behind `send`, with some of its 201s falsified: the 10th acknowledged
    write is told the id the next write will get and that write is told the 10th's id (a
    swap), and the 20th is told the 5th's id (one id handed out twice)."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.lock = threading.Lock()
        self.acknowledged: list[int] = []
        self.swapped: Optional[int] = None
        #: text -> (the id the API gave it, the id it was told)
        self.falsified: dict[str, tuple[int, int]] = {}

    def __call__(self, method: str, path: str, body: Optional[bytes]) -> tuple[int, bytes]:
        status, answer = self.send(method, path, body)
        if method != "POST" or status != 201 or body is None:
            return status, answer
        entry = json.loads(answer)
        with self.lock:
            real = entry["id"]
            self.acknowledged.append(real)
            if len(self.acknowledged) == 10:
                # Ids come from one counter and only this traffic's one writer writes.
                self.swapped = real
                told = real + 1
            elif self.swapped is not None and real == self.swapped + 1:
                told = self.swapped
            elif len(self.acknowledged) == 20:
                told = self.acknowledged[4]
            else:
                return status, answer
            self.falsified[body.decode()] = (real, told)
        return status, json.dumps({**entry, "id": told}).encode()


def test_a_lost_entry_an_id_given_twice_and_swapped_ids_are_reported(api: Api) -> None:
    false_answers = FalseAnswers(through_api(api))
    # One writer: answers come in the order of their ids, so the 10th's partner is the next.
    traffic = JournalTraffic(false_answers, max_seconds=2, writers=1)
    with traffic:
        traffic.wait()
    acknowledged = {r.text: r.entry_id for r in traffic.requests if r.entry_id is not None and r.text is not None}
    falsified = false_answers.falsified
    assert len(falsified) == 3, falsified
    # One honestly acknowledged entry deleted for real, once the replica has dropped it too.
    twice = false_answers.acknowledged[4]
    deleted_text, deleted_id = next((text, entry_id) for text, entry_id in acknowledged.items()
                                    if text not in falsified and entry_id != twice)
    assert api.request("DELETE", f"/api/{deleted_id}").status == 204
    wait_for(f"the replica to drop entry {deleted_id}", lambda: api.request("GET", f"/api/{deleted_id}").status == 404)

    verification = traffic.verify(patience=1)
    print(traffic.report().summary(), verification.summary(), sep="\n")

    assert not verification.ok
    assert verification.unreadable == ()
    assert {missing.text for missing in verification.lost} == {*falsified, deleted_text}
    assert [missing.found for missing in verification.lost if missing.text == deleted_text] == ["404"]
    [(duplicate_id, texts)] = verification.duplicate_ids.items()
    assert duplicate_id == twice and len(texts) == 2
    # The swapped pair's texts are read back under each other's id; the third falsified
    # text may show under its real id in a listing too.
    could_be_seen = {Misplaced(text, told, real) for text, (real, told) in falsified.items()}
    swapped = {misplaced for misplaced in could_be_seen if misplaced.acknowledged_id != twice}
    assert swapped <= set(verification.misplaced) <= could_be_seen, verification.summary()
