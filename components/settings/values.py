"""The validated settings the components take: frozen, one dataclass per tier, and the
stack's as a whole."""

import base64
import json
from dataclasses import dataclass, field
from enum import Enum

import pulumi
import pulumi_kubernetes as k8s

from .image_reference import Image
from .quantities import binary_bytes

# A container writes only its logs (the kubelet keeps at most five files of 10Mi) and,
# in the HTTP tiers, /tmp (an emptyDir capped at 64Mi): the root filesystem is read-only
# and Redis keeps its data on its claim. The request covers all of that, so the scheduler
# never places more pods on a node than its disk holds; the limit (pod-wide, emptyDirs
# included) evicts only a pod writing past twice that.
EPHEMERAL_STORAGE_REQUEST = "128Mi"
EPHEMERAL_STORAGE_LIMIT = "256Mi"


@dataclass(frozen=True)
class Resources:
    """Container requests and limits, as Kubernetes quantities."""

    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str

    @property
    def memory_limit_bytes(self) -> int:
        return binary_bytes(self.memory_limit)

    def to_kubernetes(self) -> k8s.core.v1.ResourceRequirementsArgsDict:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request, "ephemeral-storage": EPHEMERAL_STORAGE_REQUEST},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit, "ephemeral-storage": EPHEMERAL_STORAGE_LIMIT},
        }


class TlsIssuer(str, Enum):
    NONE = "none"
    LETSENCRYPT_STAGING = "letsencrypt-staging"
    LETSENCRYPT_PRODUCTION = "letsencrypt-production"
    # Any other ACME server: a company's own CA (step-ca, Vault, ...), named by acmeServer.
    ACME = "acme"

    @property
    def lets_encrypt_directory(self) -> str | None:
        return {
            TlsIssuer.LETSENCRYPT_STAGING: "https://acme-staging-v02.api.letsencrypt.org/directory",
            TlsIssuer.LETSENCRYPT_PRODUCTION: "https://acme-v02.api.letsencrypt.org/directory",
        }.get(self)


class EdgeMode(str, Enum):
    INGRESS = "ingress"
    GATEWAY = "gateway"


@dataclass(frozen=True)
class Rollout:
    """How long `pulumi up` waits for any one resource (a rollout's pods Ready, the
    Ingress's address) before it fails with the reasons, instead of the provider's ten
    minutes."""

    timeout_seconds: int

    @property
    def custom_timeouts(self) -> pulumi.CustomTimeouts:
        return pulumi.CustomTimeouts(create=f"{self.timeout_seconds}s", update=f"{self.timeout_seconds}s")


@dataclass(frozen=True)
class FrontendSettings:
    image: Image
    replicas: int
    resources: Resources
    journal_entries: int
    writes_per_minute: int
    """Each client's writes after its burst, per API pod (WRITES_PER_MINUTE)."""
    write_burst: int
    """Each client's writes at once (WRITE_BURST)."""


@dataclass(frozen=True)
class RedisSettings:
    image: Image
    replicas: int
    resources: Resources
    storage_size: str
    storage_class: str | None
    password_length: int
    cluster_dns_cache_seconds: int
    """How long the cluster DNS answers a name from its cache: a restarted pod's peers
    reach it by name only after that."""
    protected: bool
    """Pulumi refuses to delete or replace the StatefulSet (and so its data) while set."""


@dataclass(frozen=True)
class FileServerSettings:
    image: Image
    replicas: int
    resources: Resources


@dataclass(frozen=True)
class TlsSettings:
    issuer: TlsIssuer
    email: str
    acme_server: str
    """The ACME directory URL: Let's Encrypt's for its issuers, acmeServer for 'acme'."""
    host: str
    """The one name the certificate is for: a TLS issuer requires `host`."""
    ca_bundle: str | None
    """PEM CA certificates that sign the ACME server's own HTTPS certificate, when the
    public roots do not (a private ACME server); None trusts the public roots."""

    @property
    def ca_bundle_base64(self) -> str | None:
        """The bundle as cert-manager's `caBundle` field takes it."""
        return base64.b64encode(self.ca_bundle.encode()).decode() if self.ca_bundle else None


@dataclass(frozen=True)
class EdgeSettings:
    mode: EdgeMode
    host: str | None
    tls: TlsSettings | None
    ingress_class: str
    ingress_controller_namespace: str
    gateway_class: str | None
    gateway_namespace: str | None

    @property
    def proxy_namespace(self) -> str:
        """The namespace whose pods carry the outside's requests into the service: the
        ingress controller's, or that of the Gateway's proxies."""
        if self.mode is EdgeMode.GATEWAY:
            return self.gateway_namespace or ""
        return self.ingress_controller_namespace


@dataclass(frozen=True)
class ImagePullSettings:
    """The credential the kubelet pulls the journal's images with, from a registry that
    asks for one."""

    registry: str
    """The registry's host (and port), as the images' references name it."""
    username: str
    password: str = field(repr=False)
    """Held as a secret in the stack's config; the program hands it on only as a secret."""

    def docker_config_json(self) -> str:
        """A `kubernetes.io/dockerconfigjson` Secret's `.dockerconfigjson`: what the
        kubelet reads to log in to `registry`."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return json.dumps({"auths": {self.registry: {"username": self.username, "password": self.password, "auth": token}}})


@dataclass(frozen=True)
class StackSettings:
    rollout: Rollout
    protect_data: bool
    """The namespace (whose deletion takes the Redis claims with it) and the Redis
    StatefulSet are protected: `pulumi destroy` or a namespace change refuses."""
    kube_context: str | None
    """The kubeconfig context the stack deploys to (`kubernetes:context`); None when the
    stack is rendered to files instead."""
    instance: str
    """Unique name of this deployment of the service, used in labels and cluster-wide names."""
    namespace: str
    frontend: FrontendSettings
    redis: RedisSettings
    fileserver: FileServerSettings
    edge: EdgeSettings
    image_pull: ImagePullSettings | None
    """The registry credential every pod of the stack pulls with; None pulls without one."""
