"""Two independent scanners on both stacks' manifests, as `scripts/render.sh` writes them:
checkov's Kubernetes checks and kube-score, pinned and installed by
toolchain/install-scanners.sh. Every finding is either fixed in the program or listed, with
its reason, in tests/scanners.yaml; an entry there that matches no finding fails as well, so a
reason cannot outlive what it explains. A pod with known flaws is flagged by each, and
each is shown to have read every object, so a scanner that reads nothing cannot pass.

Neither contacts anything: checkov is told to download nothing (no guidelines, no
platform mappings, no update check), and both run behind a proxy address on loopback that
nothing listens on.
"""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
import yaml

from support.program_mocks import KUBERNETES_VERSION, PROJECT_DIR, STACKS
from support.loopback import free_port
from support.project_copy import copy_project

pytestmark = pytest.mark.scanners

SKIP_FILE = PROJECT_DIR / "tests/scanners.yaml"
# Each scanner reports only on the kinds it has checks for: these kinds of the render.
KINDS_CHECKED = {
    "checkov": {"Deployment", "StatefulSet", "Service", "Ingress", "ConfigMap", "Secret"},
    "kube-score": {"Deployment", "StatefulSet", "Service", "Ingress", "NetworkPolicy", "PodDisruptionBudget"},
}
# kube-score's deprecated-API check holds the objects to the release the project targets.
KUBE_SCORE_KUBERNETES_VERSION = "v" + ".".join(KUBERNETES_VERSION.split(".")[:2])


@dataclass(frozen=True)
class Finding:
    stack: str
    check: str
    obj: str
    """Kind/name."""

    def __str__(self) -> str:
        return f"{self.stack}: {self.check} on {self.obj}"


@dataclass(frozen=True)
class Skip:
    check: str
    reason: str
    objects: Optional[frozenset[str]]
    stacks: Optional[frozenset[str]]

    def explains(self, finding: Finding) -> bool:
        return (
            finding.check == self.check
            and (self.objects is None or finding.obj in self.objects)
            and (self.stacks is None or finding.stack in self.stacks)
        )


def skips(scanner: str) -> list[Skip]:
    entries = yaml.safe_load(SKIP_FILE.read_text())[scanner]
    return [
        Skip(
            check=entry["check"],
            reason=entry["reason"],
            objects=frozenset(entry["objects"]) if "objects" in entry else None,
            stacks=frozenset(entry["stacks"]) if "stacks" in entry else None,
        )
        for entry in entries
    ]


@pytest.fixture(scope="module")
def scanners_bin() -> Path:
    result = subprocess.run([str(PROJECT_DIR / "toolchain" / "install-scanners.sh")], stdout=subprocess.PIPE, text=True)
    assert result.returncode == 0, "toolchain/install-scanners.sh failed (its output is above)"
    return Path(result.stdout.strip())


