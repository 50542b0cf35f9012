"""Stack configuration -> StackSettings: every key read and checked, the checks that span
several keys, and the limits the stack holds its values to."""

import ipaddress
import os
import re
from collections.abc import Callable

import pulumi
from pulumi.runtime.config import is_config_secret

from .image_reference import REGISTRY_HOST
from .passphrase import PASSPHRASE_FILE_VARIABLE, passphrase_problems
from .reader import CONFIG_NAMESPACE, ConfigReader, ConfigSource, SettingsError
from .tls import read_tls_settings
from .values import (
    EdgeMode,
    EdgeSettings,
    FileServerSettings,
    FrontendSettings,
    ImagePullSettings,
    RedisSettings,
    Rollout,
    StackSettings,
)

# Patterns are applied with fullmatch: with match(), "$" would also accept a trailing newline.
_DNS_LABEL_PART = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_DNS_LABEL = re.compile(_DNS_LABEL_PART)
_DNS_SUBDOMAIN = re.compile(rf"(?=.{{1,253}}\Z){_DNS_LABEL_PART}(\.{_DNS_LABEL_PART})*")
MAX_REPLICAS = 50
# Every Redis replica is a full copy that syncs from the one master: past a handful,
# more replicas cost the master more than they add.
MAX_REDIS_REPLICAS = 9
MIN_PASSWORD_LENGTH = 32
# Long enough for a Redis pod to load its data and replicas to sync; short enough that a
# typo'd image tag fails `pulumi up` in minutes, not the provider's default ten.
MIN_ROLLOUT_SECONDS = 30
# A registry's basic authentication joins them with ':'.
_USER_NAME = re.compile(r"[^:\s]+")
_PASSWORD = re.compile(r"\S+")
MAX_ROLLOUT_SECONDS = 3600


def _is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def load_settings(source: ConfigSource, stack: str, kube_context: str | None, rendering: bool = False,
                  passphrase_file: str | None = None, is_secret: Callable[[str], bool] = lambda key: False) -> StackSettings:
    """Builds the settings of one stack, or raises SettingsError naming every bad key.
    `kube_context` is the stack's `kubernetes:context`, which the Kubernetes provider
    reads itself; `rendering` says the provider writes manifests to files instead;
    `passphrase_file` is the engine's PULUMI_CONFIG_PASSPHRASE_FILE; `is_secret` says
    whether a key's value is stored encrypted (`pulumi config set --secret`)."""
    read = ConfigReader(source)
    read.problems.extend(passphrase_problems(stack, passphrase_file))
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
        # The API's own bounds for WRITES_PER_MINUTE and WRITE_BURST.
        writes_per_minute=read.count("frontendWritesPerMinute", 1, 60_000),
        write_burst=read.count("frontendWriteBurst", 1, 10_000),
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
        cluster_dns_cache_seconds=read.count("clusterDnsCacheSeconds", 0, 3600),
        protected=protect_data,
    )
    if redis.replicas == 2:
        # Sentinels fail over only with a majority of them agreeing: of two, that is both,
        # so losing either pod (its Sentinel with it) leaves no failover, and the master
        # refuses writes once its one replica is gone (min-replicas-to-write 1).
        read.problems.append(
            f"{CONFIG_NAMESPACE}:redisReplicas must be 1 (no failover) or at least 3 (Sentinels need a majority "
            f"that survives the loss of one pod), got {source.get('redisReplicas')!r}"
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
        tls=read_tls_settings(read, source, host),
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
    image_pull = _read_image_pull(read, is_secret)

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
        image_pull=image_pull,
    )


IMAGE_PULL_KEYS = ("imagePullRegistry", "imagePullUsername", "imagePullPassword")


def _read_image_pull(read: ConfigReader, is_secret: Callable[[str], bool]) -> ImagePullSettings | None:
    """All three keys, or none; the password only as a secret."""
    registry = read.string(
        "imagePullRegistry", REGISTRY_HOST,
        "must be a registry host as image references name it ('registry.example.com', 'registry.example.com:5000')",
        optional=True,
    )  # fmt: skip
    username = read.string("imagePullUsername", _USER_NAME, "must be a user name (no ':' or white space)", optional=True)
    password = read.secret_string("imagePullPassword", _PASSWORD, "must be the registry's password (no white space)")
    if password is not None and not is_secret("imagePullPassword"):
        read.problems.append(
            f"{CONFIG_NAMESPACE}:imagePullPassword is stored in plaintext: set it with `pulumi config set --secret "
            f"{CONFIG_NAMESPACE}:imagePullPassword` (and treat the one in the stack file as exposed)"
        )
        return None
    given = [key for key, value in zip(IMAGE_PULL_KEYS, (registry, username, password)) if value is not None or read.refused(key)]
    if given and len(given) < len(IMAGE_PULL_KEYS):
        every = ", ".join(f"{CONFIG_NAMESPACE}:{key}" for key in IMAGE_PULL_KEYS)
        missing = ", ".join(f"{CONFIG_NAMESPACE}:{key}" for key in IMAGE_PULL_KEYS if key not in given)
        read.problems.append(f"an image pull credential needs all of {every}; not set: {missing}")
        return None
    if registry is None or username is None or password is None:
        return None
    return ImagePullSettings(registry=registry, username=username, password=password)


def _check_edge_mode(read: ConfigReader, edge: EdgeSettings) -> None:
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
        passphrase_file=os.environ.get(PASSPHRASE_FILE_VARIABLE),
        is_secret=lambda key: is_config_secret(f"{CONFIG_NAMESPACE}:{key}"),
    )
