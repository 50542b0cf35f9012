"""A team's Pulumi state on a real S3 server: scripts/state-server.sh (versitygw over a
directory) on a loopback port, as a team member would run it."""

import os
import shlex
import signal
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from support.loopback import free_port
from support.program_mocks import PROJECT_DIR

BUCKET = "journal-state"


@dataclass(frozen=True)
class StateServer:
    directory: Path
    # What `source DIR/client.env` exports: the credentials (kept out of failure reports)
    # and PULUMI_BACKEND_URL.
    client_env: dict[str, str] = field(repr=False)

    @property
    def log(self) -> Path:
        """What the server printed."""
        return _log_of(self.directory)

    @property
    def bucket(self) -> Path:
        """The bucket on disk (the posix backend keeps each object as a file)."""
        return self.directory / "buckets" / BUCKET

    def locks(self, project: str, stack: str) -> list[Path]:
        """The lock files Pulumi's DIY backend holds on `stack` while a command changes it."""
        return sorted((self.bucket / ".pulumi" / "locks" / "organization" / project / stack).glob("*.json"))


def _log_of(directory: Path) -> Path:
    return directory.with_suffix(".log")


def _exports(client_env: str) -> dict[str, str]:
    exported = {}
    for line in client_env.splitlines():
        words = shlex.split(line)
        name, _, value = words[-1].partition("=")
        # The line holds a credential: only the name goes into a failure report.
        assert words[0] == "export" and len(words) == 2, f"client.env: a line for {name!r} is not `export NAME=VALUE`"
        exported[name] = value
    return exported


@contextmanager
def running_state_server(directory: Path, timeout: float = 30) -> Iterator[StateServer]:
    """The server on a free loopback port until the block ends (stopped with SIGTERM)."""
    # Built first (`make state-server` has, unless this runs alone), so that the wait
    # below is the server's start only.
    built = subprocess.run([str(PROJECT_DIR / "toolchain" / "install-state-server.sh")], stdout=subprocess.PIPE, text=True)
    assert built.returncode == 0, "toolchain/install-state-server.sh failed (its output is above)"
    address = f"127.0.0.1:{free_port()}"
    log = _log_of(directory)
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(PROJECT_DIR / "scripts" / "state-server.sh"), str(directory), address], stdout=out, stderr=out, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert server.poll() is None, f"state-server.sh exited {server.returncode}:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(f"http://{address}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"no S3 server on {address} after {timeout} s:\n{log.read_text()}"
            time.sleep(0.1)
        yield StateServer(directory, _exports((directory / "client.env").read_text()))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
