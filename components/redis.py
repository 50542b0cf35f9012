"""RedisCluster: one Redis master and its replicas, with a user of its own for each
client (ACL) and a generated password for each.

One pod (dev): it is the master, and nothing fails over. Several pods (prod: 3): a
Sentinel runs beside each Redis, and the Sentinels, by a majority, pick the master and
replace it within seconds when it dies, hangs or is cut off; a planned stop of the
master (rollout, drain, deletion) hands the role over first (preStop). A write counts
only once a replica holds it: the master refuses writes without a replica in sync
(min-replicas-to-write), and clients WAIT for one replica's acknowledgement. Clients
find the master by asking the Sentinels (`RedisConnection.sentinels`).

Users (their rules are in redis-common.sh; `default` is off): `journal`, the frontend's,
may run only the journal's commands on its keys; `replication`, a replica's on its
master; `sentinel`, a Sentinel's on the servers and on the other Sentinels; `operator`,
the scripts' and the probes'; `admin`, people's, whose password no container mounts.
Each password is a RandomPassword in a Secret of its own
with its SHA-256 beside it: the servers' configs define users by hash, and a container
mounts the plaintext only of the users it authenticates as (the frontend: only
`journal`'s).

The scripts beside this file are shipped verbatim in a ConfigMap and are the same files
the tests run against real redis-server and redis-sentinel.
"""

from dataclasses import dataclass
from pathlib import Path

import hashlib

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from .hardening import EnvVar, HardenedContainer, Probe, Volume, VolumeMount, disruption_budget, hardened_pod_template
from .labels import PartLabels
from .settings import RedisSettings, Resources
from .waits import NOT_AWAITED

REDIS_PORT = 6379
# Redis's share of the container's memory limit for data; the rest is headroom for
# the copy-on-write pages of the fork that rewrites the append-only file, client and
# replication buffers, and fragmentation.
DATA_SHARE_OF_MEMORY_LIMIT = 0.7
# Not the image's "redis" user (999): Redis needs no account, only a data directory it
# can write, which fsGroup gives this id on the claim (re-grouping, once, a claim written
# under another id). Above 10000, the id matches no account of the node's.
REDIS_USER_ID = 10999
SENTINEL_PORT = 26379
# Sentinel's name for the journal's master (MASTER_NAME in redis-common.sh).
SENTINEL_MASTER_NAME = "journal"
PASSWORD_FILE_KEY = "passwd"
HASH_FILE_KEY = "sha256"
# The frontend's user, the users of the Redis pods themselves, and people's
# (redis-common.sh).
JOURNAL_USER = "journal"
OTHER_USERS = ("replication", "sentinel", "operator", "admin")
# Where the Redis pods' containers find their users' passwords and hashes
# (REDIS_USERS_DIR): <user> for a password, <user>.sha256 for a hash.
USERS_MOUNT = "/etc/redis-users"
# Of each user, what each container of a Redis pod mounts: the plaintext of those it
# authenticates as (the scripts as `operator`, Redis to its master as `replication`, the
# Sentinel as `sentinel`), the hash of those its server defines. `admin`'s password no
# container mounts: people pipe it in when they need it.
REDIS_CONTAINER_FILES = {"journal": (HASH_FILE_KEY,), "replication": (PASSWORD_FILE_KEY, HASH_FILE_KEY),
                         "sentinel": (HASH_FILE_KEY,), "operator": (PASSWORD_FILE_KEY, HASH_FILE_KEY),
                         "admin": (HASH_FILE_KEY,)}
SENTINEL_CONTAINER_FILES = {"journal": (HASH_FILE_KEY,), "sentinel": (PASSWORD_FILE_KEY, HASH_FILE_KEY),
                            "operator": (PASSWORD_FILE_KEY, HASH_FILE_KEY), "admin": (HASH_FILE_KEY,)}