@pytest.fixture(scope="module")
def offline_env() -> dict[str, str]:
    unreachable = f"http://127.0.0.1:{free_port()}"
    return {
        **os.environ,
        **{name: unreachable for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")},
        "NO_PROXY": "",
        "no_proxy": "",
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
        "BC_SKIP_MAPPING": "TRUE",
    }


@pytest.fixture(scope="module")
def renders(tmp_path_factory) -> dict[str, list[Path]]:
    """Each stack's rendered manifests."""
    project = copy_project(tmp_path_factory.mktemp("project"))
    return {stack: project.manifests(project.render(stack)) for stack in STACKS}


@dataclass(frozen=True)
class Scan:
    findings: set[Finding]
    read: set[str]
    """Kind/name of every object the scanner reported on, flawed or not."""


def checkov(bin_dir: Path, env: dict[str, str], stack: str, manifests: list[Path]) -> Scan:
    # Only the Kubernetes framework: the secrets framework would read the rendered Secret.
    command = [str(bin_dir / "checkov"), "--framework", "kubernetes", "--skip-download", "--compact", "--output", "json"]
    for manifest in manifests:
        command += ["--file", str(manifest)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    # 1 means "failed checks"; anything else is checkov itself failing.
    assert result.returncode in (0, 1), f"checkov exited {result.returncode}: {result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    assert report["summary"]["parsing_errors"] == 0, report["summary"]

    def object_of(check: dict) -> str:
        kind, _namespace, name = check["resource"].split(".", 2)
        return f"{kind}/{name}"

    results = report["results"]
    return Scan(
        findings={Finding(stack, check["check_id"], object_of(check)) for check in results["failed_checks"]},
        read={object_of(check) for check in results["failed_checks"] + results["passed_checks"]},
    )


def kube_score(bin_dir: Path, env: dict[str, str], stack: str, manifests: list[Path]) -> Scan:
    result = subprocess.run(
        [str(bin_dir / "kube-score"), "score", "--kubernetes-version", KUBE_SCORE_KUBERNETES_VERSION,
         "--output-format", "json", *map(str, manifests)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    # 1 means "critical findings"; anything else is kube-score itself failing.
    assert result.returncode in (0, 1), f"kube-score exited {result.returncode}: {result.stderr[-3000:]}"
    findings, read = set(), set()
    for scored in json.loads(result.stdout):
        obj = f"{scored['type_meta']['kind']}/{scored['object_meta']['name']}"
        read.add(obj)
        for check in scored["checks"]:
            # 10 is "all OK"; a check that does not apply (fewer than 2 replicas for a
            # budget, no autoscaler) is skipped.
            if not check["skipped"] and check["grade"] < 10:
                findings.add(Finding(stack, check["check"]["id"], obj))
    return Scan(findings=findings, read=read)


SCANNERS = {"checkov": checkov, "kube-score": kube_score}


@pytest.fixture(scope="module")
def scans(scanners_bin, offline_env, renders) -> dict[str, dict[str, Scan]]:
    """scanner -> stack -> what it found and read."""
    return {
        scanner: {stack: scan(scanners_bin, offline_env, stack, manifests) for stack, manifests in renders.items()}
        for scanner, scan in SCANNERS.items()
    }


def objects_of(manifests: list[Path], kinds: Optional[set[str]] = None) -> set[str]:
    objects = set()
    for path in manifests:
        manifest = yaml.safe_load(path.read_text())
        if kinds is None or manifest["kind"] in kinds:
            objects.add(f"{manifest['kind']}/{manifest['metadata']['name']}")
    return objects


@pytest.mark.parametrize("scanner", SCANNERS)
def test_every_finding_on_either_stack_is_explained_in_the_skip_file(scans, scanner):
    explained = skips(scanner)
    unexplained = [
        str(finding)
        for by_stack in scans[scanner].values()
        for finding in sorted(by_stack.findings, key=str)
        if not any(skip.explains(finding) for skip in explained)
    ]
    assert not unexplained, f"{scanner} findings to fix (or explain in tests/scanners.yaml):\n" + "\n".join(unexplained)


@pytest.mark.parametrize("scanner", SCANNERS)
def test_every_skip_has_a_reason_and_still_explains_a_finding(scans, scanner):
    findings = [finding for by_stack in scans[scanner].values() for finding in by_stack.findings]
    for skip in skips(scanner):
        assert len(skip.reason.split()) >= 5, f"{scanner} skip of {skip.check} gives no real reason"
        assert any(skip.explains(finding) for finding in findings), (
            f"{scanner} no longer reports {skip.check} on what tests/scanners.yaml names: remove the entry"
        )


@pytest.mark.parametrize("scanner", SCANNERS)
def test_each_scanner_reads_every_object_it_has_checks_for(scans, renders, scanner):
    for stack, manifests in renders.items():
        expected = objects_of(manifests, KINDS_CHECKED[scanner])
        assert {"Deployment/frontend", "Deployment/fileserver", "StatefulSet/redis"} <= expected
        # checkov also reports each workload's pod template, as a Pod named after its labels.
        assert expected <= scans[scanner][stack].read, stack


FLAWED_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "flawed", "namespace": "journal-dev"},
    "spec": {
        "containers": [
            {
                "name": "root",
                "image": "registry.example.com/journal/api:v1.0.1-bfeda01f",
                "securityContext": {"privileged": True, "runAsUser": 0},
            }
        ]
    },
}


@pytest.mark.parametrize(
    ("scanner", "privileged_check", "root_check"),
    [
        ("checkov", "CKV_K8S_16", "CKV_K8S_40"),
        ("kube-score", "container-security-context-privileged", "container-security-context-user-group-id"),
    ],
)
def test_a_privileged_root_pod_is_flagged(scanners_bin, offline_env, tmp_path, scanner, privileged_check, root_check):
    manifest = tmp_path / "flawed.yaml"
    manifest.write_text(yaml.safe_dump(FLAWED_POD))
    found = {finding.check for finding in SCANNERS[scanner](scanners_bin, offline_env, "control", [manifest]).findings}
    assert {privileged_check, root_check} <= found, found
