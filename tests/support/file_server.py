"""The file server's shipped nginx.conf on Debian's real nginx, as the nginx uid, serving
the shipped site from a copy, on a loopback port."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.fileserver import NGINX_USER_ID
from localcluster import commands
from support.loopback import free_port
from support.redis_nodes import ROOT, base_env, wait_for

CONFIG = ROOT / "images" / "fileserver" / "nginx.conf"
SITE = ROOT / "images" / "fileserver" / "site"
HTTP_TIMEOUT = 10.0


def require_nginx() -> str:
    """Fail (never skip) when nginx is missing."""
    nginx = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(path, os.X_OK)), None)
    if nginx is None:
        pytest.fail("nginx not found: install it with `apt-get install -y --no-install-recommends nginx-light`",
                    pytrace=False)
    return nginx


def unprivileged() -> list[str]:
    """The command prefix that drops to the nginx uid, when there is one to drop from."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={NGINX_USER_ID}", f"--regid={NGINX_USER_ID}", "--clear-groups"]


def rewrite_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected exactly one {old!r} in {CONFIG.name}"
    return text.replace(old, new)


@dataclass
class FileServer:
    nginx: str
    workdir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def tmp(self) -> Path:
        """The stand-in for the pod's /tmp."""
        return self.workdir / "tmp"

    @property
    def config(self) -> Path:
        return self.workdir / "nginx.conf"

    @property
    def log(self) -> Path:
        return self.workdir / "nginx.log"

    def prepare(self) -> None:
        self.port = free_port()
        text = CONFIG.read_text()
        text = rewrite_once(text, "listen 8080;", f"listen 127.0.0.1:{self.port};")
        assert "/tmp/" in text
        text = text.replace("/tmp/", f"{self.tmp}/")
        # A copy of the site in the world-readable workdir: the clone may sit where the
        # nginx uid cannot go (under /root), or under /tmp, which the line above rewrites.
        site = self.workdir / "site"
        shutil.copytree(SITE, site, dirs_exist_ok=True)
        text = rewrite_once(text, "root /usr/share/journal/site;", f"root {site};")
        self.config.write_text(text)
        self.config.chmod(0o644)

    def command(self, *args: str) -> list[str]:
        # -e stderr: the error log before the config is read (the compiled-in path
        # is not writable by this uid).
        return [*unprivileged(), self.nginx, "-e", "stderr", "-c", str(self.config), *args]

    def start(self) -> "FileServer":
        for _attempt in range(3):
            self.prepare()
            with open(self.log, "a") as log:
                self.proc = proc = subprocess.Popen(self.command(), env=base_env(), stdin=subprocess.DEVNULL,
                                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            wait_for(f"nginx to answer on port {self.port}",
                     lambda: proc.poll() is not None or self._answers())
            if self.proc.poll() is None:
                return self
            if "Address already in use" not in self.log.read_text():
                raise AssertionError(f"nginx exited with {self.proc.returncode}:\n{self.log.read_text()}")
        raise AssertionError("nginx found no free port")

    def _answers(self) -> bool:
        with contextlib.suppress(OSError):
            self.get("/")
            return True
        return False

    def stop(self) -> None:
        if self.proc is not None:
            commands.stop(self.proc, signal.SIGTERM)

    def get(self, path: str, method: str = "GET") -> "Page":
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
        try:
            conn.request(method, path)
            response = conn.getresponse()
            return Page(response.status, response.headers, response.read())
        finally:
            conn.close()


@dataclass(frozen=True)
class Page:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
