"""The fields of cert-manager's and the Gateway API's kinds that the Edge sets, typed.

The provider has types for Kubernetes' own kinds only: to it, a custom resource's spec is
any value, sent to the API server exactly as written. These dicts name the fields this
program sets, spelt as in the CRDs (camelCase, unlike the provider's types), so that a
misspelt field is a type error here too; the API server tests hold them to the CRDs'
schemas.
"""

from typing import NotRequired, TypedDict

import pulumi

# --- cert-manager.io/v1 ----------------------------------------------------------------


class IngressSolver(TypedDict):
    ingressClassName: str


class ParentReference(TypedDict):
    group: str
    kind: str
    name: str
    sectionName: str


class GatewaySolver(TypedDict):
    parentRefs: list[ParentReference]


class Http01Solver(TypedDict, total=False):
    ingress: IngressSolver
    gatewayHTTPRoute: GatewaySolver


class AcmeSolver(TypedDict):
    http01: Http01Solver


class SecretRef(TypedDict):
    name: str


class AcmeIssuer(TypedDict):
    server: str
    email: str
    privateKeySecretRef: SecretRef
    solvers: list[AcmeSolver]
    caBundle: NotRequired[str]


class IssuerSpec(TypedDict):
    acme: AcmeIssuer


class IssuerRef(TypedDict):
    group: str
    kind: str
    name: str


class PrivateKey(TypedDict):
    algorithm: str
    size: int
    rotationPolicy: str


class CertificateSpec(TypedDict):
    secretName: str
    dnsNames: list[str]
    issuerRef: IssuerRef
    privateKey: PrivateKey


# --- gateway.networking.k8s.io/v1 ------------------------------------------------------

# "from" is a Python keyword: only the functional form can name it.
RouteNamespaces = TypedDict("RouteNamespaces", {"from": str})


class AllowedRoutes(TypedDict):
    namespaces: RouteNamespaces


class CertificateRef(TypedDict):
    kind: str
    name: str


class GatewayTls(TypedDict):
    mode: str
    certificateRefs: list[CertificateRef]


class Listener(TypedDict):
    name: str
    protocol: str
    port: int
    hostname: NotRequired[str]
    allowedRoutes: AllowedRoutes
    tls: NotRequired[GatewayTls]


class GatewaySpec(TypedDict):
    gatewayClassName: str
    listeners: list[Listener]


class PathMatch(TypedDict):
    type: str
    value: str


class RouteMatch(TypedDict):
    path: PathMatch


class BackendRef(TypedDict):
    name: pulumi.Input[str]
    port: int


class RequestRedirect(TypedDict):
    scheme: str
    statusCode: int


class RouteFilter(TypedDict):
    type: str
    requestRedirect: RequestRedirect


class RouteRule(TypedDict):
    matches: list[RouteMatch]
    backendRefs: NotRequired[list[BackendRef]]
    filters: NotRequired[list[RouteFilter]]


class HTTPRouteSpec(TypedDict):
    parentRefs: list[ParentReference]
    hostnames: NotRequired[list[str]]
    rules: list[RouteRule]
