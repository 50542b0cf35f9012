"""Edge: where the outside's requests come in. /api goes to the frontend and everything
else to the file server, either through an Ingress (edge `ingress`) or through a Gateway
API Gateway and HTTPRoute (edge `gateway`). With TLS, the certificate comes from an ACME
server through cert-manager, over HTTP-01 on the same edge.

The cluster provides the ingress or gateway controller and cert-manager; the Edge only
declares what it wants from them.

`up` waits until HTTPS works before it exports the URL: the Issuer until its ACME
account is registered, the Certificate until it is issued, and the Ingress (its address)
or the Gateway (programmed, every listener with its certificate) and the routes
(accepted, backends resolved). The Certificate is declared here rather than left to
cert-manager's ingress or gateway "shim": an object made by the shim is not Pulumi's,
so `up` could not wait for it.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pulumi
import pulumi_kubernetes as k8s

from . import edge_kinds as kinds
from .labels import PartLabels
from .settings import EdgeMode, EdgeSettings, TlsSettings

HTTP_PORT = 80
HTTPS_PORT = 443
# Pulumi's wait on objects it has no built-in wait for: each awaited expression must hold.
WAIT_FOR = "pulumi.com/waitFor"
READY = "condition=Ready"
# A route's one parent, the Gateway, accepted it, and every backend Service exists.
ROUTE_READY = json.dumps(
    [
        'jsonpath={.status.parents[0].conditions[?(@.type=="Accepted")].status}=True',
        'jsonpath={.status.parents[0].conditions[?(@.type=="ResolvedRefs")].status}=True',
    ]
)



@dataclass(frozen=True)
class Route:
    """One path prefix of the edge and the Service it goes to."""

    path: str
    service_name: pulumi.Input[str]
    service_port: int


@dataclass(frozen=True)
class EdgeArgs:
    """What an Edge is made of. Every field is required."""

    settings: EdgeSettings
    """Ingress or Gateway, the host, TLS and the classes, from the stack's config."""
    labels: PartLabels
    """The edge's labels, carried by every object it declares."""
    namespace: pulumi.Input[str]
    """The namespace every object goes into: the Services it routes to live there too."""
    routes: Sequence[Route]
    """Each path prefix with the Service it goes to; the longest matching prefix wins."""


class Edge(pulumi.ComponentResource):
    url: pulumi.Output[str]
    """Exported only once the edge serves it (with TLS: HTTPS with its certificate)."""

    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("journal:index:Edge", name, None, opts)
        settings = args.settings
        scope = _EdgeScope(name, args, parent=self)
        entry: _Entry = _GatewayEntry(scope) if settings.mode is EdgeMode.GATEWAY else _IngressEntry(scope)

        certificates = [_certificate(scope, settings.tls, entry.http01_solver())] if settings.tls else []
        served = entry.declare(args.routes)

        scheme = "https" if settings.tls else "http"
        url = f"{scheme}://{settings.host}/" if settings.host else ""
        awaited = [resource.id for resource in (*served, *certificates)]
        self.url = pulumi.Output.all(*awaited).apply(lambda _: url)
        self.register_outputs({"url": self.url})


