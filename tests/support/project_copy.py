"""A copy of the project for tests that run the real Pulumi CLI: the repository's stack
files and state are never touched. As for a user, dev runs on the passphrase
scripts/pulumi.sh generates for the copy, every other stack on one from the environment."""

import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

from support.program_mocks import PROJECT_DIR

PROJECT_FILES = (
    "requirements.txt", "Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml", "__main__.py", "components", "pyrightconfig.json",
    "scripts", "toolchain",
    # What `make up` runs: the Makefile's setup (a no-op on the shared venv), the local
    # cluster's code and the images it builds.
    "Makefile", "requirements-dev.txt", "constraints.txt", "localcluster", "images",
)
# `pulumi ARGS...` as the README teaches it: in the project root, after `source scripts/env.sh`.
PLAIN_PULUMI = ("bash", "-c", 'source scripts/env.sh && exec pulumi "$@"', "pulumi")
# A passphrase made up for this run: the engine encrypts the Redis password with it.
PASSPHRASE = secrets.token_hex(16)


class Project:
    def __init__(self, root: Path, kubeconfig: Path):
        self.root = root
        self.kubeconfig = kubeconfig
        self.transcript: list[str] = []
        self.stack_files = {stack: (root / f"Pulumi.{stack}.yaml").read_text() for stack in ("dev", "prod")}

    def environment(self, stack: str, **env: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k not in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")}
        if stack != "dev":
            base["PULUMI_CONFIG_PASSPHRASE"] = PASSPHRASE
        return {**base, "KUBECONFIG": str(self.kubeconfig), **env}

    def run(self, stack: str, *args: str, check: bool = True, timeout: float = 600, input: str | None = None,
            **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            args,
            cwd=self.root,
            env=self.environment(stack, **env),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
        self.transcript += [result.stdout, result.stderr]
        if check:
            assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{_failure_lines(result.stdout)}\n{result.stderr[-3000:]}"
        return result

    def pulumi(self, stack: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run(stack, "scripts/pulumi.sh", stack, *args, **kwargs)

    def plain_pulumi(self, stack: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """`pulumi ARGS` as the README teaches it: in the project root, after
        `source scripts/env.sh` (the passphrase: dev's own, or `stack`'s from the environment)."""
        return self.run(stack, *PLAIN_PULUMI, *args, **kwargs)

    def start_plain_pulumi(self, stack: str, *args: str, output: Path, **env: str) -> subprocess.Popen[bytes]:
        """plain_pulumi in the background, in a process group of its own (the CLI, its
        language host and providers can be stopped or killed together), output to a file."""
        with output.open("wb") as out:
            return subprocess.Popen(
                [*PLAIN_PULUMI, *args],
                cwd=self.root, env=self.environment(stack, **env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def write_credential(self, stack: str) -> str:
        """The deployed stack's write credential (a secret output), for the requests that
        add and delete entries."""
        return self.pulumi(stack, "stack", "output", "writeCredential", "--show-secrets").stdout.strip()

    def render(self, stack: str) -> Path:
        self.run(stack, "scripts/render.sh", stack)
        return self.root / "rendered" / stack

    def manifests(self, out: Path) -> list[Path]:
        return sorted((out / "1-manifest").glob("*.yaml")) + sorted((out / "0-crd").glob("*.yaml"))

    def render_backend(self) -> dict[str, str]:
        return {"PULUMI_BACKEND_URL": f"file://{self.root}/.pulumi/render-state"}


def copy_project(root: Path, kubeconfig: Path | None = None) -> Project:
    """The project's files in `root`, sharing the repository's venv. Without a kubeconfig
    the copy sees no cluster at all."""
    for name in PROJECT_FILES:
        source = PROJECT_DIR / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    (root / "venv").symlink_to(PROJECT_DIR / "venv")
    return Project(root, kubeconfig or root / "no-cluster")


def _failure_lines(output: str) -> str:
    """The lines of a failed run that say why (the engine's "error:" lines, which a long
    traceback after them would push out of a plain tail), then its tail."""
    errors = [line for line in output.splitlines() if "error:" in line.lower()][:20]
    return "\n".join(["[error lines]", *errors, "[tail]", output[-3000:]])
