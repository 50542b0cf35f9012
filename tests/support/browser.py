"""A small W3C WebDriver client for Debian's headless Chromium, with no dependency.

It starts `chromedriver` on a free loopback port and speaks its JSON-over-HTTP
protocol with urllib. Chromium gets a throwaway profile and HOME, and flags that
keep it from contacting anything the test does not name:

- `--host-resolver-rules` maps each host the caller names to an address and every
  other host to NOTFOUND: no DNS query is ever sent, and a connection to any other
  host, even an address written out (http://127.0.0.1/), fails in the resolver, so
  a background fetch that the flags below miss never gets a packet off the machine;
- `--no-proxy-server`: direct connections only, no proxy settings, no WPAD lookup;
- the rest turn off the background services (component and extension updates,
  sync, Safe Browsing, metrics, translation, optimization hints, network time,
  Cast/DIAL discovery, which multicasts to an address rather than a name) so that
  they do not even try.

(Under strace the only other address in a connect() is 2001:4860:4860::8888, port
443, on a UDP socket: Chromium's IPv6 reachability probe, which asks the kernel for
a route and sends nothing.)
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, TypeVar

from localcluster import polling
from support.loopback import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference
VIEWPORT = (1000, 800)
START_TIMEOUT = 20.0  # chromedriver answering /status
SESSION_TIMEOUT = 60.0  # Chromium starting, on a busy machine
COMMAND_TIMEOUT = 30.0  # any other command
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=%d,%d" % VIEWPORT, "--lang=en-US",
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
    "--disable-component-extensions-with-background-pages", "--disable-client-side-phishing-detection",
    "--disable-domain-reliability", "--disable-crash-reporter", "--metrics-recording-only",
    "--no-pings", "--password-store=basic", "--no-proxy-server", "--media-router=0",
    "--disable-features=" + ",".join([
        "Translate", "OptimizationHints", "MediaRouter", "DialMediaRouteProvider",
        "InterestFeedContentSuggestions", "CertificateTransparencyComponentUpdater",
        "AutofillServerCommunication", "PrivacySandboxSettings4", "NetworkTimeServiceQuerying",
    ]),
]

T = TypeVar("T")


class WebDriverError(Exception):
    """A command chromedriver refused, with its error code and message."""


def resolver_rules(hosts: Mapping[str, str]) -> str:
    """`MAP <host> <ip>` for each named host, then `MAP * ~NOTFOUND` for every other name."""
    return ", ".join([*(f"MAP {host} {ip}" for host, ip in hosts.items()), "MAP * ~NOTFOUND"])


class Browser:
    """One headless Chromium session; `hosts` maps the only names it may resolve to addresses."""

    def __init__(self, hosts: Mapping[str, str], log: Optional[Path] = None, trusted_keys: Sequence[str] = ()) -> None:
        """`log`: where chromedriver's log is kept (by default, removed with the profile).
        `trusted_keys`: base64 SHA-256 hashes of the only certificate keys Chromium accepts
        beyond its own roots (a certificate from a test ACME server)."""
        self.home = Path(tempfile.mkdtemp(prefix="journal-browser-"))
        self.log = Path(log) if log else self.home / "chromedriver.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.session: Optional[str] = None
        try:
            self._start_driver()
            args = [*CHROMIUM_FLAGS, f"--host-resolver-rules={resolver_rules(hosts)}",
                    f"--user-data-dir={self.home / 'profile'}"]
            if trusted_keys:
                args.append(f"--ignore-certificate-errors-spki-list={','.join(trusted_keys)}")
            capabilities = {"browserName": "chrome", "unhandledPromptBehavior": "ignore",
                            "timeouts": {"pageLoad": 20000, "script": 10000, "implicit": 0},
                            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}
            try:
                answer = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}},
                                    timeout=SESSION_TIMEOUT)
            except WebDriverError as error:
                raise WebDriverError(f"{error}\nchromedriver's log:\n{self.log_text()[-4000:]}") from None
            self.session = answer["sessionId"]
            self._size_viewport(*VIEWPORT)
        except BaseException:
            self.close()
            raise

    def _size_viewport(self, width: int, height: int) -> None:
        """Grow the window so that the page, not the window, is `width` x `height`
        (headless Chromium takes some of --window-size for a make-believe toolbar)."""
        inner = self._command("POST", "/execute/sync", {"script": "return [innerWidth, innerHeight];", "args": []})
        outer = self._command("GET", "/window/rect")
        self._command("POST", "/window/rect", {"width": outer["width"] + width - inner[0],
                                               "height": outer["height"] + height - inner[1]})

    def _start_driver(self) -> None:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "TZ": "UTC", "LANG": "C.UTF-8"}
        for _attempt in range(3):
            self.port = free_port()
            with open(self.log, "ab") as log:
                self.proc = proc = subprocess.Popen(
                    [CHROMEDRIVER, f"--port={self.port}", f"--log-path={self.log}"], env=env,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            end = time.monotonic() + START_TIMEOUT
            while proc.poll() is None and time.monotonic() < end:
                with contextlib.suppress(OSError, ValueError, WebDriverError):
                    if self._call("GET", "/status", timeout=2)["ready"]:
                        return
                time.sleep(0.05)
            if proc.poll() is None:
                raise WebDriverError(f"chromedriver not ready within {START_TIMEOUT} s:\n{self.log_text()}")
        assert self.proc is not None
        raise WebDriverError(f"chromedriver exited with {self.proc.returncode}:\n{self.log_text()}")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              timeout: float = COMMAND_TIMEOUT) -> Any:
        """One command; returns its `value` (JSON shaped as the command defines it), or
        raises with chromedriver's error and message."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as failure:
            try:
                value = json.loads(failure.read())["value"]
                error, message = value["error"], value["message"]
            except (ValueError, KeyError, TypeError):
                error, message = f"HTTP {failure.code}", failure.reason
            detail = message if str(message).startswith(error) else f"{error}: {message}"
            raise WebDriverError(f"{method} {path}: {detail}") from None

    def _command(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self.session is not None, "the session is closed"
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, url: str) -> None:
        self._command("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        """The reference of the first element matching `css` (no waiting)."""
        return self._command("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def type(self, element: str, text: str) -> None:
        self._command("POST", f"/element/{element}/value", {"text": text})

    def clear(self, element: str) -> None:
        self._command("POST", f"/element/{element}/clear", {})

    def click(self, element: str) -> None:
        self._command("POST", f"/element/{element}/click", {})

    def text(self, element: str) -> str:
        """The element's rendered text, as a user sees it."""
        return self._command("GET", f"/element/{element}/text")

    def script(self, script: str, *args: Any) -> Any:
        """What `script` (a function body, its arguments in `arguments`) returns in the page."""
        return self._command("POST", "/execute/sync", {"script": script, "args": list(args)})

    def texts(self, css: str) -> list[str]:
        """The rendered text of every element matching `css`, read in one step (the page
        may replace its elements between two commands)."""
        return self.script("return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText);", css)

    def alert_text(self) -> Optional[str]:
        """The text of an open alert, confirm or prompt; None when there is none."""
        try:
            return self._command("GET", "/alert/text")
        except WebDriverError as error:
            if "no such alert" in str(error):
                return None
            raise

    def wait_until(self, predicate: Callable[[], T], timeout: float, what: str) -> T:
        """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
        return polling.wait_for(what, predicate, timeout, interval=0.1)

    def screenshot(self, path: Path) -> Path:
        """A PNG of the viewport."""
        Path(path).write_bytes(base64.b64decode(self._command("GET", "/screenshot")))
        return Path(path)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def close(self) -> None:
        """End the session, then chromedriver's whole process group (Chromium with it)."""
        try:
            if self.session is not None:
                with contextlib.suppress(OSError, WebDriverError):
                    self._call("DELETE", f"/session/{self.session}", timeout=10)
                self.session = None
        finally:
            if self.proc is not None:
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, sig)  # stragglers too, after chromedriver exits
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(timeout=5)
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the journal page's checks, for any base URL ---------------------------------------

