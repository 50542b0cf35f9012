"""Stack configuration -> frozen, validated settings.

Every key is read and checked here, once, before any resource is registered: a bad value
stops the program with one error that lists every problem by its config key, and nothing
is half-created. Defaults live in Pulumi.yaml (the engine applies them); this module
holds no second copy of them.
"""

import base64
import ipaddress
import re
import ssl
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Callable, Optional, Protocol, TypeVar
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

CONFIG_NAMESPACE = "journal"

T = TypeVar("T")
Choice = TypeVar("Choice", bound=Enum)


class SettingsError(pulumi.RunError):
    """Raised with every invalid config value, each named by its key.

    A RunError makes the engine print the message alone, without a Python traceback.
    """

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems)
        )


class ConfigSource(Protocol):
    def get(self, key: str) -> Optional[str]: ...


# --- value types -------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """A container image reference: [registry/]path[:tag][@digest]."""

    reference: str
    tag: Optional[str]
    digest: Optional[str]

    @property
    def pinned(self) -> bool:
        """Pinned by digest, or by an exact release tag (never 'latest' or '7')."""
        return self.digest is not None or (self.tag is not None and bool(_EXACT_VERSION_TAG.fullmatch(self.tag)))

    @property
    def version(self) -> str:
        """The value of the app.kubernetes.io/version label: the tag when it is an exact
        release (a valid label value by construction), else a digest prefix."""
        if self.tag is not None and _EXACT_VERSION_TAG.fullmatch(self.tag):
            return self.tag
        return "sha256-" + (self.digest or "")[len("sha256:") :][:12]


def parse_image(reference: str) -> Optional[Image]:
    """The reference's parts, or None when it is not a valid image reference."""
    name, _, digest = reference.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        return None
    # A ':' after the last '/' starts the tag; one before it belongs to a registry port.
    tag = None
    if name.rfind(":") > name.rfind("/"):
        name, _, tag = name.rpartition(":")
        if not _TAG.fullmatch(tag):
            return None
    first, _, rest = name.partition("/")
    # As container runtimes read it: the first component names a registry only when it
    # looks like a host (a dot or a port) or is "localhost"; then it may have capitals.
    if rest and ("." in first or ":" in first or first == "localhost"):
        if not _REGISTRY.fullmatch(first):
            return None
        name = rest
    if not all(_PATH_COMPONENT.fullmatch(component) for component in name.split("/")):
        return None
    return Image(reference=reference, tag=tag, digest=digest or None)


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
        return _bytes(self.memory_limit)

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
    def lets_encrypt_directory(self) -> Optional[str]:
        return {
            TlsIssuer.LETSENCRYPT_STAGING: "https://acme-staging-v02.api.letsencrypt.org/directory",
            TlsIssuer.LETSENCRYPT_PRODUCTION: "https://acme-v02.api.letsencrypt.org/directory",
        }.get(self)


class EdgeMode(str, Enum):
    INGRESS = "ingress"
    GATEWAY = "gateway"


# --- settings of each tier -----------------------------------------------------------------


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


@dataclass(frozen=True)
class RedisSettings:
    image: Image
    replicas: int
    resources: Resources
    storage_size: str
    storage_class: Optional[str]
    password_length: int
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
    ca_bundle: Optional[str]
    """PEM CA certificates that sign the ACME server's own HTTPS certificate, when the
    public roots do not (a private ACME server); None trusts the public roots."""

    @property
    def ca_bundle_base64(self) -> Optional[str]:
        """The bundle as cert-manager's `caBundle` field takes it."""
        return base64.b64encode(self.ca_bundle.encode()).decode() if self.ca_bundle else None


@dataclass(frozen=True)
class EdgeSettings:
    mode: EdgeMode
    host: Optional[str]
    tls: Optional[TlsSettings]
    ingress_class: str
    ingress_controller_namespace: str
    gateway_class: Optional[str]
    gateway_namespace: Optional[str]

    @property
    def proxy_namespace(self) -> str:
        """The namespace whose pods carry the outside's requests into the service: the
        ingress controller's, or that of the Gateway's proxies."""
        if self.mode is EdgeMode.GATEWAY:
            return self.gateway_namespace or ""
        return self.ingress_controller_namespace


