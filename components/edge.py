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
        settings, labels, namespace, routes = args.settings, args.labels, args.namespace, args.routes
        self._name = name
        self._settings = settings
        self._labels = labels
        self._namespace = namespace

        # The Secret cert-manager writes the certificate to, and the edge serves it from.
        self._tls_secret_name = f"{labels.component}-tls"
        certificate = self._certificate(settings.tls) if settings.tls else None

        if settings.mode is EdgeMode.GATEWAY:
            entry = self._gateway_entry(routes)
        else:
            entry = self._ingress_entry(routes)

        scheme = "https" if settings.tls else "http"
        url = f"{scheme}://{settings.host}/" if settings.host else ""
        awaited = [resource.id for resource in (*entry, *([certificate] if certificate else []))]
        self.url = pulumi.Output.all(*awaited).apply(lambda _: url)
        self.register_outputs({"url": self.url})

    # --- the certificate -------------------------------------------------------------

    def _certificate(self, tls: TlsSettings) -> k8s.apiextensions.CustomResource:
        # An Issuer in the stack's own namespace, not a ClusterIssuer: the stack needs no
        # cluster-wide object for it, and its ACME account key stays in its namespace.
        issuer_name = tls.issuer.value
        acme: kinds.AcmeIssuer = {
            "server": tls.acme_server,
            "email": tls.email,
            "privateKeySecretRef": {"name": f"{issuer_name}-account-key"},
            "solvers": [{"http01": self._http01_solver()}],
        }
        if tls.ca_bundle_base64:
            acme["caBundle"] = tls.ca_bundle_base64
        issuer = k8s.apiextensions.CustomResource(
            f"{self._name}-issuer",
            api_version="cert-manager.io/v1",
            kind="Issuer",
            # Ready once the ACME account is registered: a wrong server or CA bundle fails
            # here, naming the reason, rather than as a certificate that never comes.
            metadata=self._metadata(issuer_name, {WAIT_FOR: READY}),
            spec=kinds.IssuerSpec(acme=acme),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return k8s.apiextensions.CustomResource(
            f"{self._name}-certificate",
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata=self._metadata(self._labels.name, {WAIT_FOR: READY}),
            spec=kinds.CertificateSpec(
                secretName=self._tls_secret_name,
                dnsNames=[tls.host],
                issuerRef={"group": "cert-manager.io", "kind": "Issuer", "name": issuer_name},
                # A fresh key with every renewal: a leaked key dies with its certificate.
                privateKey={"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            ),
            # Never after the Gateway: a Gateway is programmed only once its certificate
            # exists, and the certificate needs the Gateway to answer the challenge.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[issuer]),
        )

    def _http01_solver(self) -> kinds.Http01Solver:
        """cert-manager answers the challenge through the same edge as the service."""
        if self._settings.mode is EdgeMode.GATEWAY:
            return {"gatewayHTTPRoute": {"parentRefs": [self._gateway_ref("http")]}}
        return {"ingress": {"ingressClassName": self._settings.ingress_class}}

    # --- Ingress ---------------------------------------------------------------------

    def _ingress_entry(self, routes: Sequence[Route]) -> tuple[k8s.networking.v1.Ingress]:
        settings = self._settings
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
            spec["tls"] = [{"hosts": [settings.tls.host], "secret_name": self._tls_secret_name}]
        ingress = k8s.networking.v1.Ingress(
            f"{self._name}-ingress",
            metadata=self._metadata(self._labels.name),
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return (ingress,)

    # --- Gateway API -----------------------------------------------------------------

    def _gateway_entry(self, routes: Sequence[Route]) -> tuple[k8s.apiextensions.CustomResource, ...]:
        settings = self._settings
        tls = settings.tls is not None

        def listener(listener_name: str, protocol: str, port: int) -> kinds.Listener:
            served: kinds.Listener = {
                "name": listener_name,
                "protocol": protocol,
                "port": port,
                "allowedRoutes": {"namespaces": {"from": "Same"}},
            }
            if settings.host:
                served["hostname"] = settings.host
            return served

        # Plain HTTP always: it carries the ACME challenges, and with TLS only a redirect.
        listeners = [listener("http", "HTTP", HTTP_PORT)]
        if tls:
            https = listener("https", "HTTPS", HTTPS_PORT)
            https["tls"] = {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": self._tls_secret_name}]}
            listeners.append(https)
        gateway = k8s.apiextensions.CustomResource(
            f"{self._name}-gateway",
            api_version="gateway.networking.k8s.io/v1",
            kind="Gateway",
            # Programmed: the controller serves every listener, the HTTPS one with its
            # certificate.
            metadata=self._metadata(self._labels.name, {WAIT_FOR: "condition=Programmed"}),
            spec=kinds.GatewaySpec(gatewayClassName=settings.gateway_class or "", listeners=listeners),
            opts=pulumi.ResourceOptions(parent=self),
        )

        def route_spec(parent: kinds.ParentReference, rules: list[kinds.RouteRule]) -> kinds.HTTPRouteSpec:
            spec: kinds.HTTPRouteSpec = {"parentRefs": [parent], "rules": rules}
            if settings.host:
                spec["hostnames"] = [settings.host]
            return spec

        service_route = k8s.apiextensions.CustomResource(
            f"{self._name}-route",
            api_version="gateway.networking.k8s.io/v1",
            kind="HTTPRoute",
            metadata=self._metadata(self._labels.name, {WAIT_FOR: ROUTE_READY}),
            spec=route_spec(
                self._gateway_ref("https" if tls else "http"),
                # The longest matching prefix wins, as with the Ingress.
                [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": route.path}}],
                        "backendRefs": [{"name": route.service_name, "port": route.service_port}],
                    }
                    for route in routes
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
        )
        if not tls:
            return gateway, service_route
        # cert-manager's challenge route matches its token's exact path, which wins over
        # this prefix: the challenges still reach the solver.
        redirect = k8s.apiextensions.CustomResource(
            f"{self._name}-https-redirect",
            api_version="gateway.networking.k8s.io/v1",
            kind="HTTPRoute",
            metadata=self._metadata(f"{self._labels.name}-https-redirect", {WAIT_FOR: ROUTE_READY}),
            spec=route_spec(
                self._gateway_ref("http"),
                [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                        "filters": [
                            {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}
                        ],
                    }
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
        )
        return gateway, service_route, redirect

    def _gateway_ref(self, listener: str) -> kinds.ParentReference:
        return {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": self._labels.name, "sectionName": listener}

    # ---------------------------------------------------------------------------------

    def _metadata(
        self, object_name: str, annotations: dict[str, str] | None = None
    ) -> k8s.meta.v1.ObjectMetaArgsDict:
        return {
            "name": object_name,
            "namespace": self._namespace,
            "labels": self._labels.object_labels,
            "annotations": annotations or {},
        }

