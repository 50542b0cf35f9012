"""Frontend: the stateless journal API behind /api.

It reads from every Redis pod through one Service, writes to the master (with several
Redis pods, the one the Sentinels name, and only once a replica acknowledged the write),
and authenticates as the Redis user `journal`, whose password it finds as a file. Its configuration lives in an auto-named ConfigMap, so a changed value rolls
the Deployment instead of going unnoticed by running pods.

Adding and deleting entries need the stack's write credential, generated here and handed
to the API as a file from a Secret, the way the Redis password is (components/redis.py);
the stack exports it as a secret output for the journal's writers.
"""

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from .hardening import EnvVar
from .labels import PartLabels
from .redis import RedisConnection
from .settings import FrontendSettings
from .stateless_tier import HttpContainer, stateless_http_tier

API_PORT = 8080
API_PATH = "/api"
HEALTH_PATH = "/api/healthz"
PASSWORD_MOUNT = "/etc/redis-passwd"
WRITE_CREDENTIAL_MOUNT = "/etc/journal-write"
WRITE_CREDENTIAL_KEY = "credential"
# Letters and digits only: people paste it into the page and scripts into a header. 32 of
# 62 symbols is over 190 bits, beyond guessing at any rate the API lets a client write.
WRITE_CREDENTIAL_LENGTH = 32
# Any unprivileged uid works: the image is run, not trusted to pick one.
FRONTEND_USER_ID = 10001


@dataclass(frozen=True)
class FrontendArgs:
    """What a Frontend is made of. Every field but `image_pull_secret` is required."""

    settings: FrontendSettings
    """Image, replicas, resources and journal size, from the stack's config."""
    labels: PartLabels
    """The frontend tier's labels: every object carries them, and they select its pods."""
    namespace: pulumi.Input[str]
    """The namespace every object goes into."""
    redis: RedisConnection
    """Where the API reads and writes, and the Secret holding the Redis password."""
    image_pull_secret: pulumi.Input[str] | None = None
    """The Secret its pods pull their image with. Default None: pulled without one."""


def _write_path(redis: RedisConnection) -> list[EnvVar]:
    """Where writes go, in the image contract's variables (README, "The images")."""
    if redis.sentinels is None:
        assert redis.write_host is not None
        return [{"name": "REDIS_WRITE_HOST", "value": redis.write_host}]
    # Asking the Sentinels, not a fixed host: after a failover the master is another
    # pod, and a client that keeps writing to the old one meets READONLY (or, cut off
    # with it, NOREPLICAS) until it asks again.
    return [
        {"name": "REDIS_SENTINELS", "value": redis.sentinels},
        {"name": "REDIS_MASTER_NAME", "value": redis.sentinel_master_name},
        {"name": "REDIS_MIN_REPLICA_ACKS", "value": str(redis.write_acknowledgements)},
    ]


class Frontend(pulumi.ComponentResource):
    service_name: pulumi.Output[str]
    service_port: int = API_PORT
    write_credential: pulumi.Output[str]
    """What adds and deletes entries: a secret output (RandomPassword keeps it encrypted)."""
    write_credential_secret_name: pulumi.Output[str]

    def __init__(self, name: str, args: FrontendArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("journal:index:Frontend", name, None, opts)
        settings, labels, namespace, redis = args.settings, args.labels, args.namespace, args.redis
        child = pulumi.ResourceOptions(parent=self)
        credential = random.RandomPassword(
            f"{name}-write-credential", length=WRITE_CREDENTIAL_LENGTH, special=False, opts=child
        )
        credential_secret = k8s.core.v1.Secret(
            f"{name}-write-credential",
            metadata={
                "name": f"{labels.component}-write-credential",
                "namespace": namespace,
                "labels": labels.object_labels,
            },
            type="Opaque",
            string_data={WRITE_CREDENTIAL_KEY: credential.result},
            opts=child,
        )

        # The API's variables that come from the stack's config: each one's key in the
        # ConfigMap, and its value.
        configured = {
            "JOURNAL_ENTRIES": ("journalEntries", settings.journal_entries),
            "WRITES_PER_MINUTE": ("writesPerMinute", settings.writes_per_minute),
            "WRITE_BURST": ("writeBurst", settings.write_burst),
        }
        # Auto-named on purpose: see the module docstring.
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"namespace": namespace, "labels": labels.object_labels},
            data={key: str(value) for key, value in configured.values()},
            opts=child,
        )
        api = HttpContainer(
            name="api",
            image=settings.image,
            resources=settings.resources,
            user_id=FRONTEND_USER_ID,
            port=API_PORT,
            health_path=HEALTH_PATH,
            env=[
                *(
                    {"name": variable, "value_from": {"config_map_key_ref": {"name": config.metadata.name, "key": key}}}
                    for variable, (key, _value) in configured.items()
                ),
                {"name": "REDIS_READ_HOST", "value": redis.read_host},
                *_write_path(redis),
                {"name": "REDIS_PORT", "value": str(redis.port)},
                {"name": "REDIS_USERNAME", "value": redis.username},
                {"name": "REDIS_PASSWORD_FILE", "value": f"{PASSWORD_MOUNT}/{redis.password_secret_key}"},
                # A file, not the value: the API follows the file when the Secret is
                # rotated, and an environment variable would show in `kubectl describe`.
                {"name": "WRITE_CREDENTIAL_FILE", "value": f"{WRITE_CREDENTIAL_MOUNT}/{WRITE_CREDENTIAL_KEY}"},
            ],
            # Its user's password only (not the hash beside it in the Secret).
            volumes=[
                {
                    "name": "redis-password",
                    "secret": {
                        "secret_name": redis.password_secret_name,
                        "default_mode": 0o440,
                        "items": [{"key": redis.password_secret_key, "path": redis.password_secret_key}],
                    },
                },
                {
                    "name": "write-credential",
                    "secret": {"secret_name": credential_secret.metadata.name, "default_mode": 0o440},
                },
            ],
            volume_mounts=[
                {"name": "redis-password", "mount_path": PASSWORD_MOUNT, "read_only": True},
                {"name": "write-credential", "mount_path": WRITE_CREDENTIAL_MOUNT, "read_only": True},
            ],
        )
        tier = stateless_http_tier(
            name, labels, namespace, settings.replicas, api, API_PORT, child, image_pull_secret=args.image_pull_secret
        )

        self.service_name = tier.service.metadata.name
        self.deployment_name = tier.deployment.metadata.name
        self.write_credential = credential.result
        self.write_credential_secret_name = credential_secret.metadata.name
        self.register_outputs(
            {
                "serviceName": self.service_name,
                "deploymentName": self.deployment_name,
                "writeCredentialSecretName": self.write_credential_secret_name,
            }
        )
