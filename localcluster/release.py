"""The journal's images as a user ships them (`make images`: as root, the cluster running).

For each images/<name>/Containerfile:
1. its base (a Debian root file system built here, localcluster/images.py) is pushed to
   the cluster's registry under a tag naming its content, and from then on named only by
   digest;
2. buildah builds the Containerfile FROM that digest, with every time set to 0, so the
   same sources and base give the same image, byte for byte;
3. the image is written to a local OCI layout first: that fixes its digest before
   anything is pushed, so a tag already naming another digest is refused (tags never
   move) and one naming this digest means there is nothing to push;
4. skopeo pushes it, tagged v<images/VERSION>-<commit>, byte for byte as written;
5. syft writes its SBOM (SPDX JSON) from the same layout.

The digests are recorded in the registry's directory (RECORD) and printed, with the line
that points a stack at each.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import ClusterError, cluster, commands, images
from .layout import PATHS, PROJECT_DIR, REGISTRY_HOST, REGISTRY_USER

#: Where the record of the last push is, beside the registry's storage: it lives and goes
#: with the cluster, as the registry does.
RECORD = PATHS.registry / "pushed.json"
#: Each image's repository, and the stack setting that names it.
REPOSITORIES = {"journal-api": ("journal/api", "frontendImage"), "fileserver": ("journal/static", "fileserverImage")}
#: buildah's own storage, outside the cluster: it survives `down`, and the bases in it are
#: not imported again.
BUILDAH_ROOT = images.IMAGES_DIR / "buildah"
BUILDAH_RUNROOT = Path("/run/journal-iac-buildah")
OCI_DIR = images.IMAGES_DIR / "oci"
SBOM_DIR = images.IMAGES_DIR / "sbom"
MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


class ReleaseError(ClusterError):
    pass


@dataclass(frozen=True)
class Pushed:
    name: str
    tag: str
    digest: str
    base: str
    sbom: str
    new: bool

    @property
    def reference(self) -> str:
        return f"{REGISTRY_HOST}/{REPOSITORIES[self.name][0]}@{self.digest}"


def log(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


def version() -> str:
    text = (PROJECT_DIR / "images" / "VERSION").read_text().strip()
    if not re.fullmatch(r"\d+\.\d+\.\d+", text):
        raise ReleaseError(f"images/VERSION must be X.Y.Z, not {text!r}")
    return text


def source_files(directory: Path) -> list[Path]:
    """The files of an image's build context, as its .containerignore leaves them."""
    return sorted(p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def release_tag() -> str:
    """v<VERSION>-<commit>; from a tree whose images/ differs from its commit, with
    `-dirty-<hash of those sources>` after it, so the tag still names one content."""
    git = ["git", "-C", str(PROJECT_DIR)]
    commit = subprocess.run([*git, "rev-parse", "--short=8", "HEAD"], capture_output=True, text=True)
    if commit.returncode != 0:
        raise ReleaseError("the images are tagged with their commit: run this in a git clone")
    tag = f"v{version()}-{commit.stdout.strip()}"
    changed = subprocess.run([*git, "status", "--porcelain", "--", "images"], capture_output=True, text=True)
    if changed.returncode != 0:
        raise ReleaseError(f"git status failed: {changed.stderr.strip()}")
    if changed.stdout.strip():
        digest = hashlib.sha256()
        for path in source_files(PROJECT_DIR / "images"):
            digest.update(str(path.relative_to(PROJECT_DIR)).encode() + b"\0" + path.read_bytes())
        tag += f"-dirty-{digest.hexdigest()[:8]}"
    return tag


class Registry:
    """The cluster's registry as the host's tools see it: its CA, and the credential in
    files only root may read (never on a command line)."""

    def __init__(self, work: Path):
        if not PATHS.registry_password.exists():
            raise ReleaseError("the running cluster has no registry (it was started by an older version): restart it")
        password = PATHS.registry_password.read_text().strip()
        self.work = work
        self.cert_dir = work / "certs"
        self.cert_dir.mkdir(mode=0o700)
        shutil.copyfile(PATHS.pki / "ca.crt", self.cert_dir / "ca.crt")
        self.authfile = work / "auth.json"
        token = base64.b64encode(f"{REGISTRY_USER}:{password}".encode()).decode()
        self.authfile.touch(mode=0o600)
        self.authfile.write_text(json.dumps({"auths": {REGISTRY_HOST: {"auth": token}}}))
        self._authorization = f"Basic {token}"
        self._context = ssl.create_default_context(cafile=str(PATHS.pki / "ca.crt"))

    @property
    def options(self) -> list[str]:
        return [f"--authfile={self.authfile}", f"--cert-dir={self.cert_dir}"]

    def tagged(self, repository: str, tag: str) -> str | None:
        """The digest `tag` names in `repository`, or None when there is no such tag."""
        request = urllib.request.Request(
            f"https://{REGISTRY_HOST}/v2/{repository}/manifests/{tag}",
            method="HEAD",
            headers={"Authorization": self._authorization, "Accept": MANIFEST_TYPES},
        )
        try:
            with urllib.request.urlopen(request, context=self._context, timeout=10) as response:
                digest = response.headers["Docker-Content-Digest"]
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise ReleaseError(f"the registry answered {error.code} for {repository}:{tag}") from None
        except OSError as error:
            raise ReleaseError(f"the registry at {REGISTRY_HOST} did not answer: {error}") from None
        # Without it, "no such tag" and "a tag we cannot read" would look alike.
        if not digest:
            raise ReleaseError(f"the registry named no digest for {repository}:{tag}")
        return digest


def buildah(*args: str) -> subprocess.CompletedProcess[str]:
    return commands.run(
        "buildah", f"--root={BUILDAH_ROOT}", f"--runroot={BUILDAH_RUNROOT}", "--storage-driver=vfs", *args
    )


def write_layout(image: str, layout: Path) -> str:
    """`image` (in buildah's storage) as an OCI layout, gzip-compressed as it will be
    pushed; returns its manifest's digest."""
    shutil.rmtree(layout, ignore_errors=True)
    layout.parent.mkdir(parents=True, exist_ok=True)
    digest_file = layout.with_suffix(".digest")
    buildah("push", f"--digestfile={digest_file}", image, f"oci:{layout}")
    return digest_file.read_text().strip()


def push(registry: Registry, layout: Path, digest: str, repository: str, tag: str, remedy: str) -> bool:
    """Pushes the layout as `repository:tag`; False when the tag already names it.
    Refused, saying `remedy`, when the tag names anything else."""
    current = registry.tagged(repository, tag)
    if current == digest:
        return False
    if current is not None:
        raise ReleaseError(
            f"{REGISTRY_HOST}/{repository}:{tag} already names {current}, and this build is {digest}: "
            f"a tag never moves ({remedy})"
        )
    pushed_file = layout.with_suffix(".pushed")
    commands.run(
        "skopeo", "copy", "--quiet", "--preserve-digests", f"--dest-authfile={registry.authfile}",
        f"--dest-cert-dir={registry.cert_dir}", f"--digestfile={pushed_file}",
        f"oci:{layout}", f"docker://{REGISTRY_HOST}/{repository}:{tag}",
    )  # fmt: skip
    if pushed_file.read_text().strip() != digest:
        raise ReleaseError(f"{repository}:{tag} was pushed as {pushed_file.read_text().strip()}, not as written ({digest})")
    return True


def push_base(registry: Registry, name: str, bin_dir: Path) -> str:
    """The base of images/<name>, pushed; returns its reference by digest."""
    base = images.BASE_IMAGES[name]
    ((_, archive),) = images.build_all(bin_dir, (base,))
    repository, version_tag = base.names[0].removeprefix(f"{REGISTRY_HOST}/").split(":")
    tag = f"{version_tag}-{images.file_sha256(archive)[:12]}"
    local = f"{REGISTRY_HOST}/{repository}:{tag}"
    if buildah("images", "--quiet", "--filter", f"reference={local}").stdout.strip() == "":
        buildah("pull", "--quiet", f"docker-archive:{archive}")
        buildah("tag", base.names[0], local)
    layout = OCI_DIR / base.key
    digest = write_layout(local, layout)
    # The tag names the root file system; the digest also depends on how buildah packs it.
    if push(registry, layout, digest, repository, tag, "the same base packed anew: a new buildah? start a new cluster"):
        log(f"pushed {local} ({digest})")
    return f"{REGISTRY_HOST}/{repository}@{digest}"


def release(registry: Registry, name: str, base: str, tag: str, syft: Path) -> Pushed:
    repository, _ = REPOSITORIES[name]
    if not re.fullmatch(rf"{re.escape(REGISTRY_HOST)}/[a-z0-9/._-]+@sha256:[0-9a-f]{{64}}", base):
        raise ReleaseError(f"the base of {name} must be named by digest, not {base!r}")
    local = f"localhost/journal-build/{name}:{tag}"
    context = build_context(registry.work / name, PROJECT_DIR / "images" / name)
    buildah(
        "bud", "--quiet", "--timestamp=0", "--layers=false", "--format=oci", "--pull-always", *registry.options,
        f"--build-arg=BASE={base}", f"--tag={local}", f"--file={context / 'Containerfile'}", str(context),
    )  # fmt: skip
    layout = OCI_DIR / name
    try:
        digest = write_layout(local, layout)
    finally:
        # The layout holds it now: buildah's storage keeps only the bases.
        buildah("rmi", local)
    new = push(registry, layout, digest, repository, tag, "commit the change, or raise images/VERSION")
    sbom = SBOM_DIR / f"{name}-{digest.removeprefix('sha256:')[:12]}.spdx.json"
    if not sbom.exists():
        sbom.parent.mkdir(parents=True, exist_ok=True)
        write_sbom(syft, layout, sbom)
    return Pushed(name, tag, digest, base, str(sbom), new)


def build_context(copy: Path, source: Path) -> Path:
    """The context as the clone holds it, every file 0644 and directory 0755: COPY keeps
    modes, and a checkout under another umask would otherwise give another digest."""
    for path in source_files(source):
        target = copy / path.relative_to(source)
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        target.chmod(0o644)
    for directory in [copy, *(p for p in copy.rglob("*") if p.is_dir())]:
        directory.chmod(0o755)
    return copy


def write_sbom(syft: Path, layout: Path, sbom: Path) -> None:
    partial = sbom.with_suffix(".partial")
    # No update check: syft would ask the internet for its latest version.
    commands.run(str(syft), "scan", "--quiet", f"oci-dir:{layout}", f"--output=spdx-json={partial}",
                 env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"})
    os.replace(partial, sbom)


@contextmanager
def credentials() -> Iterator[Registry]:
    """The registry's credential and CA in a work directory beside the registry (root
    only, and gone with the cluster even if this process is killed)."""
    PATHS.registry.mkdir(mode=0o700, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".release-", dir=PATHS.registry))
    try:
        yield Registry(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def release_all() -> list[Pushed]:
    cluster.require_root()
    if not cluster.is_running():
        raise ReleaseError("the images are pushed to the local cluster's registry: start it first (make up, or scripts/cluster.sh up)")
    bin_dir = cluster.tools()
    syft = cluster.tools("install-image-tools.sh") / "syft"
    tag = release_tag()
    pushed = []
    images.IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    # One release at a time: two would rewrite each other's layouts.
    with open(images.IMAGES_DIR / ".release-lock", "w") as lock, credentials() as registry:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in REPOSITORIES:
            base = push_base(registry, name, bin_dir)
            pushed.append(release(registry, name, base, tag, syft))
    staged = RECORD.with_suffix(".partial")
    staged.write_text(json.dumps({p.name: p.__dict__ | {"reference": p.reference} for p in pushed}, indent=2) + "\n")
    os.replace(staged, RECORD)
    return pushed


def main() -> int:
    try:
        pushed = release_all()
    except (ClusterError, commands.CommandFailed, images.ImageBuildError, OSError) as error:
        print(f"images: {error}", file=sys.stderr)
        return 1
    for image in pushed:
        print(f"{image.reference}  {image.tag}  {'pushed' if image.new else 'already in the registry'}  SBOM {image.sbom}")
    print(f"recorded in {RECORD}; a stack takes them with:")
    for image in pushed:
        print(f"  pulumi config set {REPOSITORIES[image.name][1]} {image.reference}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