@dataclass(frozen=True)
class _EdgeScope:
    """What every object of one edge shares: the prefix of its resource name, its
    namespace and labels, and the Edge as its parent."""

    name: str
    args: EdgeArgs
    parent: Edge

    @property
    def settings(self) -> EdgeSettings:
        return self.args.settings

    @property
    def labels(self) -> PartLabels:
        return self.args.labels

    @property
    def tls_secret_name(self) -> str:
        """The Secret cert-manager writes the certificate to, and the edge serves it from."""
        return f"{self.labels.component}-tls"

    def metadata(self, object_name: str, annotations: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgsDict:
        return {
            "name": object_name,
            "namespace": self.args.namespace,
            "labels": self.labels.object_labels,
            "annotations": annotations or {},
        }


class _Entry(Protocol):
    """Where the outside's requests come in, in one edge mode."""

    def http01_solver(self) -> kinds.Http01Solver:
        """How cert-manager answers an ACME challenge: through the same entry as the service."""
        ...

    def declare(self, routes: Sequence[Route]) -> Sequence[pulumi.CustomResource]:
        """The entry's objects, each of which `up` awaits before it exports the URL."""
        ...


def _certificate(scope: _EdgeScope, tls: TlsSettings, solver: kinds.Http01Solver) -> k8s.apiextensions.CustomResource:
    """The Certificate for the host, and the Issuer of the ACME account it comes from."""
    # An Issuer in the stack's own namespace, not a ClusterIssuer: the stack needs no
    # cluster-wide object for it, and its ACME account key stays in its namespace.
    issuer_name = tls.issuer.value
    acme: kinds.AcmeIssuer = {
        "server": tls.acme_server,
        "email": tls.email,
        "privateKeySecretRef": {"name": f"{issuer_name}-account-key"},
        "solvers": [{"http01": solver}],
    }
    if tls.ca_bundle_base64:
        acme["caBundle"] = tls.ca_bundle_base64
    issuer = k8s.apiextensions.CustomResource(
        f"{scope.name}-issuer",
        api_version="cert-manager.io/v1",
        kind="Issuer",
        # Ready once the ACME account is registered: a wrong server or CA bundle fails
        # here, naming the reason, rather than as a certificate that never comes.
        metadata=scope.metadata(issuer_name, {WAIT_FOR: READY}),
        spec=kinds.IssuerSpec(acme=acme),
        opts=pulumi.ResourceOptions(parent=scope.parent),
    )
    return k8s.apiextensions.CustomResource(
        f"{scope.name}-certificate",
        api_version="cert-manager.io/v1",
        kind="Certificate",
        metadata=scope.metadata(scope.labels.name, {WAIT_FOR: READY}),
        spec=kinds.CertificateSpec(
            secretName=scope.tls_secret_name,
            dnsNames=[tls.host],
            issuerRef={"group": "cert-manager.io", "kind": "Issuer", "name": issuer_name},
            # A fresh key with every renewal: a leaked key dies with its certificate.
            privateKey={"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        ),
        # Never after the Gateway: a Gateway is programmed only once its certificate
        # exists, and the certificate needs the Gateway to answer the challenge.
        opts=pulumi.ResourceOptions(parent=scope.parent, depends_on=[issuer]),
    )


class _IngressEntry:
    """One Ingress of the cluster's ingress controller (edge `ingress`)."""

    def __init__(self, scope: _EdgeScope):
        self._scope = scope

    def http01_solver(self) -> kinds.Http01Solver:
        return {"ingress": {"ingressClassName": self._scope.settings.ingress_class}}

    def declare(self, routes: Sequence[Route]) -> list[k8s.networking.v1.Ingress]:
        scope, settings = self._scope, self._scope.settings
        rule: k8s.networking.v1.IngressRuleArgsDict = {
            "http": {
                # Longest prefix wins regardless of order; the order here is for the reader.
                "paths": [
                    {
                        "path": route.path,
                        "path_type": "Prefix",
                        "backend": {"service": {"name": route.service_name, "port": {"number": route.service_port}}},
                    }
                    for route in routes
                ]
            }
        }
        if settings.host:
            rule["host"] = settings.host
        spec: k8s.networking.v1.IngressSpecArgsDict = {"ingress_class_name": settings.ingress_class, "rules": [rule]}
        if settings.tls:
            spec["tls"] = [{"hosts": [settings.tls.host], "secret_name": scope.tls_secret_name}]
        ingress = k8s.networking.v1.Ingress(
            f"{scope.name}-ingress",
            metadata=scope.metadata(scope.labels.name),
            spec=spec,
            opts=pulumi.ResourceOptions(parent=scope.parent),
        )
        return [ingress]


class _GatewayEntry:
    """A Gateway of the cluster's GatewayClass and the HTTPRoutes attached to it (edge
    `gateway`)."""

    def __init__(self, scope: _EdgeScope):
        self._scope = scope

    def http01_solver(self) -> kinds.Http01Solver:
        return {"gatewayHTTPRoute": {"parentRefs": [self._listener_ref("http")]}}

    def declare(self, routes: Sequence[Route]) -> list[k8s.apiextensions.CustomResource]:
        scope = self._scope
        tls = scope.settings.tls is not None
        # Plain HTTP always: it carries the ACME challenges, and with TLS only a redirect.
        listeners = [self._listener("http", "HTTP", HTTP_PORT)]
        if tls:
            https = self._listener("https", "HTTPS", HTTPS_PORT)
            https["tls"] = {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": scope.tls_secret_name}]}
            listeners.append(https)
        gateway = k8s.apiextensions.CustomResource(
            f"{scope.name}-gateway",
            api_version="gateway.networking.k8s.io/v1",
            kind="Gateway",
            # Programmed: the controller serves every listener, the HTTPS one with its
            # certificate.
            metadata=scope.metadata(scope.labels.name, {WAIT_FOR: "condition=Programmed"}),
            spec=kinds.GatewaySpec(gatewayClassName=scope.settings.gateway_class or "", listeners=listeners),
            opts=pulumi.ResourceOptions(parent=scope.parent),
        )
        # The longest matching prefix wins, as with the Ingress.
        service_rules: list[kinds.RouteRule] = [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": route.path}}],
                "backendRefs": [{"name": route.service_name, "port": route.service_port}],
            }
            for route in routes
        ]
        service_route = self._route("route", scope.labels.name, "https" if tls else "http", service_rules, gateway)
        if not tls:
            return [gateway, service_route]
        # cert-manager's challenge route matches its token's exact path, which wins over
        # this prefix: the challenges still reach the solver.
        redirect_rules: list[kinds.RouteRule] = [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}],
            }
        ]
        redirect = self._route("https-redirect", f"{scope.labels.name}-https-redirect", "http", redirect_rules, gateway)
        return [gateway, service_route, redirect]

    def _listener(self, listener_name: str, protocol: str, port: int) -> kinds.Listener:
        listener: kinds.Listener = {
            "name": listener_name,
            "protocol": protocol,
            "port": port,
            "allowedRoutes": {"namespaces": {"from": "Same"}},
        }
        if self._scope.settings.host:
            listener["hostname"] = self._scope.settings.host
        return listener

    def _listener_ref(self, listener: str) -> kinds.ParentReference:
        return {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": self._scope.labels.name, "sectionName": listener}

    def _route(
        self,
        resource_suffix: str,
        object_name: str,
        listener: str,
        rules: list[kinds.RouteRule],
        gateway: k8s.apiextensions.CustomResource,
    ) -> k8s.apiextensions.CustomResource:
        scope = self._scope
        spec: kinds.HTTPRouteSpec = {"parentRefs": [self._listener_ref(listener)], "rules": rules}
        if scope.settings.host:
            spec["hostnames"] = [scope.settings.host]
        return k8s.apiextensions.CustomResource(
            f"{scope.name}-{resource_suffix}",
            api_version="gateway.networking.k8s.io/v1",
            kind="HTTPRoute",
            metadata=scope.metadata(object_name, {WAIT_FOR: ROUTE_READY}),
            spec=spec,
            opts=pulumi.ResourceOptions(parent=scope.parent, depends_on=[gateway]),
        )
