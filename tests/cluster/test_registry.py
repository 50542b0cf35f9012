"""The journal's images as users ship them: `make images` builds images/*/Containerfile with
buildah, pushes them to the local cluster's registry (TLS from the cluster's CA, a
password) and records their digests; a stack names them by digest, with the registry's
credential as its pull secret, and the node pulls them. A wrong digest, a registry that
does not answer and a wrong password each fail `up` within its rolloutTimeout, naming
the workload and the pull error."""

from __future__ import annotations

import base64
import json
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from support.deployed_stack import failure_output, names_a_pull_failure
from support.local_cluster import LocalCluster
from components.settings import ImagePullSettings
from support.program_mocks import PROJECT_DIR
from support.project_copy import Project, copy_project
from localcluster import layout, release

pytestmark = pytest.mark.cluster

STACK = "pulled"
NAMESPACE = "journal-pulled"


@dataclass(frozen=True)
class MadeImages:
    output: str
    pushed: dict[str, dict[str, str]]

    def reference(self, name: str) -> str:
        return self.pushed[name]["reference"]


def make_images() -> MadeImages:
    made = subprocess.run(["make", "--no-print-directory", "images"], cwd=PROJECT_DIR, capture_output=True, text=True,
                          timeout=900)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-3000:]
    return MadeImages(made.stdout, json.loads(release.RECORD.read_text()))


def registry_files() -> dict[str, int]:
    storage = layout.PATHS.registry / "storage"
    return {str(path.relative_to(storage)): path.stat().st_mtime_ns for path in storage.rglob("*") if path.is_file()}


def registry_password() -> str:
    return layout.PATHS.registry_password.read_text().strip()


def registry_get(path: str, login: str) -> tuple[int, dict[str, str]]:
    """GET as `login`: "nobody", "a wrong password" or "the registry's user" (the password
    is looked up here, so no failed assertion can print it)."""
    headers = {"Accept": release.MANIFEST_TYPES}
    password = {"nobody": None, "a wrong password": "not-the-password", "the registry's user": registry_password()}[login]
    if password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{layout.REGISTRY_USER}:{password}".encode()).decode()
    request = urllib.request.Request(f"https://{layout.REGISTRY_HOST}{path}", headers=headers)
    context = ssl.create_default_context(cafile=str(layout.PATHS.pki / "ca.crt"))
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def node_images() -> set[str]:
    """Every image reference containerd holds for the kubelet."""
    listed = subprocess.run(
        ["ctr", f"--address={layout.PATHS.containerd_socket}", "--namespace=k8s.io", "images", "ls", "--quiet"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(listed.stdout.split())


def forget_on_node(made: MadeImages) -> None:
    """The pushed images gone from the node, by digest and by release tag (the node's
    imported images of the same names, which other tests run, stay)."""
    pushed = {image["reference"] for image in made.pushed.values()} | {
        f"{layout.REGISTRY_HOST}/{release.REPOSITORIES[name][0]}:{image['tag']}" for name, image in made.pushed.items()
    }
    for reference in pushed & node_images():
        subprocess.run(["ctr", f"--address={layout.PATHS.containerd_socket}", "--namespace=k8s.io", "images", "rm",
                        "--sync", reference], capture_output=True, check=True)


@pytest.fixture(scope="module")
def made(module_cluster: LocalCluster) -> MadeImages:
    return make_images()


@dataclass
class PulledStack:
    project: Project
    cluster: LocalCluster
    images: MadeImages
    on_node_before: set[str]


def pulled_stack_file(project: Project, images: MadeImages) -> None:
    """dev's settings in a namespace of its own, without TLS (no certificate to wait
    for), its two images by digest from the cluster's registry."""
    config = yaml.safe_load(project.stack_files["dev"])["config"]
    for key in ("journal:acmeServer", "journal:acmeCaBundle", "journal:tlsEmail", "journal:host"):
        config.pop(key, None)
    config |= {
        "journal:namespace": NAMESPACE,
        "journal:tlsIssuer": "none",
        "journal:frontendImage": images.reference("journal-api"),
        "journal:fileserverImage": images.reference("fileserver"),
        "journal:imagePullRegistry": layout.REGISTRY_HOST,
        "journal:imagePullUsername": layout.REGISTRY_USER,
    }
    (project.root / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"config": config}))


def set_password(project: Project, password: str) -> None:
    # From stdin: a password in an argument is there for every process to read.
    project.pulumi(STACK, "config", "set", "--secret", "journal:imagePullPassword", input=password)


