"""Mutation checks: does every promise of the program have a test that guards it?

    venv/bin/python devtools/mutants.py [--mutations tests/mutants.yaml] [--jobs 2] [--only TEXT]

Each mutation in the list is one small edit that breaks one promise (a security context
field, a NetworkPolicy port, the memory medium of the volume holding the Redis password,
and so on). For each, a copy of the project gets the edit and its tests run; the mutation is
*killed* when a test fails, and *survives* when every test still passes: then nothing
guards that promise, and this script fails.

An edit must match its file exactly once (or as often as it says, naming which match to
edit); one that no longer matches (the code moved on) fails the run too, so the list cannot silently stop testing anything. Before any edit, the
unmutated copy must pass the same tests.
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
# The tests that read the program's resources under Pulumi's mocks: seconds per run.
DEFAULT_TESTS = ("tests/unit/test_program.py", "tests/unit/test_components.py")


@dataclass(frozen=True)
class Mutation:
    promise: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]
    occurrence: int
    """Which match to edit, when the text recurs (1 for the first)."""
    occurrences: int
    """How many times the text must occur in the file."""


@dataclass(frozen=True)
class Outcome:
    mutation: Mutation
    status: str
    """killed, survived, or invalid (the edit does not apply, or the tests could not run)."""
    detail: str
    seconds: float


def load_mutations(path: Path) -> list[Mutation]:
    entries = yaml.safe_load(path.read_text()) or []
    mutations = []
    for number, entry in enumerate(entries, 1):
        missing = {"promise", "file", "find", "replace"} - entry.keys()
        if missing:
            raise SystemExit(f"{path}: mutation {number} lacks {', '.join(sorted(missing))}")
        mutations.append(
            Mutation(
                entry["promise"], entry["file"], entry["find"], entry["replace"],
                tests=tuple(entry.get("tests", DEFAULT_TESTS)),
                occurrence=entry.get("occurrence", 1),
                occurrences=entry.get("occurrences", 1),
            )
        )
    return mutations


def tracked_files(project: Path) -> list[str]:
    """The project as a clone would have it, with the working tree's edits."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=project, check=True, capture_output=True, text=True,
    ).stdout
    return [name for name in listed.split("\0") if name and (project / name).is_file()]


def copy_project(project: Path, into: Path) -> None:
    for name in tracked_files(project):
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project / name, target)


# A mutation can make the code under test hang (a wait that never ends): that proves
# nothing either way, and must not hold CI up.
TEST_RUN_SECONDS = 600


def run_tests(copy: Path, tests: tuple[str, ...]) -> subprocess.CompletedProcess:
    # -x: the first failing test is enough to call a mutation killed.
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        return subprocess.run(
            command, cwd=copy, capture_output=True, text=True, timeout=TEST_RUN_SECONDS,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    except subprocess.TimeoutExpired as expired:
        return subprocess.CompletedProcess(command, -1, f"timed out after {expired.timeout} s", "")


def first_failure(output: str) -> str:
    match = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    return match.group(1) if match else "(no test named)"


def try_mutation(copy: Path, mutation: Mutation) -> Outcome:
    started = time.monotonic()
    path = copy / mutation.file
    if not path.is_file():
        return Outcome(mutation, "invalid", f"{mutation.file} does not exist", 0.0)
    original = path.read_text()
    matches = original.count(mutation.find)
    if matches != mutation.occurrences:
        return Outcome(
            mutation, "invalid",
            f"the text to edit occurs {matches} times in {mutation.file}, not {mutation.occurrences}", 0.0,
        )
    before, *after = original.split(mutation.find)
    edited = before + "".join(
        (mutation.replace if n == mutation.occurrence else mutation.find) + rest for n, rest in enumerate(after, 1)
    )
    path.write_text(edited)
    try:
        result = run_tests(copy, mutation.tests)
    finally:
        path.write_text(original)
    seconds = time.monotonic() - started
    # pytest: 0 every test passed, 1 some test failed; anything else means the tests did
    # not run (usage error, nothing collected), which proves nothing either way.
    if result.returncode == 0:
        return Outcome(mutation, "survived", "every test passed", seconds)
    if result.returncode == 1:
        return Outcome(mutation, "killed", first_failure(result.stdout), seconds)
    return Outcome(mutation, "invalid", f"pytest exited {result.returncode}: {result.stdout[-500:]}", seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutations", type=Path, default=PROJECT_DIR / "tests" / "mutants.yaml")
    parser.add_argument("--project", type=Path, default=PROJECT_DIR)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", default="", help="run the mutations whose promise contains this text")
    arguments = parser.parse_args()

    mutations = [m for m in load_mutations(arguments.mutations) if arguments.only in m.promise]
    if not mutations:
        print("mutants: no mutation to run", file=sys.stderr)
        return 2
    jobs = max(1, min(arguments.jobs, len(mutations)))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="journal-mutants-") as scratch:
        copies = [Path(scratch) / f"copy-{n}" for n in range(jobs)]
        for copy in copies:
            copy_project(arguments.project.resolve(), copy)
        # One pytest run over every test the list names: a process per test set would
        # pay pytest's and the SDKs' start-up dozens of times over.
        every_test = tuple(dict.fromkeys(test for m in mutations for test in m.tests))
        baseline = run_tests(copies[0], every_test)
        if baseline.returncode != 0:
            print(f"mutants: the unmutated project fails {first_failure(baseline.stdout)}:\n{baseline.stdout[-2000:]}",
                  file=sys.stderr)
            return 1

        free = list(copies)
        outcomes: list[Outcome] = []

        def attempt(mutation: Mutation) -> Outcome:
            copy = free.pop()
            try:
                return try_mutation(copy, mutation)
            finally:
                free.append(copy)

        def report(outcome: Outcome) -> None:
            outcomes.append(outcome)
            print(f"{outcome.status:8} {outcome.seconds:5.1f}s  {outcome.mutation.promise}\n"
                  f"{'':16}{outcome.mutation.file}: {outcome.detail}", flush=True)

        # The mock tests run side by side; the others start real servers with timed waits,
        # which two at once on a small machine would turn into flakes: one at a time.
        mocked = [m for m in mutations if m.tests == DEFAULT_TESTS]
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            for outcome in pool.map(attempt, mocked):
                report(outcome)
        for mutation in mutations:
            if mutation.tests != DEFAULT_TESTS:
                report(attempt(mutation))

    killed = sum(outcome.status == "killed" for outcome in outcomes)
    print(f"\nmutants: {killed} of {len(outcomes)} killed in {time.monotonic() - started:.0f} s")
    failed = [outcome for outcome in outcomes if outcome.status != "killed"]
    for outcome in failed:
        print(f"  {outcome.status}: {outcome.mutation.promise} ({outcome.mutation.file})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
