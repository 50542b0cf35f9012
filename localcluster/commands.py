"""Short-lived commands, run to their end with their output captured: the cluster's `ip`,
`iptables`, `openssl` and `kubectl`, and the tests' redis-cli and probe scripts.

A command that runs out of time, or whose caller is interrupted, is killed, with its
whole process group when it leads one: nothing it started outlives it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import AnyStr, Mapping

# How long a signalled process has to exit before it gets SIGKILL.
GRACE = 5.0


class CommandFailed(RuntimeError):
    pass


def run(
    *command: str,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
    own_group: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Runs `command` to its end. With `check`, a non-zero exit raises CommandFailed with
    what it printed; without, the caller reads the returncode."""
    # The tests hand some commands a password in env or input: pytest leaves these
    # frames, and their locals, out of the tracebacks it prints.
    __tracebackhide__ = True
    return finish(start(*command, env=env, stdin=input is not None, own_group=own_group), input=input, timeout=timeout, check=check)


def start(*command: str, env: Mapping[str, str] | None = None, stdin: bool = False, own_group: bool = False) -> subprocess.Popen[str]:
    """Starts `command` with its output piped for `finish`; with `own_group`, in a process
    group of its own, so that a timeout kills what it started too."""
    __tracebackhide__ = True
    return subprocess.Popen(
        command,
        env=dict(env) if env is not None else None,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=own_group,
    )


def finish(
    process: subprocess.Popen[str], *, input: str | None = None, timeout: float | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Waits for a started command and returns what it printed."""
    __tracebackhide__ = True
    shown = " ".join(map(str, process.args)) if isinstance(process.args, (list, tuple)) else str(process.args)
    try:
        stdout, stderr = process.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"{shown} did not finish within {timeout} s") from None
    finally:
        # A no-op once it has exited; on a timeout or an interrupt, it and its group go.
        stop(process)
    if check and process.returncode != 0:
        raise CommandFailed(f"{shown} failed ({process.returncode}): {stderr.strip() or stdout.strip()}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def stop(process: subprocess.Popen[AnyStr], sig: int = signal.SIGKILL, grace: float = GRACE) -> None:
    """Sends `sig` to the process, to its whole group when it leads one, then SIGKILL if
    it is still there after `grace` seconds; reaps it."""
    if process.poll() is None:
        _signal(process, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    if process.poll() is None:
        _signal(process, signal.SIGKILL)
        process.wait(timeout=grace)


def _signal(process: subprocess.Popen[AnyStr], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