@pytest.fixture(scope="module")
def pulled(module_cluster: LocalCluster, made: MadeImages, tmp_path_factory) -> Iterator[PulledStack]:
    project = copy_project(tmp_path_factory.mktemp("pulled"), layout.PATHS.admin_kubeconfig)
    pulled_stack_file(project, made)
    set_password(project, registry_password())
    forget_on_node(made)
    before = node_images()
    try:
        project.pulumi(STACK, "up", "--yes", "--skip-preview")
        yield PulledStack(project, module_cluster, made, before)
    finally:
        project.pulumi(STACK, "destroy", "--yes", "--skip-preview", check=False)


# --- make images ---------------------------------------------------------------------


def test_a_second_make_images_builds_the_same_digests_and_pushes_nothing(made):
    before = registry_files()
    again = make_images()
    assert {name: image["digest"] for name, image in again.pushed.items()} == {
        name: image["digest"] for name, image in made.pushed.items()
    }
    assert again.output.count("already in the registry") == 2, again.output
    assert registry_files() == before


def test_each_image_is_tagged_with_the_version_and_commit_and_the_tag_names_its_digest(made):
    commit = subprocess.run(["git", "rev-parse", "--short=8", "HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True,
                            check=True).stdout.strip()
    version = (PROJECT_DIR / "images" / "VERSION").read_text().strip()
    for name, image in made.pushed.items():
        assert re.fullmatch(rf"v{re.escape(version)}-{commit}(-dirty-[0-9a-f]{{8}})?", image["tag"]), image
        repository = release.REPOSITORIES[name][0]
        status, headers = registry_get(f"/v2/{repository}/manifests/{image['tag']}", "the registry's user")
        assert status == 200 and headers["Docker-Content-Digest"] == image["digest"], (status, headers)


def test_the_registry_serves_an_image_only_with_the_password_over_tls_from_the_clusters_ca(made):
    path = f"/v2/journal/api/manifests/{made.pushed['journal-api']['digest']}"
    assert registry_get(path, "nobody")[0] == 401
    assert registry_get(path, "a wrong password")[0] == 401
    assert registry_get(path, "the registry's user")[0] == 200
    # TLS only: a plain HTTP request on its port is turned away.
    with pytest.raises(urllib.error.HTTPError) as plain:
        urllib.request.urlopen(f"http://{layout.REGISTRY_HOST}:443/v2/", timeout=10)
    assert plain.value.code == 400


def test_a_tag_that_names_another_digest_is_refused_and_stays_as_it_was(made):
    api, static = made.pushed["journal-api"], made.pushed["fileserver"]
    with release.credentials() as registry:
        with pytest.raises(release.ReleaseError, match="a tag never moves"):
            release.push(registry, release.OCI_DIR / "fileserver", static["digest"], "journal/api", api["tag"], "a test")
        assert registry.tagged("journal/api", api["tag"]) == api["digest"]


def test_each_image_is_built_from_its_base_by_digest_and_runs_as_its_own_non_root_user(made):
    for name, user in (("journal-api", "10001:10001"), ("fileserver", "101:101")):
        layout_dir = release.OCI_DIR / name
        (entry,) = json.loads((layout_dir / "index.json").read_text())["manifests"]
        manifest = json.loads(blob(layout_dir, entry["digest"]))
        assert entry["digest"] == made.pushed[name]["digest"]
        base = manifest["annotations"]["org.opencontainers.image.base.name"]
        assert base == made.pushed[name]["base"] and "@sha256:" in base
        config = json.loads(blob(layout_dir, manifest["config"]["digest"]))
        assert config["config"]["User"] == user


def blob(layout_dir: Path, digest: str) -> bytes:
    return (layout_dir / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


@pytest.mark.parametrize("name, packages", [("journal-api", {"python3", "python3-redis"}), ("fileserver", {"nginx"})])
def test_each_image_has_an_sbom_listing_its_debian_packages(made, name, packages):
    document = json.loads(Path(made.pushed[name]["sbom"]).read_text())
    assert document["spdxVersion"].startswith("SPDX-")
    listed = {package["name"]: package.get("versionInfo") for package in document["packages"]}
    assert packages <= listed.keys(), sorted(listed)
    assert all(listed[package] for package in packages)


# --- a stack that pulls --------------------------------------------------------------


def test_the_node_had_no_copy_and_pulled_each_image_by_digest_with_the_pull_secret(pulled):
    for name, component in (("journal-api", "frontend"), ("fileserver", "fileserver")):
        reference = pulled.images.reference(name)
        assert reference not in pulled.on_node_before
        (pod,) = pulled.cluster.pods(NAMESPACE, component)
        assert pod["spec"]["imagePullSecrets"] == [{"name": "image-pull"}]
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] and status["imageID"] == reference, status
        events = pulled.cluster.get("events", "-n", NAMESPACE, "--field-selector",
                                    f"involvedObject.name={pod['metadata']['name']},reason=Pulled")["items"]
        assert any(event["message"].startswith("Successfully pulled image") for event in events), events
        assert reference in node_images()


def credential_forms() -> list[str]:
    """The password as the state could hold it: plain, the login's base64, and the whole
    .dockerconfigjson's base64 (a Secret's `data`)."""
    password = registry_password()
    login = ImagePullSettings(layout.REGISTRY_HOST, layout.REGISTRY_USER, password)
    return [
        password,
        base64.b64encode(f"{layout.REGISTRY_USER}:{password}".encode()).decode(),
        base64.b64encode(login.docker_config_json().encode()).decode(),
    ]


def test_the_pull_secret_is_a_dockerconfigjson_secret_and_never_plain_in_state(pulled):
    secret = pulled.cluster.get("secret", "image-pull", "-n", NAMESPACE)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    # The control: the cluster's Secret holds the login, in one of the forms looked for.
    assert base64.b64decode(secret["data"][".dockerconfigjson"]).decode().count(registry_password()) == 1
    exported = pulled.project.pulumi(STACK, "stack", "export").stdout
    leaked = [index for index, form in enumerate(credential_forms()) if form in exported]
    assert leaked == []


def up_must_fail(pulled: PulledStack, *config: str) -> str:
    started = time.monotonic()
    failed = pulled.project.pulumi(
        STACK, "up", "--yes", "--skip-preview", "--config", "journal:rolloutTimeout=30s",
        *(arg for setting in config for arg in ("--config", setting)), check=False,
    )  # fmt: skip
    return failure_output(failed, started)


@contextmanager
def stack_file_restored(pulled: PulledStack) -> Iterator[None]:
    """`up --config` writes its values into the stack's file: they go again after."""
    stack_file = pulled.project.root / f"Pulumi.{STACK}.yaml"
    saved = stack_file.read_text()
    try:
        yield
    finally:
        stack_file.write_text(saved)


def test_a_wrong_digest_and_a_registry_that_does_not_answer_fail_up_naming_the_workload(pulled):
    api = pulled.images.reference("journal-api")
    wrong_digest = api.rsplit("@sha256:", 1)[0] + "@sha256:" + "0" * 64
    # The registry's name at a port nothing listens on: refused at once.
    not_answering = pulled.images.reference("fileserver").replace(layout.REGISTRY_HOST, f"{layout.REGISTRY_HOST}:5000")
    with stack_file_restored(pulled):
        output = up_must_fail(pulled, f"journal:frontendImage={wrong_digest}", f"journal:fileserverImage={not_answering}")
    assert names_a_pull_failure(output, "frontend-deployment"), output[-3000:]
    assert names_a_pull_failure(output, "fileserver-deployment"), output[-3000:]
    # The stack file's values again: the old pods never went, and up converges.
    pulled.project.pulumi(STACK, "up", "--yes", "--skip-preview")


def test_a_wrong_password_fails_up_naming_the_workload_and_the_right_one_converges(pulled):
    # The same image under its tag, which the node has never pulled: the kubelet must
    # log in to pull it.
    api = pulled.images.pushed["journal-api"]
    by_tag = f"{layout.REGISTRY_HOST}/journal/api:{api['tag']}"
    with stack_file_restored(pulled):
        set_password(pulled.project, "not-the-password")
        output = up_must_fail(pulled, f"journal:frontendImage={by_tag}")
        assert names_a_pull_failure(output, "frontend-deployment"), output[-3000:]
        assert "401 Unauthorized" in output, output[-3000:]
        # The right password, the image still by its tag: the kubelet's next try pulls it.
        set_password(pulled.project, registry_password())
        pulled.project.pulumi(STACK, "up", "--yes", "--skip-preview", "--config", "journal:rolloutTimeout=5m")
        (pod,) = pulled.cluster.pods(NAMESPACE, "frontend")
        (status,) = pod["status"]["containerStatuses"]
        assert status["image"] == by_tag and status["imageID"] == api["reference"], status
        events = pulled.cluster.get("events", "-n", NAMESPACE, "--field-selector",
                                    f"involvedObject.name={pod['metadata']['name']},reason=Pulled")["items"]
        assert any(event["message"].startswith(f'Successfully pulled image "{by_tag}"') for event in events), events
    pulled.project.pulumi(STACK, "up", "--yes", "--skip-preview")
