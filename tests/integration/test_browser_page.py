"""The journal page in a real browser: Debian's headless Chromium, driven through
chromedriver (tests/support/browser.py), against a loopback copy of the service.

What runs, all on 127.0.0.1:

- a real redis-server master, started by the launch script (tests/support/redis_nodes.py);
- the real API, `python -m journal_api`, reading and writing that master
  (tests/integration/test_journal_api.py's `Api`);
- Debian's nginx, unprivileged as in tests/integration/test_fileserver_page.py, with a small
  test-only config standing in for the Ingress: `/api` goes to the API, everything
  else is images/fileserver/site, served with the shipped config's headers.

The browser reaches it as http://journal.test:<port>/, a made-up name that its
`--host-resolver-rules` maps to 127.0.0.1; every other name fails to resolve, so
nothing leaves the machine. `browser.exercise_journal_page` holds the checks that do not
depend on this setup, for a run against a real ingress, e.g.:

    with Browser({"journal.dev.example.com": "10.96.0.80"}) as browser:
        exercise_journal_page(browser, "http://journal.dev.example.com/", credential)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from support.browser import (CHROMEDRIVER, CHROMIUM, PNG_SIGNATURE, WAIT, Browser, WebDriverError, add_entry,
                             exercise_journal_page, use_credential, wait_for_list)
from components.fileserver import NGINX_USER_ID
from support.loopback import free_port
from support.redis_nodes import RedisNodes, require_binaries, wait_for
from support.file_server import CONFIG, SITE, FileServer, require_nginx
from support.journal_api_process import Api

pytestmark = pytest.mark.browser

HOST = "journal.test"
# --- the loopback service ------------------------------------------------------------------


@dataclass
class FrontServer(FileServer):
    """nginx as the Ingress and the file server in one: /api to the API, the rest the site."""

    api_port: int = 0

    def prepare(self) -> None:
        self.port = free_port()
        site = self.workdir / "site"  # a copy, readable by the nginx uid (see FileServer)
        shutil.copytree(SITE, site, dirs_exist_ok=True)
        headers = "\n".join(line for line in CONFIG.read_text().splitlines()
                            if line.strip().startswith("add_header"))
        temp_paths = "\n".join(f"    {module}_temp_path {self.tmp}/{module}_temp;"
                               for module in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.config.write_text(f"""\
