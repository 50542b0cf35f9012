"""The program's Kubernetes inputs are typed: basedpyright (pinned in requirements-dev.txt,
configured by pyrightconfig.json) finds no error in `components/` and `__main__.py`, nor in
the local cluster, the reference API and the tests' support code, and a misspelt field of
a Kubernetes object fails the check before anything runs."""

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.program_mocks import PROJECT_DIR
from support.project_copy import copy_project

pytestmark = pytest.mark.types


# Every module in these is held to the check, beside __main__.py.
TYPED_DIRECTORIES = ("components", "localcluster", "images/journal-api/journal_api", "tests/support")


def check_types(project: Path) -> tuple[int, dict]:
    """The check as `venv/bin/basedpyright` runs it in `project`: pyrightconfig.json points
    it at the project's venv, where the provider's types are."""
    completed = subprocess.run(
        [sys.executable, "-m", "basedpyright", "--outputjson", "--project", str(project)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return completed.returncode, json.loads(completed.stdout)


def errors(report: dict) -> list[dict]:
    return [d for d in report["generalDiagnostics"] if d["severity"] == "error"]


def test_the_program_type_checks_with_no_error():
    returncode, report = check_types(PROJECT_DIR)
    assert errors(report) == []
    assert returncode == 0
    python_files = 1 + sum(len(list((PROJECT_DIR / directory).glob("*.py"))) for directory in TYPED_DIRECTORIES)
    assert report["summary"]["filesAnalyzed"] >= python_files


@dataclass(frozen=True)
class Misspelling:
    file: str
    written: str
    planted: str
    named: str


MISSPELLINGS = [
    # The one hardened container every workload runs.
    Misspelling(
        "components/hardening.py",
        '"container_port": self.port, "protocol": "TCP"',
        '"container_port": self.port, "protocal": "TCP"',
        "protocal",
    ),
    # A NetworkPolicy's ports.
    Misspelling(
        "components/network.py",
        '{"protocol": "TCP", "port": port}',
        '{"protocal": "TCP", "port": port}',
        "protocal",
    ),
    # The provider's types spell fields in snake_case: the API's own camelCase is refused
    # too, so the two never mix.
    Misspelling(
        "components/redis.py",
        '"mount_path": SCRIPTS_MOUNT, "read_only": True',
        '"mount_path": SCRIPTS_MOUNT, "readOnly": True',
        "readOnly",
    ),
    # A custom resource's field, typed by the program's own TypedDicts.
    Misspelling(
        "components/edge.py",
        '"sectionName": listener',
        '"sectionname": listener',
        "sectionname",
    ),
]


def test_a_misspelt_field_fails_the_type_check_where_it_is_written(tmp_path):
    copy_project(tmp_path)
    planted_lines = {}
    for misspelling in MISSPELLINGS:
        path = tmp_path / misspelling.file
        text = path.read_text()
        assert text.count(misspelling.written) == 1, f"{misspelling.file} no longer holds {misspelling.written}"
        path.write_text(text.replace(misspelling.written, misspelling.planted))
        planted_lines[misspelling] = text[: text.index(misspelling.written)].count("\n")

    returncode, report = check_types(tmp_path)

    assert returncode != 0
    for misspelling, line in planted_lines.items():
        reported = [
            e
            for e in errors(report)
            if Path(e["file"]) == tmp_path / misspelling.file
            and e["range"]["start"]["line"] <= line <= e["range"]["end"]["line"]
            and misspelling.named in e["message"]
        ]
        assert reported, f"no error names {misspelling.named!r} at {misspelling.file}:{line + 1}: {errors(report)}"
