"""A team's state: two clones of the project share prod's state on a real S3 server
(scripts/state-server.sh, versitygw on loopback) through plain `pulumi`, with the same
passphrase and the salt the first clone committed. Pulumi's own locking keeps two
commands on one stack apart, and a run killed while it holds the stack leaves a lock that
`pulumi cancel` removes.

What is shared here is the state, so no cluster is needed: prod's configuration is
rendered to files (the provider's `renderYamlToDirectory`, as scripts/render.sh gives it)
instead of applied, through the real engine, providers and generated passwords."""

import base64
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from scripts import render_state
from support.program_mocks import PROJECT_DIR
from support.project_copy import Project, copy_project
from support.state_server import StateServer, running_state_server

pytestmark = pytest.mark.statebackend

PROJECT = "journal"
STACK = "prod"
UP = ("up", "--stack", STACK, "--yes", "--skip-preview")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[StateServer]:
    with running_state_server(tmp_path_factory.mktemp("s3") / "state") as running:
        yield running


@pytest.fixture(scope="module")
def clones(tmp_path_factory, server) -> tuple[Project, Project]:
    """prod deployed from a first clone; a second clone with the stack file it committed."""
    first = copy_project(tmp_path_factory.mktemp("first-clone"))
    first.plain_pulumi(STACK, "stack", "init", STACK, **server.client_env)
    stack_file = first.root / f"Pulumi.{STACK}.yaml"
    settings = yaml.safe_load(stack_file.read_text())
    assert settings["encryptionsalt"], "stack init records the salt of the team's passphrase"
    stack_file.write_text(yaml.safe_dump(render_state.render_config(settings, f"rendered/{STACK}"), sort_keys=False))
    first.plain_pulumi(STACK, *UP, **server.client_env)

    second = copy_project(tmp_path_factory.mktemp("second-clone"))
    shutil.copy2(stack_file, second.root / stack_file.name)
    return first, second


def exported(project: Project, server: StateServer, *flags: str) -> dict:
    return json.loads(project.plain_pulumi(STACK, "stack", "export", "--stack", STACK, *flags, **server.client_env).stdout)


def generated_passwords(project: Project, server: StateServer) -> dict[str, str]:
    """Each generated password by URN, in plaintext: compare digests, never print these."""
    state = exported(project, server, "--show-secrets")
    # A secret output is exported as {<secret signature>: ..., "plaintext": <its value as JSON>}.
    return {
        resource["urn"]: json.loads(resource["outputs"]["result"]["plaintext"])
        for resource in state["deployment"]["resources"]
        if resource["type"] == "random:index/randomPassword:RandomPassword"
    }


def digests(passwords: dict[str, str]) -> dict[str, str]:
    return {urn: hashlib.sha256(value.encode()).hexdigest() for urn, value in passwords.items()}


def history(project: Project, server: StateServer) -> list[dict]:
    """The stack's updates, newest first."""
    return json.loads(project.plain_pulumi(STACK, "stack", "history", "--stack", STACK, "--json", **server.client_env).stdout)


def held_lock(server: StateServer, holder, timeout: float = 60) -> Path:
    """The lock file the running command `holder` wrote, once it is there."""
    deadline = time.monotonic() + timeout
    while not server.locks(PROJECT, STACK):
        assert holder.poll() is None, f"the command ended ({holder.returncode}) before it was seen holding the stack"
        assert time.monotonic() < deadline, f"no lock on {STACK} after {timeout} s"
        time.sleep(0.02)
    (lock,) = server.locks(PROJECT, STACK)
    return lock


def assert_refused_naming(result, lock: Path) -> None:
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "the stack is currently locked by 1 lock(s)" in message, message[-2000:]
    holder = json.loads(lock.read_text())
    # The lock's key in the bucket, and who holds it.
    assert f"/.pulumi/locks/organization/{PROJECT}/{STACK}/{lock.name}" in message
    assert f"(pid {holder['pid']})" in message


