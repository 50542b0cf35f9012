"""The file server: images/fileserver/nginx.conf on Debian's real nginx, serving images/fileserver/site.

nginx runs as the pod's uid (components/fileserver.py), when the tests run as root (through setpriv),
and as the current user otherwise. It runs a temporary copy of the shipped config
with three rewrites, each checked to have happened:

- `listen 8080` becomes `listen 127.0.0.1:<free port>`: a fixed port may be taken,
  and the tests listen on loopback only;
- `root /usr/share/journal/site` becomes the repository's images/fileserver/site;
- `/tmp/` becomes a private directory owned by that uid, standing in for the pod's
  /tmp emptyDir: the host's /tmp is shared with everything else on the machine,
  where a pid file or temp directories of ours could collide or be left behind.

Everything else, the mime.types include, the headers, the logs to stdout and
stderr, is the shipped file. The page itself is checked statically: a browser test
is another module's job.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator, Optional

import pytest

from components.fileserver import NGINX_USER_ID
from support.file_server import CONFIG, SITE, FileServer, Page, require_nginx, unprivileged
from support.redis_nodes import COMMAND_TIMEOUT, base_env

pytestmark = pytest.mark.fileserver

@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are owner-only, closed to the nginx uid.
    path = Path(tempfile.mkdtemp(prefix="journal-fileserver-"))
    try:
        path.chmod(0o755)
        (path / "tmp").mkdir(mode=0o700)
        (path / "nginx.log").touch(mode=0o600)
        if os.geteuid() == 0:
            # The stand-in /tmp, and the file behind /dev/stdout, which nginx reopens.
            for owned in (path / "tmp", path / "nginx.log"):
                os.chown(owned, NGINX_USER_ID, NGINX_USER_ID)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def server(workdir: Path) -> Iterator[FileServer]:
    server = FileServer(require_nginx(), workdir)
    try:
        yield server.start()
    finally:
        server.stop()


# --- nginx ----------------------------------------------------------------------------------


def test_the_config_passes_nginx_t_as_the_unprivileged_user(workdir: Path) -> None:
    check = FileServer(require_nginx(), workdir)
    check.prepare()
    # nginx reopens /dev/stdout (the access log) by name, which this uid may do only
    # for a file of its own, not for a pipe of ours: stdout goes to the log file.
    with open(check.log, "a") as log:
        result = subprocess.run(check.command("-t"), env=base_env(), stdout=log, stderr=subprocess.PIPE,
                                text=True, timeout=COMMAND_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert not re.search(r"\[(warn|error|crit|alert|emerg)\]", result.stderr), result.stderr


def test_the_page_is_served_at_the_root_with_the_security_headers(server: FileServer) -> None:
    page = server.get("/")
    assert page.status == 200
    assert page.body == (SITE / "index.html").read_bytes()
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Server"] == "nginx", "server_tokens off hides the version"
    header_policy = directives(page.headers["Content-Security-Policy"])
    meta_policy = directives(parse_page().meta_policy)
    assert header_policy == {**meta_policy, "frame-ancestors": "'none'"}


def test_the_script_and_stylesheet_are_served_with_their_types(server: FileServer) -> None:
    for path, content_type in (("/app.js", "application/javascript; charset=utf-8"),
                               ("/style.css", "text/css; charset=utf-8")):
        page = server.get(path)
        assert (page.status, page.headers["Content-Type"]) == (200, content_type), path
        assert page.body == (SITE / path.lstrip("/")).read_bytes()
        assert page.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/nowhere", "/api", "/nginx.conf", "/site/index.html"])
def test_an_unknown_path_is_404_with_the_security_headers(server: FileServer, path: str) -> None:
    page = server.get(path)
    assert page.status == 404
    assert "Content-Security-Policy" in page.headers
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            # "pid (comm) state ppid ...": comm may contain spaces, so split after ")".
            if entry.name.isdigit() and int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def test_nginx_runs_unprivileged_and_writes_only_under_tmp(server: FileServer) -> None:
    server.get("/")
    expected_uid = str(NGINX_USER_ID if os.geteuid() == 0 else os.geteuid())
    pids = [server.proc.pid, *children(server.proc.pid)]
    assert len(pids) > 1, "a master and its workers"
    for pid in pids:
        uids = re.search(r"^Uid:\s+(.*)$", Path(f"/proc/{pid}/status").read_text(), re.M).group(1).split()
        assert set(uids) == {expected_uid}, (pid, uids)
    assert (server.tmp / "nginx.pid").read_text().strip() == str(server.proc.pid)
    assert (server.tmp / "client_temp").is_dir()


def test_the_shipped_config_keeps_every_writable_path_under_tmp() -> None:
    text = re.sub(r"#.*", "", CONFIG.read_text())
    directives_used = {line.split()[0]: line.split(None, 1)[1].rstrip(";").strip()
                       for line in text.splitlines() if line.strip() and not line.strip().endswith(("{", "}"))}
    assert "user" not in directives_used, "a non-root master cannot switch users"
    assert directives_used["pid"] == "/tmp/nginx.pid"
    assert directives_used["daemon"] == "off"
    assert directives_used["listen"] == "8080"
    assert directives_used["server_tokens"] == "off"
    assert directives_used["error_log"].split()[0] == "stderr"
    assert directives_used["access_log"] in ("/dev/stdout", "off")
    for module in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        assert directives_used[f"{module}_temp_path"].startswith("/tmp/"), module


# --- the page, statically ----------------------------------------------------------------------


class PageStructure(HTMLParser):
    """What the tests need to know of index.html."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: dict[str, tuple[str, dict]] = {}  # id -> (tag, attributes)
        self.scripts: list[Optional[str]] = []
        self.inline: list[tuple] = []  # inline scripts, styles and event handlers
        self.urls: list[str] = []
        self.meta_policy = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if "id" in attributes:
            self.elements[attributes["id"]] = (tag, attributes)
        if tag == "script":
            self.scripts.append(attributes.get("src"))
        if tag == "style" or "style" in attributes or any(name.startswith("on") for name in attributes):
            self.inline.append((tag, attributes))
        self.urls += [attributes[name] for name in ("src", "href", "action") if attributes.get(name)]
        if tag == "meta" and (attributes.get("http-equiv") or "").lower() == "content-security-policy":
            self.meta_policy = attributes.get("content") or ""

    def handle_data(self, data: str) -> None:
        if self.lasttag == "script" and data.strip():
            self.inline.append(("script", data.strip()[:40]))