@dataclass(frozen=True)
class StackSettings:
    rollout: Rollout
    protect_data: bool
    """The namespace (whose deletion takes the Redis claims with it) and the Redis
    StatefulSet are protected: `pulumi destroy` or a namespace change refuses."""
    kube_context: Optional[str]
    """The kubeconfig context the stack deploys to (`kubernetes:context`); None when the
    stack is rendered to files instead."""
    instance: str
    """Unique name of this deployment of the service, used in labels and cluster-wide names."""
    namespace: str
    frontend: FrontendSettings
    redis: RedisSettings
    fileserver: FileServerSettings
    edge: EdgeSettings


# --- parsing ---------------------------------------------------------------------------
# Patterns are applied with fullmatch: with match(), "$" would also accept a trailing newline.

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_LABEL_PART = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"(?=.{{1,253}}\Z){_DNS_LABEL_PART}(\.{_DNS_LABEL_PART})*")
_CPU = re.compile(r"[0-9]+m|[0-9]+(\.[0-9]{1,3})?")
# Only binary suffixes: "1G" is a valid quantity but means 10^9 bytes, and it is almost
# always a typo for "1Gi".
_BINARY_QUANTITY = re.compile(r"([0-9]+)(Ki|Mi|Gi|Ti|Pi)")
_BINARY_FACTORS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
# An exact release: v1.0.1, 1.27.3-alpine, v1.0.1-bfeda01f. Floating tags such as
# "latest", "7" or "alpine" move under a running Deployment and are refused. The tag is
# also the version label, so it must be a label value: at most 63 characters, ending in
# a letter or digit.
_EXACT_VERSION_TAG = re.compile(r"(?=.{1,63}\Z)v?[0-9]+\.[0-9]+\.[0-9]+([-_.][A-Za-z0-9_.-]*[A-Za-z0-9])?")
# The image reference grammar of the OCI distribution spec (as container runtimes parse it).
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REGISTRY = re.compile(r"([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:[0-9]+)?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*")
_EMAIL = re.compile(r"[^@\s]+@[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+", re.IGNORECASE)
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\s*[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")
_ANY = re.compile(r".+", re.DOTALL)
MAX_REPLICAS = 50
# Every Redis replica is a full copy that syncs from the one master: past a handful,
# more replicas cost the master more than they add.
MAX_REDIS_REPLICAS = 9
MIN_PASSWORD_LENGTH = 32
# Long enough for a Redis pod to load its data and replicas to sync; short enough that a
# typo'd image tag fails `pulumi up` in minutes, not the provider's default ten.
MIN_ROLLOUT_SECONDS = 30
MAX_ROLLOUT_SECONDS = 3600


class _Reader:
    """Reads keys from the config, collecting problems instead of stopping at the first."""

    def __init__(self, source: ConfigSource):
        self._source = source
        self.problems: list[str] = []
        self._refused: set[str] = set()

    def _raw(self, key: str) -> Optional[str]:
        return self._source.get(key)

    def refused(self, key: str) -> bool:
        """Whether the value of `key` was read and refused: a problem names it already."""
        return key in self._refused

    def _fail(self, key: str, expectation: str, value: Optional[str]) -> None:
        self._refused.add(key)
        shown = "nothing" if value is None else repr(value)
        self.problems.append(f"{CONFIG_NAMESPACE}:{key} {expectation}, got {shown}")

    def _parse(self, key: str, parse: Callable[[str], Optional[T]], expectation: str) -> Optional[T]:
        raw = self._raw(key)
        parsed = parse(raw) if raw is not None else None
        if parsed is None:
            self._fail(key, expectation, raw)
        return parsed

    def count(self, key: str, minimum: int, maximum: int) -> int:
        def parse(raw: str) -> Optional[int]:
            if not re.fullmatch(r"[0-9]+", raw):
                return None
            number = int(raw)
            return number if minimum <= number <= maximum else None

        return self._parse(key, parse, f"must be a whole number from {minimum} to {maximum}") or minimum

    def boolean(self, key: str) -> bool:
        # Pulumi's typed boolean config arrives as "true" or "false".
        flags = {"true": True, "false": False}
        return bool(self._parse(key, lambda raw: flags.get(raw.lower()), "must be true or false"))

    def duration_seconds(self, key: str, minimum: int, maximum: int) -> int:
        def parse(raw: str) -> Optional[int]:
            match = re.fullmatch(r"([0-9]+)(s|m)", raw)
            if not match:
                return None
            seconds = int(match.group(1)) * (60 if match.group(2) == "m" else 1)
            return seconds if minimum <= seconds <= maximum else None

        expectation = f"must be a duration in seconds or minutes ('90s', '5m') from {minimum}s to {maximum // 60}m"
        return self._parse(key, parse, expectation) or minimum

    def string(self, key: str, pattern: re.Pattern[str], expectation: str, optional: bool = False) -> Optional[str]:
        raw = self._raw(key)
        if optional and raw in (None, ""):
            return None
        if raw is None or not pattern.fullmatch(raw):
            self._fail(key, expectation, raw)
            return None
        return raw

    def image(self, key: str) -> Image:
        raw = self._raw(key)
        image = parse_image(raw) if raw is not None else None
        if image is None:
            self._fail(key, "must be an image reference such as 'registry.example.com/app:v1.0.1-bfeda01f'", raw)
            return Image(reference="", tag=None, digest=None)
        if not image.pinned:
            self._fail(
                key,
                "must be pinned: an exact version tag of at most 63 characters ending in a letter or "
                "digit (v1.0.1, 1.27.3-alpine, v1.0.1-bfeda01f) or an @sha256: digest, never 'latest' "
                "or a floating tag",
                raw,
            )
        return image

    def cpu(self, key: str) -> Optional[str]:
        return self._parse(
            key, lambda raw: raw if _cpu_cores(raw) else None, "must be a positive CPU quantity such as '250m' or '1.5'"
        )

    def binary_quantity(self, key: str) -> Optional[str]:
        return self._parse(
            key,
            lambda raw: raw if _bytes(raw) else None,
            "must be a positive quantity with a binary suffix such as '256Mi' or '50Gi'",
        )

    def choice(self, key: str, enum: type[Choice]) -> Optional[Choice]:
        raw = self._raw(key)
        try:
            return enum(raw)
        except ValueError:
            names = ", ".join(repr(member.value) for member in enum)
            self._fail(key, f"must be one of {names}", raw)
            return None

    def resources(self, tier: str) -> Resources:
        resources = Resources(
            cpu_request=self.cpu(f"{tier}CpuRequest") or "",
            cpu_limit=self.cpu(f"{tier}CpuLimit") or "",
            memory_request=self.binary_quantity(f"{tier}MemoryRequest") or "",
            memory_limit=self.binary_quantity(f"{tier}MemoryLimit") or "",
        )
        for kind, request, limit, amount in (
            ("Cpu", resources.cpu_request, resources.cpu_limit, _cpu_cores),
            ("Memory", resources.memory_request, resources.memory_limit, _bytes),
        ):
            if request and limit and amount(request) > amount(limit):
                self.problems.append(
                    f"{CONFIG_NAMESPACE}:{tier}{kind}Request ({request!r}) "
                    f"must not exceed {CONFIG_NAMESPACE}:{tier}{kind}Limit ({limit!r})"
                )
        return resources


def _is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _cpu_cores(quantity: str) -> Decimal:
    """Cores in a CPU quantity; 0 for anything that is not one."""
    if not _CPU.fullmatch(quantity):
        return Decimal(0)
    return Decimal(quantity[:-1]) / 1000 if quantity.endswith("m") else Decimal(quantity)


def _bytes(quantity: str) -> int:
    """Bytes in a binary quantity; 0 for anything that is not one."""
    match = _BINARY_QUANTITY.fullmatch(quantity)
    return int(match[1]) * _BINARY_FACTORS[match[2]] if match else 0


def load_settings(source: ConfigSource, stack: str, kube_context: Optional[str], rendering: bool = False) -> StackSettings:
    """Builds the settings of one stack, or raises SettingsError naming every bad key.
    `kube_context` is the stack's `kubernetes:context`, which the Kubernetes provider
    reads itself; `rendering` says the provider writes manifests to files instead."""
    read = _Reader(source)
    # Without it the provider would deploy to whatever context the kubeconfig has as
    # current: a prod update could land on a laptop's cluster, or the other way round.
    if not kube_context and not rendering:
        read.problems.append(
            "kubernetes:context must name the kubeconfig context this stack deploys to "
            f"(set it in Pulumi.{stack}.yaml: a stack never uses whichever context is current), got {kube_context or ''!r}"
        )
    # The instance names cluster-wide objects and is the default namespace, so the stack
    # name must make a valid DNS label.
    instance = f"{CONFIG_NAMESPACE}-{stack}"
    if not _DNS_LABEL.fullmatch(instance):
        read.problems.append(
            f"stack name {stack!r} must be lowercase letters, digits and '-': it names Kubernetes objects"
        )

    namespace = read.string("namespace", _DNS_LABEL, "must be a DNS label (lowercase letters, digits, '-')", optional=True)
    namespace = namespace or instance
    if namespace == "default" or namespace.startswith("kube-"):
        read.problems.append(
            f"{CONFIG_NAMESPACE}:namespace must be a namespace of this stack's own, got {namespace!r}"
        )

    rollout = Rollout(read.duration_seconds("rolloutTimeout", MIN_ROLLOUT_SECONDS, MAX_ROLLOUT_SECONDS))
    protect_data = read.boolean("protectData")

    frontend = FrontendSettings(
        image=read.image("frontendImage"),
        replicas=read.count("frontendReplicas", 1, MAX_REPLICAS),
        resources=read.resources("frontend"),
        journal_entries=read.count("frontendJournalEntries", 1, 10_000),
    )

    redis = RedisSettings(
        image=read.image("redisImage"),
        replicas=read.count("redisReplicas", 1, MAX_REDIS_REPLICAS),
        resources=read.resources("redis"),
        storage_size=read.binary_quantity("redisStorageSize") or "",
        storage_class=read.string(
            "redisStorageClass", _DNS_SUBDOMAIN, "must be a StorageClass name, or empty for the cluster default",
            optional=True,
        ),
        password_length=read.count("redisPasswordLength", MIN_PASSWORD_LENGTH, 512),
        protected=protect_data,
    )

    fileserver = FileServerSettings(
        image=read.image("fileserverImage"),
        replicas=read.count("fileserverReplicas", 1, MAX_REPLICAS),
        resources=read.resources("fileserver"),
    )

    host = read.string("host", _DNS_SUBDOMAIN, "must be a lowercase DNS name such as 'journal.example.com'", optional=True)
    if host is not None and _is_ip_address(host):
        read.problems.append(f"{CONFIG_NAMESPACE}:host must be a DNS name, not an IP address (an Ingress rule's host cannot be one), got {host!r}")
        host = None
    edge = EdgeSettings(
        mode=read.choice("edge", EdgeMode) or EdgeMode.INGRESS,
        host=host,
        tls=_tls_settings(read, source, host),
        ingress_class=read.string("ingressClassName", _DNS_SUBDOMAIN, "must be an IngressClass name such as 'nginx'") or "",
        ingress_controller_namespace=read.string(
            "ingressControllerNamespace", _DNS_LABEL, "must be the namespace name of the ingress controller"
        )
        or "",
        gateway_class=read.string("gatewayClassName", _DNS_SUBDOMAIN, "must be a GatewayClass name", optional=True),
        gateway_namespace=read.string(
            "gatewayNamespace", _DNS_LABEL, "must be the namespace name of the Gateway's proxy pods", optional=True
        ),
    )
    _check_edge_mode(read, edge)

    if read.problems:
        raise SettingsError(read.problems)
    return StackSettings(
        rollout=rollout,
        protect_data=protect_data,
        kube_context=None if rendering else kube_context,
        instance=instance,
        namespace=namespace,
        frontend=frontend,
        redis=redis,
        fileserver=fileserver,
        edge=edge,
    )


def _tls_settings(read: _Reader, source: ConfigSource, host: Optional[str]) -> Optional[TlsSettings]:
    issuer = read.choice("tlsIssuer", TlsIssuer)
    acme_keys = ("acmeServer", "acmeCaBundle")
    if issuer is not None and issuer is not TlsIssuer.ACME:
        # A CA bundle or server that is set but unused would look like it is in force.
        for key in acme_keys:
            if source.get(key):
                read.problems.append(
                    f"{CONFIG_NAMESPACE}:{key} is only used when {CONFIG_NAMESPACE}:tlsIssuer is 'acme', "
                    f"but tlsIssuer is {issuer.value!r}"
                )
    if issuer in (None, TlsIssuer.NONE):
        return None
    email = read.string("tlsEmail", _EMAIL, f"must be an email address for the ACME account when tlsIssuer is {issuer.value!r}")
    if host is not None and "." not in host:
        read.problems.append(
            f"{CONFIG_NAMESPACE}:host must be a fully qualified name when {CONFIG_NAMESPACE}:tlsIssuer is "
            f"{issuer.value!r}: an ACME server certifies no single-label name, got {host!r}"
        )
    if host is None and source.get("host") in (None, ""):
        read.problems.append(
            f"{CONFIG_NAMESPACE}:host must be set when {CONFIG_NAMESPACE}:tlsIssuer is {issuer.value!r}: "
            "a certificate names a host"
        )
    acme_server = issuer.lets_encrypt_directory
    ca_bundle = None
    if issuer is TlsIssuer.ACME:
        acme_server = read.string(
            "acmeServer", _ANY, "must be the https:// URL of an ACME directory, such as 'https://ca.example.internal/acme/directory'"
        )
        if acme_server is not None and not _is_https_url(acme_server):
            read.problems.append(
                f"{CONFIG_NAMESPACE}:acmeServer must be the https:// URL of an ACME directory, such as "
                f"'https://ca.example.internal/acme/directory', got {acme_server!r}"
            )
        ca_bundle = _ca_bundle(read, source.get("acmeCaBundle") or None)
    return TlsSettings(
        issuer=issuer, email=email or "", acme_server=acme_server or "", host=host or "", ca_bundle=ca_bundle
    )


def _is_https_url(value: str) -> bool:
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        return False
    return (
        url.scheme == "https"
        and bool(url.hostname)
        and "@" not in url.netloc
        and not url.fragment
        and not any(c.isspace() for c in value)
    )


def _ca_bundle(read: _Reader, raw: Optional[str]) -> Optional[str]:
    """The PEM bundle, normalised to its certificate blocks, or None (the public roots);
    every problem with it is added to `read`."""
    if raw is None:
        return None
    key = f"{CONFIG_NAMESPACE}:acmeCaBundle"
    # Before anything else: a key pasted into config is a secret in plaintext.
    if "PRIVATE KEY-----" in raw:
        read.problems.append(
            f"{key} holds a private key: it must hold CA certificates only (remove the key from the "
            "configuration and treat it as exposed)"
        )
        return None
    blocks = _PEM_CERTIFICATE.findall(raw)
    leftover = _PEM_CERTIFICATE.sub("", raw).strip()
    if not blocks or leftover:
        shown = repr(leftover[:40] + "...") if leftover else "no certificate"
        read.problems.append(
            f"{key} must be PEM CA certificates ('-----BEGIN CERTIFICATE-----' blocks and nothing else), got {shown}"
        )
        return None
    bundle = "\n".join(blocks) + "\n"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=bundle)
    except ssl.SSLError as error:
        read.problems.append(f"{key} holds a certificate that does not parse ({error.reason or error}): check the PEM blocks")
        return None
    stats = context.cert_store_stats()
    if stats["x509_ca"] != len(blocks):
        read.problems.append(
            f"{key} must hold CA certificates only (the ones that sign the ACME server's certificate): "
            f"{len(blocks) - stats['x509_ca']} of its {len(blocks)} certificates are not CAs"
        )
        return None
    return bundle


def _check_edge_mode(read: _Reader, edge: EdgeSettings) -> None:
    gateway_keys = {"gatewayClassName": edge.gateway_class, "gatewayNamespace": edge.gateway_namespace}
    for key, value in gateway_keys.items():
        if edge.mode is EdgeMode.GATEWAY and value is None and not read.refused(key):
            read.problems.append(
                f"{CONFIG_NAMESPACE}:{key} must be set when {CONFIG_NAMESPACE}:edge is 'gateway', got nothing"
            )
        if edge.mode is EdgeMode.INGRESS and value is not None:
            read.problems.append(
                f"{CONFIG_NAMESPACE}:{key} is only used when {CONFIG_NAMESPACE}:edge is 'gateway', but edge is 'ingress'"
            )


def load_stack_settings() -> StackSettings:
    """Settings of the running stack, from its Pulumi configuration."""
    provider = pulumi.Config("kubernetes")
    return load_settings(
        pulumi.Config(CONFIG_NAMESPACE),
        pulumi.get_stack(),
        provider.get("context"),
        rendering=bool(provider.get("renderYamlToDirectory")),
    )
