"""Every shell script of the project passes shellcheck, in the shell it runs under."""

import subprocess

import pytest

from support.program_mocks import PROJECT_DIR

pytestmark = pytest.mark.shellcheck

# The Redis scripts run as `sh` (dash) in the official image; the rest are bash.
POSIX_SCRIPTS = sorted((PROJECT_DIR / "components").glob("*.sh"))
BASH_SCRIPTS = sorted(path for folder in ("scripts", "toolchain", "devtools") for path in (PROJECT_DIR / folder).rglob("*.sh")) + [
    PROJECT_DIR / ".ci" / "run"
]


@pytest.mark.parametrize(
    "script, shell",
    [(s, "sh") for s in POSIX_SCRIPTS] + [(s, "bash") for s in BASH_SCRIPTS],
    ids=lambda value: str(value.relative_to(PROJECT_DIR)) if hasattr(value, "relative_to") else value,
)
def test_script_passes_shellcheck(script, shell):
    result = subprocess.run(
        ["shellcheck", "--external-sources", f"--shell={shell}", script.name],
        cwd=script.parent,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout
