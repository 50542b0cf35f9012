"""devtools/engine_timeline.py splits one command's engine log into the phases that
`make bench` prints."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from devtools.engine_timeline import timeline


def log_line(second: float, message: str) -> str:
    """A line `second` seconds after 23:59:59 (a run may cross midnight)."""
    moment = datetime(2026, 12, 4, 23, 59, 59, tzinfo=timezone.utc) + timedelta(seconds=second)
    return "I1204 " + json.dumps({"time": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "level": "INFO", "msg": message})


def test_each_phase_runs_from_one_engine_event_to_the_next(tmp_path):
    log = tmp_path / "up.log"
    log.write_text("\n".join([
        log_line(0.0, "CLI Metadata"),
        log_line(0.4, "langhost[python].Run(pwd=/p, dryrun=false) executing"),
        log_line(0.6, "eventSink::Debug(registering resource: ty=pulumi:pulumi:Stack, name=journal-dev, custom=False)"),
        log_line(0.6, "registering resource: ty=pulumi:pulumi:Stack, name=journal-dev, custom=False"),
        log_line(0.9, "registering resource: ty=kubernetes:core/v1:Namespace, name=journal-namespace, custom=True"),
        log_line(1.5, "SnapshotManager.markOperationComplete(urn:pulumi:dev::journal::kubernetes:core/v1:Namespace::journal-namespace)"),
        log_line(1.7, "langhost[python].Run(pwd=/p, ...) success: progerr=, bail=false"),
        log_line(1.75, "OTLP receiver stopped gracefully"),
    ]))
    measured = timeline(log)
    assert measured.seconds == pytest.approx({"start": 0.4, "sdk": 0.2, "program": 0.3, "steps": 0.6, "exit": 0.2, "save": 0.05})
    assert measured.declared == 2


def test_a_log_without_the_engine_events_is_refused(tmp_path):
    log = tmp_path / "plain.log"
    log.write_text("Updating (dev):\n")
    with pytest.raises(SystemExit, match="not a `-v=9 --logtostderr` log"):
        timeline(log)