#: Longest wait for the page to show something (it needs one or two API calls).
WAIT = 10.0
#: An entry that would add a <b> and an <img> if the page ever wrote entries as HTML.
HTML_LOOKING = "<b>bold</b><img src=x onerror=alert(1)>"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def wait_for_list(browser: Browser, timeout: float = WAIT) -> list[str]:
    """Wait until the page has shown what GET /api returned; the text of each entry."""

    def shown() -> bool:
        errors = browser.texts("#status.error")
        assert not errors, f"the page shows an error: {errors[0]}"
        return bool(browser.texts("#entries > li") or browser.texts("#empty:not([hidden])"))

    browser.wait_until(shown, timeout, "the page to list the entries (or say there are none)")
    return browser.texts("#entries > li .text")


def use_credential(browser: Browser, credential: str) -> None:
    """Paste `credential` into the page's write credential field, as a writer does."""
    field = browser.find("#credential")
    browser.clear(field)
    browser.type(field, credential)


def add_entry(browser: Browser, text: str, timeout: float = WAIT) -> None:
    """Type `text` in the form, click "Add entry", wait until it heads the list."""
    browser.type(browser.find("#entry-text"), text)
    browser.click(browser.find("#add-entry"))
    browser.wait_until(lambda: browser.texts("#entries > li .text")[:1] == [text]
                       and browser.texts("#status") == ["Saved."],
                       timeout, f"{text!r} at the top of the list and 'Saved.'")


def assert_no_html_from_entries(browser: Browser) -> None:
    assert browser.texts("#entries b, #entries img") == [], "an entry's text was written as HTML"
    assert browser.alert_text() is None, "a script from an entry ran"


def exercise_journal_page(browser: Browser, base_url: str, credential: str, timeout: float = WAIT) -> None:
    """The page at `base_url` loads its list, adds an entry from the form with the write
    `credential` pasted in, shows an HTML-looking entry as plain text, and lists both,
    newest first, once reloaded.

    Leaves its two entries in the journal. Every wait is bounded by `timeout`.
    """
    plain = f"Written in the browser test ({os.urandom(4).hex()})"
    browser.open(base_url)
    wait_for_list(browser, timeout)

    use_credential(browser, credential)
    add_entry(browser, plain, timeout)
    add_entry(browser, HTML_LOOKING, timeout)
    assert browser.texts("#entries > li .text")[:2] == [HTML_LOOKING, plain]
    assert browser.texts("#entries > li")[0].startswith(HTML_LOOKING + "\n"), "then its date and Delete"
    assert_no_html_from_entries(browser)

    # Reloaded, the list comes from GET /api alone (which may read a replica that lags).
    def reloaded() -> bool:
        browser.open(base_url)
        return wait_for_list(browser, timeout)[:2] == [HTML_LOOKING, plain]

    browser.wait_until(reloaded, timeout, "both entries, newest first, after a reload")
    assert_no_html_from_entries(browser)
    assert browser.texts("#status") == [""]