SCRIPTS_MOUNT = "/scripts"
# In memory, shared by the pod's two containers: redis.conf and sentinel.conf hold the
# passwords Redis and Sentinel send (replication's, sentinel's), and the Sentinel reads
# there which master the Redis beside it follows.
CONFIG_MOUNT = "/etc/redis"
SCRIPTS = [
    Path(__file__).with_name(script)
    for script in ("redis-common.sh", "redis-launch.sh", "redis-probe.sh", "redis-sentinel.sh", "redis-prestop.sh")
]
LAUNCH_SCRIPT, PROBE_SCRIPT, SENTINEL_SCRIPT, PRESTOP_SCRIPT = SCRIPTS[1:]
# An operator's decision for an election that cannot be held because a pod stays
# silent (see docs/operations.md): an annotation on the pod, read at each container
# start, so it takes effect at the next restart without changing the template, which
# would roll every Redis pod.
RECOVERY_ANNOTATION = "journal-iac/redis-recovery"
# Ten-second checks until a Redis answers at its start: room for loading a large
# append-only file and for an election waiting REDIS_PEER_WAIT_SECONDS (30 s) for a
# silent pod.
STARTUP_CHECKS = 40
# The Sentinel waits up to REDIS_SENTINEL_WAIT_SECONDS (120 s) for its Redis to know
# its role; its startup probe must allow longer, or it is restarted mid-wait.
SENTINEL_STARTUP_CHECKS = 15
# How long the preStop hand-over waits, while the master still takes writes, for a
# second replica in sync (REDIS_PRESTOP_REPLICAS_WAIT_SECONDS: in a rollout, the pod
# restarted before may still be syncing), and then for the Sentinels to name a new
# master (REDIS_PRESTOP_WAIT_SECONDS)...
PRESTOP_REPLICAS_WAIT_SECONDS = 15
PRESTOP_WAIT_SECONDS = 10
# ...within the pod's grace period, which must also hold the hook's 3 s wait for the
# replicas to catch up and Redis's own shutdown (it flushes the append-only file).
TERMINATION_GRACE_SECONDS = 45
PRESTOP_LOG = "/proc/1/fd/2"
# Pods and Sentinels reach each other by name, and a restarted pod comes back with a
# new address: until the cluster DNS forgets what it cached about the name (the old
# address, or the miss while the pod had none: `clusterDnsCacheSeconds`, 30 s with
# kubeadm's CoreDNS), its peers cannot reach it, the Sentinels can neither promote nor
# reconfigure it, and the master's hand-over cannot count on it. A rollout goes on to
# the next pod only once the one before has been Ready that long, and this much more
# (the Sentinels' next look at it).
ROLLOUT_PAUSE_MARGIN_SECONDS = 5
# A replica acknowledges every write before the client is told it succeeded (WAIT 1),
# so a failover to it loses none.
WRITE_ACKNOWLEDGEMENTS = 1
# A Sentinel is small: a few MiB of memory, a PING a second to each peer.
SENTINEL_RESOURCES = Resources(cpu_request="20m", cpu_limit="200m", memory_request="32Mi", memory_limit="64Mi")


@dataclass(frozen=True)
class RedisConnection:
    """What a client of the cluster needs: where to read, how to find the master, and
    its user with the Secret holding that user's password."""

    read_host: pulumi.Output[str]
    """A Service over every Redis pod that is Ready: each follows the master, or is it."""
    port: int
    username: str
    """The frontend's Redis user, on the servers and the Sentinels alike."""
    password_secret_name: pulumi.Output[str]
    password_secret_key: str
    write_host: pulumi.Output[str] | None
    """The one pod's host name with a single pod; None with Sentinels, where the master
    moves and only they can say where it is."""
    sentinels: pulumi.Output[str] | None
    """With several pods: every Sentinel's `host:port`, separated by spaces, to ask
    for the master named `sentinel_master_name`."""
    sentinel_port: int | None
    sentinel_master_name: str
    write_acknowledgements: int
    """How many replicas must acknowledge a write (WAIT) before it counts as done."""


@dataclass(frozen=True)
class RedisClusterArgs:
    """What a RedisCluster is made of. Every field but `image_pull_secret` is required."""

    settings: RedisSettings
    """Image, pod count, resources, storage, password length and protection, from the
    stack's config."""
    labels: PartLabels
    """The Redis tier's labels: every object carries them, and they select its pods."""
    namespace: pulumi.Input[str]
    """The namespace every object goes into."""
    image_pull_secret: pulumi.Input[str] | None = None
    """The Secret its pods pull their image with. Default None: pulled without one."""


