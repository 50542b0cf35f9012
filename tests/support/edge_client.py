"""Requests to a deployed stack as its users make them: to its host name, which resolves
to the local cluster's ingress address, over HTTPS verified against the root of the ACME
server that issued the certificate (or over plain HTTP).

    root = acme_root(cluster_bin_dir)
    client = EdgeClient("journal.dev.example.com", root, credential=project.write_credential("dev"))
    status, headers, body = client.request("GET", "/api")

With the stack's write credential, POSTs and DELETEs present it, as the journal page does.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import socket
import subprocess
import ssl
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from localcluster import layout


def acme_root(bin_dir: Path) -> str:
    """The root the local ACME server (Pebble) signs with: it makes one up at every start
    and serves it on its management port, over HTTPS under Pebble's test CA."""
    context = ssl.create_default_context(cafile=str((bin_dir / "pebble-test-ca" / "ca.crt").resolve()))
    with urllib.request.urlopen(layout.ACME_ROOT_URL, context=context, timeout=10) as response:
        return response.read().decode()


class _Connection(http.client.HTTPSConnection):
    """HTTPS to `address`, with the host name in SNI and in the certificate check."""

    def __init__(self, host: str, address: str, context: ssl.SSLContext, timeout: float):
        super().__init__(host, 443, context=context, timeout=timeout)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


#: The requests that need the write credential.
WRITE_METHODS = ("POST", "DELETE")


class EdgeClient:
    def __init__(self, host: str, root_pem: Optional[str], address: str = layout.INGRESS_IP, timeout: float = 5,
                 credential: Optional[str] = None):
        self.host = host
        self.address = address
        self.timeout = timeout
        self.context = ssl.create_default_context(cadata=root_pem) if root_pem else None
        self.credential = credential

    def request(
        self,
        method: str,
        path: str,
        body: Optional[bytes] = None,
        content_type: str = "text/plain",
        https: bool = True,
    ) -> tuple[int, dict[str, str], bytes]:
        if https:
            assert self.context is not None, "HTTPS needs the ACME server's root"
            connection: http.client.HTTPConnection = _Connection(self.host, self.address, self.context, self.timeout)
        else:
            connection = http.client.HTTPConnection(self.address, 80, timeout=self.timeout)
        headers = {"Host": self.host}
        if body is not None:
            headers["Content-Type"] = content_type
        if self.credential and method in WRITE_METHODS:
            headers["Authorization"] = f"Bearer {self.credential}"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def serves_https(self, path: str = "/api/healthz") -> bool:
        """Whether `path` answers 200 over HTTPS with a certificate the root verifies (while
        the controller still presents its default certificate, it does not)."""
        try:
            return self.request("GET", path)[0] == 200
        except (OSError, http.client.HTTPException):
            return False

    @contextmanager
    def _verified_tls(self) -> Iterator[ssl.SSLSocket]:
        """A TLS connection to the edge for the host, its certificate verified by the root."""
        assert self.context is not None, "HTTPS needs the ACME server's root"
        with socket.create_connection((self.address, 443), self.timeout) as sock:
            with self.context.wrap_socket(sock, server_hostname=self.host) as tls:
                yield tls

    def peer_certificate(self) -> dict[str, Any]:
        """The certificate the edge presents for the host, as ssl decodes a verified one."""
        with self._verified_tls() as tls:
            certificate = tls.getpeercert()
        assert certificate is not None, "a verified connection has the peer's certificate"
        return certificate

    def public_key_pin(self) -> str:
        """The base64 SHA-256 of the public key of the certificate the edge presents (which
        the root has just verified): the form Chromium's --ignore-certificate-errors-spki-list
        takes, so a browser trusts exactly this certificate's key and nothing else."""
        with self._verified_tls() as tls:
            der = tls.getpeercert(binary_form=True)
        pem_key = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-pubkey"], input=der, capture_output=True, check=True).stdout
        spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pem_key, capture_output=True, check=True).stdout
        return base64.b64encode(hashlib.sha256(spki).digest()).decode()