def test_the_servers_credentials_are_owner_only_and_never_printed(server):
    for name in ("server.env", "client.env"):
        assert stat.S_IMODE((server.directory / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(server.directory.stat().st_mode) == 0o700
    printed = server.log.read_text()
    assert "client.env" in printed
    assert server.client_env["AWS_SECRET_ACCESS_KEY"] not in printed


def test_the_server_refuses_an_address_beyond_this_machine(tmp_path):
    refused = subprocess.run([str(PROJECT_DIR / "scripts" / "state-server.sh"), str(tmp_path / "state"), "0.0.0.0:7070"], capture_output=True, text=True)
    assert refused.returncode == 2
    assert "0.0.0.0:7070 is not a loopback address" in refused.stderr
    assert not (tmp_path / "state").exists()


def test_a_second_clone_sees_the_stack_and_its_up_changes_nothing(clones, server):
    first, second = clones
    passwords = digests(generated_passwords(first, server))
    resources = len(exported(first, server)["deployment"]["resources"])
    listed = json.loads(second.plain_pulumi(STACK, "stack", "ls", "--json", **server.client_env).stdout)
    assert [(entry["name"], entry["resourceCount"]) for entry in listed] == [(STACK, resources)]

    second.plain_pulumi(STACK, *UP, **server.client_env)
    newest = history(second, server)[0]
    assert newest["result"] == "succeeded"
    assert list(newest["resourceChanges"]) == ["same"]
    # Not regenerated: a new Redis password would restart every Redis pod.
    assert digests(generated_passwords(second, server)) == passwords


def test_no_generated_password_reaches_the_server_in_plaintext(clones, server):
    first, _ = clones
    forms = {urn: (value.encode(), base64.b64encode(value.encode())) for urn, value in generated_passwords(first, server).items()}
    assert forms
    stored = [path for path in server.directory.rglob("*") if path.is_file()]
    assert any(path.name == f"{STACK}.json" for path in stored), "the stack's state is a file of the bucket"
    leaks = [(urn, str(path)) for path in stored for urn, pair in forms.items() if any(form in path.read_bytes() for form in pair)]
    assert leaks == []


def test_an_up_while_another_holds_the_stack_is_refused_naming_its_lock(clones, server, tmp_path):
    first, second = clones
    updates = len(history(first, server))
    holder = first.start_plain_pulumi(STACK, *UP, output=tmp_path / "holder.log", **server.client_env)
    try:
        lock = held_lock(server, holder)
        # Frozen while it holds the stack: the second clone's up meets its lock for certain.
        os.killpg(holder.pid, signal.SIGSTOP)
        assert json.loads(lock.read_text())["pid"] == holder.pid
        assert_refused_naming(second.plain_pulumi(STACK, *UP, check=False, **server.client_env), lock)
    finally:
        os.killpg(holder.pid, signal.SIGCONT)
    assert holder.wait(timeout=300) == 0, (tmp_path / "holder.log").read_text()[-3000:]
    assert server.locks(PROJECT, STACK) == []
    # The holder's update is recorded; the refused one never started.
    runs = history(first, server)
    assert len(runs) == updates + 1 and runs[0]["result"] == "succeeded"


def test_two_ups_started_together_never_corrupt_the_state(clones, server, tmp_path):
    first, second = clones
    passwords = digests(generated_passwords(first, server))
    resources = len(exported(first, server)["deployment"]["resources"])
    updates = len(history(first, server))
    succeeded = refused = 0
    # Pairs until one meets the other's lock: one that finishes before the other begins
    # shows nothing.
    for round_ in range(6):
        if refused:
            break
        runs = [
            clone.start_plain_pulumi(STACK, *UP, output=tmp_path / f"{round_}-{name}.log", **server.client_env)
            for name, clone in (("first", first), ("second", second))
        ]
        for run, name in zip(runs, ("first", "second")):
            run.wait(timeout=300)
            output = (tmp_path / f"{round_}-{name}.log").read_text()
            if run.returncode == 0:
                succeeded += 1
            else:
                # Both may be refused when each sees the other's lock; neither runs then.
                assert "the stack is currently locked" in output, output[-3000:]
                refused += 1
        assert server.locks(PROJECT, STACK) == []
    assert refused >= 1, "the ups never overlapped: nothing was shown"
    assert len(history(first, server)) == updates + succeeded
    state = exported(second, server)
    assert len(state["deployment"]["resources"]) == resources
    assert not state["deployment"].get("pending_operations")
    assert digests(generated_passwords(second, server)) == passwords


def test_a_killed_up_leaves_its_lock_until_pulumi_cancel_removes_it(clones, server, tmp_path):
    first, second = clones
    passwords = digests(generated_passwords(first, server))
    # A change, killed with everything it started (CLI, language host, providers) while
    # it holds the stack, once the update has begun.
    change = ("--config", "journal:frontendReplicas=4")
    log = tmp_path / "killed.log"
    killed = first.start_plain_pulumi(STACK, *UP, *change, output=log, **server.client_env)
    lock = held_lock(server, killed)
    deadline = time.monotonic() + 120
    while "Updating (" not in log.read_text():
        assert killed.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()

    assert server.locks(PROJECT, STACK) == [lock]
    assert_refused_naming(second.plain_pulumi(STACK, *UP, check=False, **server.client_env), lock)
    cancelled = second.plain_pulumi(STACK, "cancel", "--stack", STACK, "--yes", **server.client_env)
    assert "has been canceled" in cancelled.stdout + cancelled.stderr
    assert server.locks(PROJECT, STACK) == []

    # The change, run again, completes on the state the killed run left.
    first.plain_pulumi(STACK, *UP, *change, **server.client_env)
    (frontend,) = [
        resource for resource in exported(first, server)["deployment"]["resources"]
        if resource["type"] == "kubernetes:apps/v1:Deployment" and resource["outputs"]["metadata"]["name"] == "frontend"
    ]
    assert frontend["outputs"]["spec"]["replicas"] == 4
    assert digests(generated_passwords(first, server)) == passwords
