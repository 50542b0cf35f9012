"""A real Kubernetes API server on loopback, for tests: etcd plus kube-apiserver, built by
toolchain/install-kubernetes.sh, with no nodes, no controller manager and no scheduler.

It is enough to see what a cluster's control plane does with an object: OpenAPI and
field validation, defaulting, and admission (the default admission plugins, Pod Security
Admission among them). Nothing runs: a Deployment stays a Deployment, no pod is created.

    with running_apiserver() as server:
        status, warnings = server.create(manifest)
        stored = server.read(manifest)

Everything lives in one temporary directory (etcd's data, certificates, keys, the token
file, logs) and on free loopback ports; stop() kills both process groups and removes the
directory, also when starting failed half-way.

The client side is Python's standard library only (urllib with an ssl context that trusts
the generated CA); certificates and keys are made with the `openssl` command.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from localcluster import commands
from support.kubectl import Manifest, has_condition
from support.loopback import free_port

PROJECT_DIR = Path(__file__).resolve().parents[2]
INSTALLER = PROJECT_DIR / "toolchain" / "install-kubernetes.sh"

# An address range for the API server's own ClusterIP allocator; nothing is contacted.
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "journal-admin"
# Members of system:masters pass every authorization check, whatever the RBAC rules.
ADMIN_GROUP = "system:masters"


class StartError(RuntimeError):
    """etcd or kube-apiserver did not come up; the message ends with the tail of its log."""


def install() -> Path:
    """The bin dir holding `etcd` and `kube-apiserver`, built first if needed (a no-op
    that takes well under a second once they are built)."""
    if shutil.which("openssl") is None:
        raise StartError("the openssl command is needed to make the API server's certificates (apt-get install openssl)")
    try:
        result = subprocess.run([str(INSTALLER)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    except OSError as error:
        raise StartError(f"cannot run {INSTALLER}: {error}") from error
    if result.returncode != 0:
        raise StartError(
            f"{INSTALLER.relative_to(PROJECT_DIR)} failed (exit {result.returncode}); run it by hand to see the build:\n"
            + result.stderr[-4000:]
        )
    return Path(result.stdout.strip())


def parse_warnings(values: list[str]) -> list[str]:
    """The texts of HTTP `Warning` headers (RFC 9111: `299 - "text"`, quotes and
    backslashes escaped), which is how the API server reports warnings."""
    texts = []
    for value in values:
        for match in re.finditer(r'\d{3} \S+ "((?:[^"\\]|\\.)*)"', value):
            texts.append(re.sub(r"\\(.)", r"\1", match.group(1)))
    return texts


def wire_form(value: object) -> object:
    """`value` as JSON the API server decodes into its typed fields: whole floats become
    integers. (Values that went through Pulumi's RPC layer carry every number as a
    float, 6379.0; the Kubernetes provider sends them as integers, and so does this.)"""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: wire_form(item) for key, item in value.items()}
    if isinstance(value, list):
        return [wire_form(item) for item in value]
    return value


class Response(tuple[int, list[str]]):
    """(status, warnings), as create() returns it; `.body` is the decoded response."""

    # The answer's JSON as it decodes, or its text when it is not JSON.
    body: Any

    def __new__(cls, status: int, warnings: list[str], body: object) -> Response:
        response = super().__new__(cls, (status, warnings))
        response.body = body
        return response

    @property
    def status(self) -> int:
        return self[0]

    @property
    def warnings(self) -> list[str]:
        return self[1]

    def error(self) -> str:
        """The API server's reason and message for a failed request."""
        if isinstance(self.body, dict) and self.body.get("kind") == "Status":
            return f"{self.status} {self.body.get('reason')}: {self.body.get('message')}"
        return f"{self.status}: {self.body!r}"