# Mounted in both containers of a pod.
_CONFIG_MOUNTS: list[VolumeMount] = [
    {"name": "config", "mount_path": CONFIG_MOUNT},
    {"name": "scripts", "mount_path": SCRIPTS_MOUNT, "read_only": True},
]


def _probe(script: Path, mode: str, period: int, failures: int, timeout: int = 5) -> Probe:
    return {
        "exec_": {"command": ["sh", f"{SCRIPTS_MOUNT}/{script.name}", mode]},
        "period_seconds": period,
        "timeout_seconds": timeout,
        "failure_threshold": failures,
    }


def _users_volume(name: str, secrets: dict[str, k8s.core.v1.Secret], files: dict[str, tuple[str, ...]]) -> Volume:
    """One directory of the users' files a container needs: <user> for a password,
    <user>.sha256 for a hash, readable by the pod's group only."""
    return {
        "name": name,
        "projected": {
            "default_mode": 0o440,
            "sources": [
                {
                    "secret": {
                        "name": secrets[user].metadata.name,
                        "items": [
                            {"key": key, "path": user if key == PASSWORD_FILE_KEY else f"{user}.{HASH_FILE_KEY}"}
                            for key in keys
                        ],
                    }
                }
                for user, keys in files.items()
            ],
        },
    }


