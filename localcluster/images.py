"""The container images of the local cluster, built on this machine and never pulled.

Two kinds:
- Debian images: a `debootstrap --variant=minbase` root file system of Debian 12 with the
  packages an image needs, trimmed, with the project's own files added (the journal API,
  the web page), under exactly the names the stack files use, so `Pulumi.dev.yaml` and
  `Pulumi.prod.yaml` deploy unchanged.
- Scratch images: one static binary built by toolchain/install-kubernetes.sh (pause,
  CoreDNS, Traefik) and nothing else.

Each image is written as a one-layer docker-archive tar (what `ctr images import` reads)
into ${JOURNAL_IAC_TOOLS:-~/.cache/journal-iac/tools}/images/, named by a hash of every
input that decides its content (the definition, the files added, the binary, the Debian
suite and mirror). An image whose inputs did not change is not built again. Within one
build the tar is reproducible: entries sorted, times clamped, owners numeric.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

PROJECT_DIR = Path(__file__).resolve().parent.parent
TOOLS_DIR = Path(os.environ.get("JOURNAL_IAC_TOOLS") or Path.home() / ".cache" / "journal-iac" / "tools")
IMAGES_DIR = TOOLS_DIR / "images"
DEBIAN_SUITE = "bookworm"
# Every file in every layer gets this time: the same inputs give the same bytes.
EPOCH = 0
# Bumped when the way images are assembled changes, so old tars are not reused.
BUILDER_REVISION = "1"

# Where the documentation, manuals and package caches of a Debian root go: nowhere.
TRIMMED = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/common-licenses",
    "var/cache/apt",
    "var/cache/debconf",
    "var/lib/apt/lists",
    "var/log",
)


@dataclass(frozen=True)
class Account:
    """A user and its group of the same id, created or renumbered in the image."""

    name: str
    uid: int
    home: str = "/nonexistent"


@dataclass(frozen=True)
class DebianImage:
    key: str
    names: tuple[str, ...]
    packages: tuple[str, ...]
    # Upstream versions the Debian packages must carry: the image names promise them.
    versions: tuple[tuple[str, str], ...]
    user: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    accounts: tuple[Account, ...] = ()
    # (path in the project, path in the image): a file, or a directory copied whole.
    files: tuple[tuple[str, str], ...] = ()
    env: tuple[str, ...] = ()
    workdir: str = "/"
    ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class ScratchImage:
    key: str
    names: tuple[str, ...]
    binary: str
    user: str
    entrypoint: tuple[str, ...]
    ports: tuple[int, ...] = ()


Image = DebianImage | ScratchImage

# The names the stack files use for the journal's own images (frontendImage,
# fileserverImage), and the images the stacks name by default.
JOURNAL_API_IMAGE = "registry.example.com/journal/api:v1.0.1-bfeda01f"
# The same image under a second release tag: a stack can be moved to a new tag and
# roll its pods, as a release does.
JOURNAL_API_NEXT_IMAGE = "registry.example.com/journal/api:v1.0.2-5c0a9e2d"
FILESERVER_IMAGES = (
    "registry.example.com/journal/static:v1.0.1-bfeda01f",
    "docker.io/nginxinc/nginx-unprivileged:1.27.4-alpine3.21",
)
REDIS_IMAGE = "docker.io/library/redis:7.0.15-bookworm"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1"
COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.12.1"
TRAEFIK_IMAGE = "docker.io/library/traefik:v3.6.12"
CERT_MANAGER_VERSION = "v1.21.2"
CERT_MANAGER_COMMANDS = ("controller", "webhook", "acmesolver")
PEBBLE_IMAGE = "ghcr.io/letsencrypt/pebble:v2.10.3"


def cert_manager_image(command: str) -> str:
    return f"quay.io/jetstack/cert-manager-{command}:{CERT_MANAGER_VERSION}"


IMAGES: tuple[Image, ...] = (
    DebianImage(
        key="redis",
        names=(REDIS_IMAGE,),
        packages=("redis-server",),
        versions=(("redis-server", "7.0.15"),),
        # The official image's redis user is 999:999; the StatefulSet runs as that uid.
        accounts=(Account("redis", 999, "/data"),),
        user="999:999",
        entrypoint=(),
        cmd=("redis-server",),
        workdir="/data",
        ports=(6379,),
    ),
    DebianImage(
        key="fileserver",
        names=FILESERVER_IMAGES,
        packages=("nginx",),
        versions=(("nginx", "1.22.1"),),
        # uid 101, as in nginxinc/nginx-unprivileged, which the file server settings name.
        accounts=(Account("nginx", 101),),
        files=(("images/fileserver/nginx.conf", "etc/nginx/nginx.conf"), ("images/fileserver/site", "usr/share/journal/site")),
        user="101:101",
        # -e: nginx opens its compiled-in error log before reading the config; on a
        # read-only root that is a failed open and an alert on every start.
        entrypoint=("/usr/sbin/nginx", "-e", "stderr", "-c", "/etc/nginx/nginx.conf"),
        ports=(8080,),
    ),
    DebianImage(
        key="journal-api",
        names=(JOURNAL_API_IMAGE, JOURNAL_API_NEXT_IMAGE),
        packages=("python3", "python3-redis"),
        versions=(("python3", "3.11"), ("python3-redis", "4.3.4")),
        accounts=(Account("journal", 10001),),
        files=(("images/journal-api/journal_api", "opt/journal/journal_api"),),
        user="10001:10001",
        entrypoint=("python3", "-m", "journal_api"),
        # Nothing is written to the read-only root: no bytecode caches.
        env=("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"),
        workdir="/opt/journal",
        ports=(8080,),
    ),
    ScratchImage(key="pause", names=(PAUSE_IMAGE,), binary="pause", user="65535:65535", entrypoint=("/pause",)),
    ScratchImage(
        key="coredns", names=(COREDNS_IMAGE,), binary="coredns", user="65532:65532", entrypoint=("/coredns",), ports=(53,)
    ),
    ScratchImage(
        key="traefik", names=(TRAEFIK_IMAGE,), binary="traefik", user="65532:65532", entrypoint=("/traefik",), ports=(80, 443)
    ),
    # uid 1000, as localcluster/cert-manager.yaml runs them; the solver image's user is what
    # its pods run as, since cert-manager sets runAsNonRoot on them without a uid.
    *(
        ScratchImage(
            key=f"cert-manager-{command}",
            names=(cert_manager_image(command),),
            binary=f"cert-manager-{command}",
            user="1000:1000",
            entrypoint=(f"/cert-manager-{command}",),
        )
        for command in CERT_MANAGER_COMMANDS
    ),
    ScratchImage(key="pebble", names=(PEBBLE_IMAGE,), binary="pebble", user="65532:65532", entrypoint=("/pebble",), ports=(14000, 15000)),
)


def base_of(image: Image, name: str) -> DebianImage:
    """`image`'s Debian packages and accounts, without the project's files or a command:
    the base its Containerfile builds on."""
    assert isinstance(image, DebianImage)
    return replace(image, key=f"base-{image.key}", names=(name,), files=(), entrypoint=(), cmd=(), env=(), ports=(), workdir="/")


# The bases of the Containerfiles in images/, by directory (localcluster/release.py).
BASE_IMAGES = {
    directory: base_of(next(image for image in IMAGES if image.key == directory), name)
    for directory, name in (
        ("journal-api", "registry.example.com/journal/python-base:3.11-bookworm"),
        ("fileserver", "registry.example.com/journal/nginx-base:1.22.1-bookworm"),
    )
}


class ImageBuildError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


# --- inputs ------------------------------------------------------------------------


def debian_mirror() -> str:
    """The Debian mirror this host's apt uses for the suite (deb822 or one-line sources)."""
    candidates = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]
    for path in candidates:
        if not path.is_file():
            continue
        text = path.read_text()
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
            if uris and suites and DEBIAN_SUITE in suites.group(1).split() and "security" not in uris.group(1):
                return uris.group(1)
        for line in text.splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[0] == "deb" and fields[2] == DEBIAN_SUITE:
                return fields[1]
    raise ImageBuildError(f"no Debian {DEBIAN_SUITE} mirror in this host's apt sources")