worker_processes 1;
daemon off;
pid {self.tmp}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    charset utf-8;
    charset_types text/css application/javascript;
    log_format host '$host "$request" $status';
    access_log /dev/stdout host;
{temp_paths}
    server {{
        listen 127.0.0.1:{self.port};
        root {site};
        location /api {{
            proxy_pass http://127.0.0.1:{self.api_port};
        }}
        location / {{
{headers}
            try_files $uri $uri/ =404;
        }}
    }}
}}
""")
        self.config.chmod(0o644)


def require_chromium() -> None:
    """Fail (never skip) when the browser or its driver is missing."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: install them with "
                    "`apt-get install -y --no-install-recommends chromium chromium-driver`", pytrace=False)


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisNodes]:
    require_binaries()
    with RedisNodes(replicas=0) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def api(redis: RedisNodes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with Api(tmp_path_factory.mktemp("api"), redis.password_file, [redis.secret], write_host="127.0.0.1",
             read_host="127.0.0.1", redis_port=redis.master.port) as api:
        yield api


@pytest.fixture(scope="module")
def front(api: Api) -> Iterator[FrontServer]:
    nginx = require_nginx()
    # Not pytest's tmp_path: its parents are owner-only, closed to the nginx uid.
    workdir = Path(tempfile.mkdtemp(prefix="journal-front-"))
    server = FrontServer(nginx, workdir, api_port=api.port)
    try:
        workdir.chmod(0o755)
        server.tmp.mkdir(mode=0o700)
        server.log.touch(mode=0o600)
        if os.geteuid() == 0:
            for owned in (server.tmp, server.log):  # the log: behind /dev/stdout, which nginx reopens
                os.chown(owned, NGINX_USER_ID, NGINX_USER_ID)
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    require_chromium()
    with Browser({HOST: "127.0.0.1"}, log=tmp_path_factory.mktemp("browser") / "chromedriver.log") as browser:
        yield browser


@pytest.fixture
def base_url(front: FrontServer) -> str:
    return f"http://{HOST}:{front.port}/"


# --- tests ---------------------------------------------------------------------------------


def test_the_page_lists_the_stored_entries_newest_first(browser: Browser, redis: RedisNodes, api: Api,
                                                        front: FrontServer, base_url: str) -> None:
    redis.master.cli("DEL", "journal:entries", "journal:next-id")
    browser.open(base_url)
    assert wait_for_list(browser) == [] and browser.texts("#empty") == ["No entries yet."]

    stored = [api.post_text(text)["text"] for text in ("Stored before the page loaded", "And a second one")]
    browser.open(base_url)
    assert wait_for_list(browser) == stored[::-1]
    assert browser.texts("h1") == ["Journal"]
    # The browser came through the made-up name, for the page and for the API.
    # (nginx logs a request once it has answered it: the wait is for that moment.)
    for request in ('"GET / HTTP/1.1" 200', '"GET /app.js HTTP/1.1" 200', '"GET /api HTTP/1.1" 200'):
        wait_for(f"{HOST} {request} in nginx's log", lambda: f"{HOST} {request}" in front.log.read_text())


def test_entries_added_in_the_form_are_listed_and_html_stays_text(browser: Browser, api: Api, base_url: str,
                                                                  tmp_path: Path) -> None:
    exercise_journal_page(browser, base_url, api.write_credential.reveal())
    screenshot = browser.screenshot(tmp_path / "journal-page.png")
    print(f"screenshot: {screenshot}")
    png = screenshot.read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (1000, 800)


def test_no_other_name_resolves_not_even_localhost_or_an_address(browser: Browser, front: FrontServer) -> None:
    for host in ("localhost", "127.0.0.1", "journal.example"):
        with pytest.raises(WebDriverError, match="ERR_NAME_NOT_RESOLVED"):
            browser.open(f"http://{host}:{front.port}/")


def stored_texts(redis: RedisNodes) -> list[str]:
    return [json.loads(member)["text"] for member in
            redis.master.cli("ZRANGE", "journal:entries", "0", "-1").stdout.split("\n") if member]


def test_without_the_right_credential_the_page_reads_but_writes_nothing_and_says_why(
        browser: Browser, redis: RedisNodes, api: Api, base_url: str) -> None:
    api.post_text("Readable by anyone")
    browser.open(base_url)
    browser.click(browser.find("#forget-credential"))
    assert "Readable by anyone" in wait_for_list(browser)
    before = stored_texts(redis)

    browser.type(browser.find("#entry-text"), "Not from a writer")
    browser.click(browser.find("#add-entry"))
    browser.wait_until(lambda: browser.texts("#status.error") == ["Not saved: paste the write credential first."],
                       WAIT, "the page to ask for the credential")

    use_credential(browser, "not-the-credential")
    browser.click(browser.find("#add-entry"))
    browser.wait_until(lambda: any("the write credential was refused" in text
                                   for text in browser.texts("#status.error")), WAIT, "the page to show the 401")
    (shown,) = browser.texts("#status.error")
    assert shown.startswith("Not saved: the write credential was refused (the write credential is wrong"), shown
    browser.click(browser.find("#entries > li .delete"))
    browser.wait_until(lambda: any(text.startswith("Not deleted: the write credential was refused")
                                   for text in browser.texts("#status.error")), WAIT, "the page to show the 401")
    assert stored_texts(redis) == before


def test_a_writer_deletes_an_entry_and_the_credential_stays_in_this_tab_only(
        browser: Browser, redis: RedisNodes, api: Api, front: FrontServer, base_url: str) -> None:
    credential = api.write_credential.reveal()
    browser.open(base_url)
    wait_for_list(browser)
    use_credential(browser, credential)
    text = f"To be deleted ({os.urandom(4).hex()})"
    add_entry(browser, text)
    browser.click(browser.find("#entries > li .delete"))
    browser.wait_until(lambda: browser.texts("#status") == ["Deleted."], WAIT, "'Deleted.'")
    assert text not in stored_texts(redis)

    browser.open(base_url)
    wait_for_list(browser)
    assert browser.script("return document.getElementById('credential').value;") == credential
    assert browser.script("return [sessionStorage.length, localStorage.length, location.href];") == [1, 0, base_url]
    assert credential not in front.log.read_text(), "the credential reached a URL"
