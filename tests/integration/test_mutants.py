"""devtools/mutants.py, on a project of two lines: a mutation is killed only by a failing
test, a surviving one fails the run, and an edit that no longer applies fails it too."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support.program_mocks import PROJECT_DIR

pytestmark = pytest.mark.mutants

MUTANTS = PROJECT_DIR / "devtools" / "mutants.py"


def project_with(tmp_path: Path, mutations: list[dict], limits: str = "MAX_REPLICAS = 3\nMIN_PASSWORD = 32\n"
                 ) -> subprocess.CompletedProcess:
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "limits.py").write_text(limits)
    (project / "tests" / "test_limits.py").write_text(
        "from limits import MAX_REPLICAS\n\n\ndef test_at_most_three_replicas():\n    assert MAX_REPLICAS == 3\n"
    )
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    listed = tmp_path / "mutants.yaml"
    listed.write_text(yaml.safe_dump([{"file": "limits.py", "tests": ["tests/test_limits.py"], **m} for m in mutations]))
    return subprocess.run(
        [sys.executable, str(MUTANTS), "--project", str(project), "--mutations", str(listed), "--jobs", "1"],
        capture_output=True, text=True, cwd=project,
    )


def test_a_mutation_a_test_catches_is_killed(tmp_path):
    run = project_with(tmp_path, [{"promise": "three replicas", "find": "MAX_REPLICAS = 3", "replace": "MAX_REPLICAS = 4"}])
    assert run.returncode == 0, run.stdout + run.stderr
    assert "killed" in run.stdout and "tests/test_limits.py::test_at_most_three_replicas" in run.stdout


def test_a_mutation_no_test_catches_survives_and_fails_the_run(tmp_path):
    run = project_with(tmp_path, [{"promise": "long passwords", "find": "MIN_PASSWORD = 32", "replace": "MIN_PASSWORD = 8"}])
    assert run.returncode == 1
    assert "survived: long passwords" in run.stdout


def test_an_edit_that_no_longer_applies_fails_the_run(tmp_path):
    run = project_with(tmp_path, [{"promise": "gone", "find": "MAX_NODES = 3", "replace": "MAX_NODES = 4"}])
    assert run.returncode == 1
    assert "invalid: gone" in run.stdout and "occurs 0 times" in run.stdout


def test_of_a_text_that_recurs_the_named_match_is_edited(tmp_path):
    # " = 3" is in both lines: the first is MAX_REPLICAS, which a test guards.
    recurring = {"find": " = 3", "replace": " = 4", "occurrences": 2}
    first = project_with(tmp_path / "first", [{"promise": "first", **recurring, "occurrence": 1}])
    second = project_with(tmp_path / "second", [{"promise": "second", **recurring, "occurrence": 2}])
    assert (first.returncode, second.returncode) == (0, 1)
    miscounted = project_with(tmp_path / "miscounted", [{"promise": "miscounted", **recurring, "occurrences": 1}])
    assert "occurs 2 times" in miscounted.stdout


def test_a_project_whose_tests_fail_unmutated_fails_the_run_naming_the_test(tmp_path):
    # Otherwise every mutation would count as killed by a test that was failing anyway.
    run = project_with(tmp_path, [{"promise": "long passwords", "find": "MIN_PASSWORD = 32", "replace": "MIN_PASSWORD = 8"}],
                       limits="MAX_REPLICAS = 5\nMIN_PASSWORD = 32\n")
    assert run.returncode == 1
    assert "unmutated project fails tests/test_limits.py::test_at_most_three_replicas" in run.stderr
    assert "killed" not in run.stdout