def project_files(source: str) -> Iterator[Path]:
    path = PROJECT_DIR / source
    if not path.exists():
        raise ImageBuildError(f"{source} is missing: the image needs it")
    if path.is_file():
        yield path
        return
    for item in sorted(path.rglob("*")):
        if item.is_file() and "__pycache__" not in item.parts:
            yield item


def input_hash(image: Image, bin_dir: Path) -> str:
    digest = hashlib.sha256()
    digest.update(BUILDER_REVISION.encode())
    digest.update(repr(image).encode())
    if isinstance(image, DebianImage):
        digest.update(debian_mirror().encode())
        for source, _ in image.files:
            for path in project_files(source):
                digest.update(str(path.relative_to(PROJECT_DIR)).encode())
                digest.update(path.read_bytes())
    else:
        digest.update((bin_dir / image.binary).resolve().read_bytes())
    return digest.hexdigest()[:16]


def archive_path(image: Image, bin_dir: Path) -> Path:
    return IMAGES_DIR / f"{image.key}-{input_hash(image, bin_dir)}.tar"


# --- root file systems ---------------------------------------------------------------


def debian_root(image: DebianImage, rootfs: Path) -> dict[str, str]:
    """Bootstraps `rootfs` with the image's packages; returns their installed versions."""
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is needed to build the Debian images (apt-get install debootstrap)")
    debs = IMAGES_DIR / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    command = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(image.packages)}",
        f"--cache-dir={debs}",
        DEBIAN_SUITE,
        str(rootfs),
        debian_mirror(),
    ]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    unmount_below(rootfs)
    if result.returncode != 0:
        raise ImageBuildError(f"debootstrap failed for {image.key}:\n{result.stdout[-3000:]}")
    versions = {}
    for package, upstream in image.versions:
        installed = subprocess.run(
            ["chroot", str(rootfs), "dpkg-query", "-W", "-f", "${Version}", package],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ).stdout.strip()
        # Debian versions read [epoch:]upstream-revision.
        if not re.fullmatch(rf"(\d+:)?{re.escape(upstream)}([.~+-].*)?", installed):
            raise ImageBuildError(f"{image.key}: Debian's {package} is {installed!r}, the image promises {upstream}")
        versions[package] = installed
    for account in image.accounts:
        set_account(rootfs, account)
    for source, destination in image.files:
        target = rootfs / destination
        target.parent.mkdir(parents=True, exist_ok=True)
        path = PROJECT_DIR / source
        if path.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copyfile(path, target)
    for trimmed in TRIMMED:
        for path in (rootfs / trimmed).glob("*"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    return versions


def unmount_below(rootfs: Path) -> None:
    """debootstrap mounts /proc and /sys in the target while it installs, and a failed
    run can leave them there: nothing of the host may end up in an image."""
    prefix = str(rootfs.resolve()) + "/"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mountpoint in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mountpoint], check=False)


