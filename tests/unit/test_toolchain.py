"""The Python packages and the plugin binaries are pinned to the same versions: the
Python SDK asks the engine for exactly the provider version of its package."""

import re

from support.program_mocks import PROJECT_DIR

INSTALLER = (PROJECT_DIR / "toolchain" / "install-pulumi.sh").read_text()
REQUIREMENTS = (PROJECT_DIR / "requirements.txt").read_text()


def installer_version(variable: str) -> str:
    (version,) = re.findall(rf"^{variable}=(\S+)$", INSTALLER, re.MULTILINE)
    return version


def required_version(package: str) -> str:
    (version,) = re.findall(rf"^{package}==(\S+)$", REQUIREMENTS, re.MULTILINE)
    return version


def test_the_kubernetes_provider_binary_matches_the_python_package():
    assert installer_version("KUBERNETES_VERSION") == required_version("pulumi-kubernetes")


def test_the_random_provider_binary_matches_the_python_package():
    assert installer_version("RANDOM_VERSION") == required_version("pulumi-random")


def test_the_cli_wrapper_module_builds_the_pinned_cli():
    go_mod = (PROJECT_DIR / "toolchain" / "pulumi" / "go.mod").read_text()
    cli = installer_version("PULUMI_VERSION")
    assert re.search(rf"github.com/pulumi/pulumi/pkg/v3 {re.escape(cli)}\b", go_mod)
    assert re.search(rf"github.com/pulumi/pulumi/sdk/v3 {re.escape(cli)}\b", go_mod)


def test_every_python_package_is_pinned_exactly():
    for path in ("requirements.txt", "requirements-dev.txt", "constraints.txt"):
        for line in (PROJECT_DIR / path).read_text().splitlines():
            if line and not line.startswith(("#", "-r ")):
                assert re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+-]+", line), f"{path}: {line}"