class KubeAPIServer:
    """etcd and kube-apiserver, started by start() and removed by stop()."""

    def __init__(self, bin_dir: Path, extra_args: tuple[str, ...] = ()):
        """`extra_args`: more kube-apiserver flags (the fleet's shorter eviction timeouts)."""
        self.bin_dir = Path(bin_dir)
        self.extra_args = extra_args
        self.workdir: Optional[Path] = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.url = ""
        self.token = ""
        self._opener: Optional[urllib.request.OpenerDirector] = None
        self._resources: dict[str, dict[str, tuple[str, bool]]] = {}

    # --- lifecycle -------------------------------------------------------------------

    def start(self, timeout: float = 90.0, attempts: int = 3) -> "KubeAPIServer":
        """Starts etcd and the API server and waits until /readyz answers ok, for at most
        `timeout` seconds per attempt. A port taken between choosing and binding it
        starts over on new ports, up to `attempts` times."""
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(timeout)
                return self
            except StartError as error:
                self.stop()
                if attempt == attempts or "address already in use" not in str(error):
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stops every process group it started, the last first (SIGTERM, then SIGKILL),
        and removes the temp dir."""
        for name in reversed(list(self.processes)):
            commands.stop(self.processes.pop(name), signal.SIGTERM, grace=10.0)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self._resources.clear()

    def __enter__(self) -> "KubeAPIServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _start_once(self, timeout: float) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="journal-iac-apiserver-"))
        etcd_client, etcd_peer, secure_port = free_port(), free_port(), free_port()
        self._make_credentials()
        self.spawn(
            "etcd",
            [
                "--name=test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=test=http://127.0.0.1:{etcd_peer}",
                "--initial-cluster-state=new",
                # A throwaway store: no fsync keeps writes fast on a busy machine.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        tls = self.workdir / "tls"
        self.spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={secure_port}",
                f"--tls-cert-file={tls / 'serving.crt'}",
                f"--tls-private-key-file={tls / 'serving.key'}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                # RBAC as on a real cluster; the admin's group bypasses it.
                "--authorization-mode=RBAC",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={tls / 'service-account.pub'}",
                f"--service-account-signing-key-file={tls / 'service-account.key'}",
                # As kubeadm sets it: a privileged container is then judged by Pod
                # Security Admission, not refused by validation before admission.
                "--allow-privileged=true",
                "--profiling=false",
                *self.extra_args,
            ],
        )
        self.url = f"https://127.0.0.1:{secure_port}"
        context = ssl.create_default_context(cafile=str(tls / "ca.crt"))
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),  # loopback only, whatever *_proxy says
            urllib.request.HTTPSHandler(context=context),
        )
        self._wait_ready(timeout)

    def _make_credentials(self) -> None:
        """A CA, a serving certificate for 127.0.0.1 signed by it, the service-account
        signing key (and its public half, which verifies tokens) and a token file with
        one admin, all in the temp dir."""
        assert self.workdir is not None
        tls = self.workdir / "tls"
        tls.mkdir(mode=0o700)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _openssl(tls, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
                 "-subj", "/CN=journal-iac test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        _openssl(tls, "req", "-new", *ec, "-keyout", "serving.key", "-out", "serving.csr", "-subj", "/CN=kube-apiserver")
        (tls / "serving.ext").write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "authorityKeyIdentifier=keyid\n"
            "subjectKeyIdentifier=hash\n"
        )
        _openssl(tls, "x509", "-req", "-in", "serving.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial",
                 str(secrets.randbits(63)), "-days", "2", "-extfile", "serving.ext", "-out", "serving.crt")
        _openssl(tls, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", "service-account.key")
        _openssl(tls, "pkey", "-in", "service-account.key", "-pubout", "-out", "service-account.pub")
        self.token = secrets.token_urlsafe(32)
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.token},{ADMIN_USER},{ADMIN_USER},"{ADMIN_GROUP}"\n')
        tokens.chmod(0o600)

    def spawn(self, name: str, args: list[str], binary: Optional[str] = None) -> None:
        """Starts `binary` (by default `name`) from the bin dir in a process group of its
        own, its output in <name>.log of the temp dir; stop() stops it."""
        assert self.workdir is not None
        log = open(self.workdir / f"{name}.log", "wb")
        with log:
            self.processes[name] = subprocess.Popen(
                [str(self.bin_dir / (binary or name)), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,  # its own process group, killed as one in stop()
            )

    def log_tail(self, name: str, lines: int = 30) -> str:
        if self.workdir is None or not (self.workdir / f"{name}.log").exists():
            return ""
        text = (self.workdir / f"{name}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise StartError(f"{name} exited with {process.returncode} while starting:\n{self.log_tail(name)}")
            try:
                response = self.request("GET", "/readyz", timeout=5)
                if response.status == 200:
                    return
                last = f"/readyz answered {response.status}: {response.body!r}"[:2000]
            except (OSError, urllib.error.URLError) as error:
                last = f"/readyz: {error}"
            time.sleep(0.25)
        raise StartError(
            f"kube-apiserver was not ready after {timeout:.0f}s ({last})\n"
            f"kube-apiserver log:\n{self.log_tail('kube-apiserver')}\netcd log:\n{self.log_tail('etcd')}"
        )

    # --- requests ----------------------------------------------------------------------

    def request(self, method: str, path: str, body: object = None, timeout: float = 30) -> Response:
        """One authenticated request; any HTTP status comes back as a Response (never an
        exception), with the texts of its Warning headers and the decoded body."""
        assert self._opener is not None, "start() the server first"
        data = None if body is None else json.dumps(wire_form(body)).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/json",
                **({"Content-Type": "application/json"} if data is not None else {}),
            },
        )
        try:
            with self._opener.open(request, timeout=timeout) as reply:
                status, headers, raw = reply.status, reply.headers, reply.read()
        except urllib.error.HTTPError as error:
            status, headers, raw = error.code, error.headers, error.read()
        try:
            decoded: object = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode(errors="replace")
        return Response(status, parse_warnings(headers.get_all("Warning") or []), decoded)

    def version(self) -> Manifest:
        response = self.request("GET", "/version")
        assert response.status == 200, response.error()
        return response.body

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural resource name, namespaced) of `kind` in `api_version`, from the API
        server's discovery document for that group version."""
        if api_version not in self._resources:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            response = self.request("GET", path)
            if response.status != 200:
                raise LookupError(f"discovery of {api_version} failed: {response.error()}")
            self._resources[api_version] = {
                item["kind"]: (item["name"], item["namespaced"])
                for item in response.body["resources"]
                if "/" not in item["name"]  # subresources such as deployments/scale
            }
        try:
            return self._resources[api_version][kind]
        except KeyError:
            raise LookupError(f"the API server serves no {kind} in {api_version}") from None

    def collection_path(self, manifest: Manifest) -> str:
        """The URL path of the collection `manifest` is created in."""
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        plural, namespaced = self.resource(api_version, kind)
        prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if namespaced:
            namespace = manifest["metadata"].get("namespace") or "default"
            return f"{prefix}/namespaces/{namespace}/{plural}"
        return f"{prefix}/{plural}"

    def create(self, manifest: Manifest) -> Response:
        """POSTs `manifest` to its collection (for real, not a dry run): (status,
        warnings), with the server's answer in `.body`. A field the schema does not know
        is refused, not dropped (fieldValidation=Strict), for built-in and custom kinds."""
        return self.request("POST", self.collection_path(manifest) + "?fieldValidation=Strict", manifest)

    def install_crds(self, *names: str, timeout: float = 30) -> None:
        """Creates the CustomResourceDefinitions in the bin dir's `names` directories
        (cert-manager-crds, gateway-api-crds) and waits until each kind is served."""
        import yaml

        crds = [
            document
            for name in names
            for path in sorted((self.bin_dir / name).resolve().glob("*.yaml"))
            for document in yaml.safe_load_all(path.read_text())
            if document
        ]
        for crd in crds:
            response = self.create(crd)
            assert response.status == 201, f"{crd['metadata']['name']}: {response.error()}"
        deadline = time.monotonic() + timeout
        for crd in crds:
            path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
            while not has_condition(self.request("GET", path).body, "Established"):
                if time.monotonic() > deadline:
                    raise StartError(f"{crd['metadata']['name']} was not established after {timeout:.0f}s")
                time.sleep(0.1)
        self._resources.clear()

    def read(self, manifest: Manifest) -> Response:
        """Reads back the object `manifest` names."""
        return self.request("GET", f"{self.collection_path(manifest)}/{manifest['metadata']['name']}")


@contextmanager
def running_apiserver(timeout: float = 90.0) -> Iterator[KubeAPIServer]:
    """Builds the binaries if needed, starts etcd and kube-apiserver, yields the server
    and stops it again, whatever happens in between."""
    server = KubeAPIServer(install())
    try:
        server.start(timeout=timeout)
        yield server
    finally:
        server.stop()


def secret_data(manifest: Manifest) -> dict[str, bytes]:
    """A Secret's data as the API server stores it: `data` decoded, `stringData` merged
    over it (the server does the same and keeps only `data`)."""
    data = {key: base64.b64decode(value) for key, value in (manifest.get("data") or {}).items()}
    data.update({key: value.encode() for key, value in (manifest.get("stringData") or {}).items()})
    return data


def _openssl(cwd: Path, *args: str) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        raise StartError(f"openssl {' '.join(args)} failed:\n{result.stderr}")
