"""A small Kubernetes API client on Python's standard library: JSON over HTTPS with a
client certificate, enough for the cluster's own waits and its volume provisioner."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

# A Kubernetes object, or a list of them, as its JSON decodes.
Object = dict[str, Any]


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status


class Api:
    def __init__(self, server: str, ca: Path, certificate: Path, key: Path, timeout: float = 10.0):
        self.server = server.rstrip("/")
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=str(ca))
        self.context.load_cert_chain(str(certificate), str(key))

    def request(self, method: str, path: str, body: Object | None = None, content_type: str = "application/json") -> Object:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("message", detail)
            except ValueError:
                pass
            raise ApiError(error.code, detail) from None
        return json.loads(payload) if payload else {}

    def get(self, path: str) -> Object:
        return self.request("GET", path)

    def create(self, path: str, body: Object) -> Object:
        return self.request("POST", path, body)

    def delete(self, path: str) -> Object:
        return self.request("DELETE", path)

    def healthy(self, path: str = "/readyz") -> bool:
        request = urllib.request.Request(self.server + path)
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=self.timeout) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False