def set_account(rootfs: Path, account: Account) -> None:
    """Creates the user and group, or renumbers the ones a package's scripts created
    (and the files they own), so the image's ids are the ones the pods run as."""
    entries = {
        "passwd": f"{account.name}:x:{account.uid}:{account.uid}::{account.home}:/usr/sbin/nologin",
        "group": f"{account.name}:x:{account.uid}:",
        "shadow": f"{account.name}:!:0:0:99999:7:::",
        "gshadow": f"{account.name}:!::",
    }
    old_ids: dict[str, int] = {}
    for table, entry in entries.items():
        path = rootfs / "etc" / table
        kept = []
        for row in path.read_text().splitlines():
            fields = row.split(":")
            if fields[0] == account.name:
                if table in ("passwd", "group"):
                    old_ids[table] = int(fields[2])
            elif table in ("passwd", "group") and int(fields[2]) == account.uid:
                raise ImageBuildError(f"id {account.uid} is taken by {fields[0]} in /etc/{table}")
            else:
                kept.append(row)
        path.write_text("\n".join(kept + [entry]) + "\n")
    old_uid, old_gid = old_ids.get("passwd"), old_ids.get("group")
    if old_uid is None and old_gid is None:
        return
    for path in [rootfs, *rootfs.rglob("*")]:
        stat = path.lstat()
        if stat.st_uid == old_uid or stat.st_gid == old_gid:
            os.lchown(
                path,
                account.uid if stat.st_uid == old_uid else stat.st_uid,
                account.uid if stat.st_gid == old_gid else stat.st_gid,
            )


# --- docker-archive ------------------------------------------------------------------


def normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = EPOCH
    info.uname = info.gname = ""
    return info


# Mount points: the runtime mounts its own file systems there; their contents stay out.
MOUNT_POINTS = ("dev", "proc", "sys", "run")