class RedisCluster(pulumi.ComponentResource):
    """One master and its replicas: the master takes the writes, every pod serves reads,
    and with several pods the Sentinels beside them move the master role when needed.

    Not Redis Cluster, Redis's sharded mode: every pod holds the whole dataset. The name
    is the one the design card gives this tier, and its type token
    (`journal:index:RedisCluster`) is in the URN of every object a deployed stack holds:
    a new token would replace them all.
    """

    connection: RedisConnection

    def __init__(self, name: str, args: RedisClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("journal:index:RedisCluster", name, None, opts)
        self._name = name
        self._settings = args.settings
        self._labels = args.labels
        self._namespace = args.namespace
        self._image_pull_secret = args.image_pull_secret
        self._child = pulumi.ResourceOptions(parent=self)

        # The frontend's password keeps the resource name, and so the value, it had
        # before users. Its Secret is a new one: the provider replaces a Secret whose
        # data changes, and the one it had is named, so it would be deleted first, and
        # the StatefulSet that mounts it (protected) replaced with it.
        secrets = {
            user: self._password_secret(user, f"{name}-password" if user == JOURNAL_USER else f"{name}-{user}-password")
            for user in (JOURNAL_USER, *OTHER_USERS)
        }
        password_secret = secrets[JOURNAL_USER]
        scripts = self._scripts()
        pods_service = self._pods_service()
        read_service = self._read_service()
        pod_hosts = [self._pod_host(pods_service, ordinal) for ordinal in range(args.settings.replicas)]
        statefulset = self._statefulset(pods_service, pod_hosts[0], scripts, secrets)
        disruption_budget(name, args.labels, args.namespace, args.settings.replicas, self._child)

        self.connection = RedisConnection(
            read_host=pulumi.Output.concat(read_service.metadata.name, ".", args.namespace, ".svc"),
            port=REDIS_PORT,
            username=JOURNAL_USER,
            password_secret_name=password_secret.metadata.name,
            password_secret_key=PASSWORD_FILE_KEY,
            write_host=None if self._failover else pod_hosts[0],
            sentinels=pulumi.Output.all(*pod_hosts).apply(
                lambda hosts: " ".join(f"{host}:{SENTINEL_PORT}" for host in hosts)
            )
            if self._failover
            else None,
            sentinel_port=SENTINEL_PORT if self._failover else None,
            sentinel_master_name=SENTINEL_MASTER_NAME,
            write_acknowledgements=WRITE_ACKNOWLEDGEMENTS if self._failover else 0,
        )
        self.statefulset_name = statefulset.metadata.name
        self.register_outputs(
            {
                "readHost": self.connection.read_host,
                "writeHost": self.connection.write_host,
                "sentinels": self.connection.sentinels,
                "passwordSecretName": self.connection.password_secret_name,
                "statefulSetName": self.statefulset_name,
            }
        )

    @property
    def _statefulset_name(self) -> str:
        return self._labels.component

    @property
    def _failover(self) -> bool:
        """Sentinels run beside the pods and move the master role (loader.py refuses 2 pods)."""
        return self._settings.replicas > 1

    # --- the password and the scripts ------------------------------------------------

    def _password_secret(self, user: str, password_name: str) -> k8s.core.v1.Secret:
        # Alphanumeric only: the passwords Redis sends are written into redis.conf and
        # sentinel.conf, where quotes and '@' need escaping; 32+ characters of 62 symbols
        # is over 190 bits. RandomPassword (unlike RandomString) keeps the result secret
        # in state, and the hash computed from it stays secret too. One per user: none
        # can act as another, and each container mounts only what it needs.
        password = random.RandomPassword(
            password_name, length=self._settings.password_length, special=False, opts=self._child
        )
        digest = password.result.apply(lambda value: hashlib.sha256(value.encode()).hexdigest())
        return k8s.core.v1.Secret(
            f"{self._name}-{user}-password",
            metadata={
                "name": f"{self._labels.component}-{user}-password",
                "namespace": self._namespace,
                "labels": self._labels.object_labels,
                "annotations": {"journal-iac/redis-user": user},
            },
            type="Opaque",
            string_data={PASSWORD_FILE_KEY: password.result, HASH_FILE_KEY: pulumi.Output.secret(digest)},
            opts=self._child,
        )

    def _scripts(self) -> k8s.core.v1.ConfigMap:
        # Auto-named: a changed script gets a new ConfigMap name, which changes the pod
        # template and rolls the StatefulSet; the old ConfigMap is deleted only after.
        return k8s.core.v1.ConfigMap(
            f"{self._name}-scripts",
            metadata={"namespace": self._namespace, "labels": self._labels.object_labels},
            data={script.name: script.read_text() for script in SCRIPTS},
            opts=self._child,
        )

    # --- the Services ----------------------------------------------------------------

    def _pods_service(self) -> k8s.core.v1.Service:
        # Headless and named in the StatefulSet's serviceName: this is what gives each pod
        # the DNS name <pod>.<service>, which the pods and the Sentinels announce
        # themselves by. Not-ready addresses are published so a starting pod can reach
        # its peers before they report Ready. Its name ("-write", from when pod 0 was
        # the master for life) stays: serviceName cannot change without replacing the
        # StatefulSet.
        return self._service(
            f"{self._name}-write",
            f"{self._labels.component}-write",
            {"cluster_ip": "None", "publish_not_ready_addresses": True},
        )

    def _pod_host(self, pods_service: k8s.core.v1.Service, ordinal: int) -> pulumi.Output[str]:
        # "<pod>.<service>.<namespace>.svc" leaves the cluster domain to the pod's DNS
        # search path instead of assuming "cluster.local".
        return pulumi.Output.concat(
            self._statefulset_name, f"-{ordinal}.", pods_service.metadata.name, ".", self._namespace, ".svc"
        )

    def _read_service(self) -> k8s.core.v1.Service:
        return self._service(f"{self._name}-read", self._labels.component, {"type": "ClusterIP"})

    def _service(self, resource_name: str, service_name: str, addressing: k8s.core.v1.ServiceSpecArgsDict) -> k8s.core.v1.Service:
        labels = self._labels
        return k8s.core.v1.Service(
            resource_name,
            metadata={"name": service_name, "namespace": self._namespace, "labels": labels.object_labels, "annotations": NOT_AWAITED},
            spec={
                **addressing,
                "selector": labels.selector_labels,
                "ports": [{"name": "redis", "port": REDIS_PORT, "target_port": "redis", "protocol": "TCP"}],
            },
            opts=self._child,
        )

    # --- the StatefulSet -------------------------------------------------------------

    def _statefulset(
        self,
        pods_service: k8s.core.v1.Service,
        pod_zero_host: pulumi.Output[str],
        scripts: k8s.core.v1.ConfigMap,
        secrets: dict[str, k8s.core.v1.Secret],
    ) -> k8s.apps.v1.StatefulSet:
        settings, labels = self._settings, self._labels
        pod_labels = labels.labels_with_version(settings.image.version)
        shared_env = self._shared_env(pod_zero_host)
        containers = [self._redis_container(shared_env)]
        if self._failover:
            containers.append(self._sentinel_container(shared_env))
        spec: k8s.apps.v1.StatefulSetSpecArgsDict = {
            "service_name": pods_service.metadata.name,
            "replicas": settings.replicas,
            # With the default OrderedReady, a pod that never becomes Ready (an image
            # that cannot be pulled) blocks the controller for good: reverting the
            # template does not replace it, someone must delete it by hand. Parallel
            # lets the revert through, and lets every pod start at once after a full
            # restart, which the election needs (pod 0 waits for every pod's answer).
            # Updates still go one pod at a time.
            "pod_management_policy": "Parallel",
            "selector": labels.pod_selector,
            # The claims hold the journal: deleting or scaling down the StatefulSet
            # must never delete them with it.
            "persistent_volume_claim_retention_policy": {"when_deleted": "Retain", "when_scaled": "Retain"},
            "template": hardened_pod_template(
                labels,
                pod_labels,
                REDIS_USER_ID,
                containers,
                self._volumes(scripts, secrets),
                rollout_aware=False,
                termination_grace_period_seconds=TERMINATION_GRACE_SECONDS,
                image_pull_secret=self._image_pull_secret,
            ),
            "volume_claim_templates": [self._data_claim()],
        }
        if self._failover:  # one pod: nobody to reach it by name
            spec["min_ready_seconds"] = settings.cluster_dns_cache_seconds + ROLLOUT_PAUSE_MARGIN_SECONDS
        return k8s.apps.v1.StatefulSet(
            f"{self._name}-statefulset",
            metadata={"name": self._statefulset_name, "namespace": self._namespace, "labels": pod_labels},
            spec=spec,
            # Kubernetes cannot change volumeClaimTemplates in place, so the provider
            # would replace the StatefulSet (delete first: it is named), taking every
            # Redis pod down, and the retained claims would come back at their old size
            # anyway. Size and class apply when the StatefulSet is created; grow the
            # claims themselves to resize (see the README).
            opts=pulumi.ResourceOptions(
                parent=self,
                ignore_changes=["spec.volumeClaimTemplates"],
                # Deleting or replacing the StatefulSet takes every Redis pod down at once.
                protect=settings.protected,
            ),
        )

    def _shared_env(self, pod_zero_host: pulumi.Output[str]) -> list[EnvVar]:
        """What both containers' scripts read (redis-common.sh): who the pods are, and
        how to reach a peer's Redis and Sentinel."""
        return [
            # Every pod's host name is pod 0's with its ordinal changed.
            {"name": "REDIS_MASTER_HOST", "value": pod_zero_host},
            {"name": "REDIS_MASTER_PORT", "value": str(REDIS_PORT)},
            {"name": "REDIS_PODS", "value": str(self._settings.replicas)},
            {"name": "REDIS_SENTINEL_PORT", "value": str(SENTINEL_PORT)},
            {"name": "REDIS_USERS_DIR", "value": USERS_MOUNT},
            {"name": "REDIS_CONF_DIR", "value": CONFIG_MOUNT},
        ]

    def _redis_container(self, shared_env: list[EnvVar]) -> HardenedContainer:
        settings = self._settings
        return HardenedContainer(
            name="redis",
            image=settings.image,
            resources=settings.resources,
            port_name="redis",
            port=REDIS_PORT,
            command=["sh", f"{SCRIPTS_MOUNT}/{LAUNCH_SCRIPT.name}"],
            env=[
                *shared_env,
                {"name": "REDIS_PORT", "value": str(REDIS_PORT)},
                {"name": "REDIS_DATA_DIR", "value": "/data"},
                {
                    "name": "REDIS_RECOVERY",
                    "value_from": {"field_ref": {"field_path": f"metadata.annotations['{RECOVERY_ANNOTATION}']"}},
                },
                {
                    "name": "REDIS_MAXMEMORY",
                    "value": str(int(settings.resources.memory_limit_bytes * DATA_SHARE_OF_MEMORY_LIMIT)),
                },
                {"name": "REDIS_PRESTOP_REPLICAS_WAIT_SECONDS", "value": str(PRESTOP_REPLICAS_WAIT_SECONDS)},
                {"name": "REDIS_PRESTOP_WAIT_SECONDS", "value": str(PRESTOP_WAIT_SECONDS)},
                # PID 1 is redis-server: its standard error is the container's log.
                {"name": "REDIS_PRESTOP_LOG", "value": PRESTOP_LOG},
            ],
            # Until the first liveness check passes: loading a large append-only file,
            # or an election waiting for a silent pod, answers no probe meanwhile, and a
            # restart part-way would only begin it again.
            startup_probe=_probe(PROBE_SCRIPT, "liveness", period=10, failures=STARTUP_CHECKS),
            # With Sentinels, a master is Ready only with a replica in sync (it refuses
            # writes otherwise), and a replica only with its link to the master up, so
            # the read Service never answers from a dataset that stopped following. A
            # hung Redis (its probe's PING unanswered for 2 s) leaves the read Service
            # after two checks, about as soon as the Sentinels replace a hung master.
            readiness_probe=_probe(PROBE_SCRIPT, "readiness", period=2, failures=2, timeout=2),
            # Liveness tolerates a node that is loading its data or waiting for its
            # master: restarting it would not help. A hung Redis is the Sentinels'
            # business: they fail over in seconds, long before 6 failed checks.
            liveness_probe=_probe(PROBE_SCRIPT, "liveness", period=10, failures=6),
            # A planned stop of the master hands its role to a replica first, so writes
            # pause for about a second instead of the Sentinels' detection time.
            lifecycle={"pre_stop": {"exec_": {"command": ["sh", f"{SCRIPTS_MOUNT}/{PRESTOP_SCRIPT.name}"]}}}
            if self._failover
            else None,
            volume_mounts=[
                {"name": "data", "mount_path": "/data"},
                *_CONFIG_MOUNTS,
                {"name": "redis-users", "mount_path": USERS_MOUNT, "read_only": True},
            ],
        )

    def _sentinel_container(self, shared_env: list[EnvVar]) -> HardenedContainer:
        return HardenedContainer(
            name="sentinel",
            image=self._settings.image,
            resources=SENTINEL_RESOURCES,
            port_name="sentinel",
            port=SENTINEL_PORT,
            command=["sh", f"{SCRIPTS_MOUNT}/{SENTINEL_SCRIPT.name}"],
            env=[*shared_env, {"name": "REDIS_PORT", "value": str(REDIS_PORT)}],
            startup_probe=_probe(PROBE_SCRIPT, "sentinel", period=10, failures=SENTINEL_STARTUP_CHECKS),
            readiness_probe=_probe(PROBE_SCRIPT, "sentinel", period=10, failures=3),
            liveness_probe=_probe(PROBE_SCRIPT, "sentinel", period=10, failures=6),
            volume_mounts=[*_CONFIG_MOUNTS, {"name": "sentinel-users", "mount_path": USERS_MOUNT, "read_only": True}],
        )

    def _volumes(self, scripts: k8s.core.v1.ConfigMap, secrets: dict[str, k8s.core.v1.Secret]) -> list[Volume]:
        volumes: list[Volume] = [
            # The generated configs hold passwords: keep them in memory, never on the
            # node's disk.
            {"name": "config", "empty_dir": {"medium": "Memory", "size_limit": "1Mi"}},
            {"name": "scripts", "config_map": {"name": scripts.metadata.name, "default_mode": 0o444}},
            _users_volume("redis-users", secrets, REDIS_CONTAINER_FILES),
        ]
        if self._failover:
            volumes.append(_users_volume("sentinel-users", secrets, SENTINEL_CONTAINER_FILES))
        return volumes

    def _data_claim(self) -> k8s.core.v1.PersistentVolumeClaimArgsDict:
        storage: k8s.core.v1.PersistentVolumeClaimSpecArgsDict = {
            "access_modes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": self._settings.storage_size}},
        }
        if self._settings.storage_class:
            storage["storage_class_name"] = self._settings.storage_class
        return {"metadata": {"name": "data", "labels": self._labels.selector_labels}, "spec": storage}