def parse_page() -> PageStructure:
    page = PageStructure()
    page.feed((SITE / "index.html").read_text())
    page.close()
    return page


def directives(policy: str) -> dict[str, str]:
    return {name: value.strip() for name, _, value in
            (part.strip().partition(" ") for part in policy.split(";") if part.strip())}


def test_the_page_has_the_list_the_form_and_the_status_the_script_uses() -> None:
    page = parse_page()
    assert page.elements["entries"][0] == "ul"
    tag, textarea = page.elements["entry-text"]
    assert (tag, textarea.get("name")) == ("textarea", "text")
    tag, button = page.elements["add-entry"]
    assert (tag, button.get("type")) == ("button", "submit")
    assert page.elements["status"][1].get("role") == "status"
    script = (SITE / "app.js").read_text()
    for element_id in ("entries", "entry-text", "add-entry", "status"):
        assert f'getElementById("{element_id}")' in script


def test_the_page_loads_only_its_own_files_under_a_self_only_policy() -> None:
    page = parse_page()
    assert directives(page.meta_policy)["default-src"] == "'self'"
    assert page.inline == [], "the policy forbids inline scripts, styles and handlers"
    assert page.scripts == ["app.js"]
    for url in page.urls:
        assert not re.match(r"^([a-z][a-z0-9+.-]*:|//)", url, re.I), f"{url} is not a file of the site"
        assert (SITE / url).is_file(), url
    for path in SITE.iterdir():
        for outside in ("http:", "https:", "@import", "url("):
            assert outside not in path.read_text(), f"{path.name} refers to {outside}..."


def test_the_script_never_writes_html() -> None:
    """Entries are untrusted: they reach the page through textContent only."""
    code = (SITE / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "createContextualFragment", "srcdoc", "DOMParser"):
        assert sink not in code, f"app.js uses {sink}"
    assert "textContent = String(entry.text)" in code