def layer_members(rootfs: Path) -> Iterator[tuple[str, str]]:
    """(path on disk, name in the layer) for every entry of `rootfs`, sorted."""
    for directory, subdirs, files in os.walk(rootfs):
        subdirs.sort()
        relative = Path(directory).relative_to(rootfs)
        if relative.parts:
            yield directory, str(relative)
        if relative.parts and relative.parts[0] in MOUNT_POINTS:
            subdirs.clear()
            continue
        # os.walk lists symbolic links to directories among the subdirectories and does
        # not descend into them: they are entries of their own.
        links = [name for name in subdirs if os.path.islink(os.path.join(directory, name))]
        for name in sorted(files + links):
            yield os.path.join(directory, name), str(relative / name)


def write_layer(rootfs: Path, layer: Path) -> str:
    """A tar of `rootfs`; returns its sha256, the layer's diff id."""
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
        for path, name in layer_members(rootfs):
            tar.add(path, arcname=name, recursive=False, filter=normalized)
    return file_sha256(layer)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def image_config(image: Image, diff_id: str, labels: dict[str, str]) -> bytes:
    config: dict[str, object] = {"User": image.user, "Labels": labels}
    if image.entrypoint:
        config["Entrypoint"] = list(image.entrypoint)
    if isinstance(image, DebianImage):
        if image.cmd:
            config["Cmd"] = list(image.cmd)
        config["Env"] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", *image.env]
        config["WorkingDir"] = image.workdir
    if image.ports:
        config["ExposedPorts"] = {f"{port}/tcp": {} for port in image.ports}
    document = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"journal-iac localcluster images: {image.key}"}],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def write_archive(image: Image, layer: Path, diff_id: str, labels: dict[str, str], archive: Path) -> None:
    config = image_config(image, diff_id, labels)
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": list(image.names), "Layers": [f"{diff_id}/layer.tar"]}],
        separators=(",", ":"),
    ).encode()
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:

        def add_bytes(name: str, data: bytes) -> None:
            info = normalized(tarfile.TarInfo(name))
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))

        directory = normalized(tarfile.TarInfo(diff_id))
        directory.type = tarfile.DIRTYPE
        directory.mode = 0o755
        tar.addfile(directory)
        with open(layer, "rb") as handle:
            info = normalized(tarfile.TarInfo(f"{diff_id}/layer.tar"))
            info.size = layer.stat().st_size
            info.mode = 0o644
            tar.addfile(info, handle)
        add_bytes(config_name, config)
        add_bytes("manifest.json", manifest)


def scratch_root(image: ScratchImage, rootfs: Path, bin_dir: Path) -> None:
    binary = (bin_dir / image.binary).resolve()
    target = rootfs / image.binary
    shutil.copyfile(binary, target)
    os.chmod(target, 0o755)
    # An empty, world-writable /tmp: some programs want one even with a read-only root.
    (rootfs / "tmp").mkdir(mode=0o1777)
    os.chmod(rootfs / "tmp", 0o1777)


def build(image: Image, bin_dir: Path) -> Path:
    """The image's docker-archive tar, built unless one with the same inputs exists."""
    archive = archive_path(image, bin_dir)
    if archive.exists():
        return archive
    started = time.monotonic()
    log(f"building {image.key} ({', '.join(image.names)}) ...")
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".build-{image.key}-", dir=IMAGES_DIR))
    try:
        rootfs = work / "rootfs"
        rootfs.mkdir()
        labels = {"org.opencontainers.image.title": image.key}
        if isinstance(image, DebianImage):
            versions = debian_root(image, rootfs)
            labels["io.journal-iac.debian-packages"] = ",".join(f"{name}={version}" for name, version in sorted(versions.items()))
        else:
            scratch_root(image, rootfs, bin_dir)
        layer = work / "layer.tar"
        diff_id = write_layer(rootfs, layer)
        partial = work / "image.tar"
        write_archive(image, layer, diff_id, labels, partial)
        # Older builds of the same image are superseded.
        for old in IMAGES_DIR.glob(f"{image.key}-*.tar"):
            old.unlink()
        os.replace(partial, archive)
    finally:
        unmount_below(work)
        shutil.rmtree(work, ignore_errors=True)
    log(f"built {image.key} in {time.monotonic() - started:.0f}s: {archive.stat().st_size / 1e6:.0f} MB")
    return archive


def build_all(bin_dir: Path, which: tuple[Image, ...] = IMAGES) -> list[tuple[Image, Path]]:
    """Every image (or those named), built where needed, under a lock (parallel runs
    build once, and none clears another's build as stale)."""
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    with open(IMAGES_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in IMAGES_DIR.glob(".build-*"):
            unmount_below(stale)
            shutil.rmtree(stale, ignore_errors=True)
        return [(image, build(image, bin_dir)) for image in which]
