"""RedisCluster: one Redis master and its replicas, with a generated password.

Pod 0 of the StatefulSet is the master; every other pod replicates from it through the
master's stable DNS name. The launch and probe scripts beside this file are shipped
verbatim in a ConfigMap and are the same files the tests run against real redis-server.
"""

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from .hardening import HardenedContainer, Probe, Volume, disruption_budget, hardened_pod_template
from .labels import PartLabels
from .settings import RedisSettings
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
PASSWORD_FILE_KEY = "passwd"
PASSWORD_MOUNT = "/etc/redis-passwd"
SCRIPTS_MOUNT = "/scripts"
LAUNCH_SCRIPT = Path(__file__).with_name("redis-launch.sh")
PROBE_SCRIPT = Path(__file__).with_name("redis-probe.sh")
# An operator's decision for a master on an empty volume (see the README): an
# annotation on the pod, read at each container start, so it takes effect at pod 0's
# next restart without changing the template, which would roll every Redis pod.
RECOVERY_ANNOTATION = "journal-iac/redis-recovery"
# Ten-second checks until a Redis answers at its start: room for the empty master's
# survey of its peers and its copy of the journal (see redis-launch.sh).
STARTUP_CHECKS = 40


@dataclass(frozen=True)
class RedisConnection:
    """What a client of the cluster needs: where to read, where to write, and the
    Secret holding the password."""

    read_host: pulumi.Output[str]
    write_host: pulumi.Output[str]
    port: int
    password_secret_name: pulumi.Output[str]
    password_secret_key: str


@dataclass(frozen=True)
class RedisClusterArgs:
    """What a RedisCluster is made of. Every field is required."""

    settings: RedisSettings
    """Image, pod count, resources, storage, password length and protection, from the
    stack's config."""
    labels: PartLabels
    """The Redis tier's labels: every object carries them, and they select its pods."""
    namespace: pulumi.Input[str]
    """The namespace every object goes into."""


class RedisCluster(pulumi.ComponentResource):
    """One master and its replicas: pod 0 takes the writes, every pod serves reads.

    Not Redis Cluster, Redis's sharded mode: every pod holds the whole dataset, and no
    replica takes over from the master on its own. The name is the one the design card
    gives this tier, and its type token (`journal:index:RedisCluster`) is in the URN of
    every object a deployed stack holds: a new token would replace them all.
    """

    connection: RedisConnection

    def __init__(self, name: str, args: RedisClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("journal:index:RedisCluster", name, None, opts)
        self._name = name
        self._settings = args.settings
        self._labels = args.labels
        self._namespace = args.namespace
        self._child = pulumi.ResourceOptions(parent=self)

        password_secret = self._password_secret()
        scripts = self._scripts()
        write_service = self._write_service()
        read_service = self._read_service()
        master_host = self._master_host(write_service)
        statefulset = self._statefulset(write_service, master_host, scripts, password_secret)
        disruption_budget(name, args.labels, args.namespace, args.settings.replicas, self._child)

        self.connection = RedisConnection(
            read_host=pulumi.Output.concat(read_service.metadata.name, ".", args.namespace, ".svc"),
            write_host=master_host,
            port=REDIS_PORT,
            password_secret_name=password_secret.metadata.name,
            password_secret_key=PASSWORD_FILE_KEY,
        )
        self.statefulset_name = statefulset.metadata.name
        self.register_outputs(
            {
                "readHost": self.connection.read_host,
                "writeHost": self.connection.write_host,
                "passwordSecretName": self.connection.password_secret_name,
                "statefulSetName": self.statefulset_name,
            }
        )

    @property
    def _statefulset_name(self) -> str:
        return self._labels.component

    # --- the password and the scripts ------------------------------------------------

    def _password_secret(self) -> k8s.core.v1.Secret:
        # Alphanumeric only: the password is written into redis.conf and into client
        # URLs, where quotes and '@' need escaping; 32+ characters of 62 symbols is
        # over 190 bits. RandomPassword (unlike RandomString) keeps the result secret
        # in state.
        password = random.RandomPassword(
            f"{self._name}-password", length=self._settings.password_length, special=False, opts=self._child
        )
        return k8s.core.v1.Secret(
            f"{self._name}-password",
            metadata={
                "name": f"{self._labels.component}-password",
                "namespace": self._namespace,
                "labels": self._labels.object_labels,
            },
            type="Opaque",
            string_data={PASSWORD_FILE_KEY: password.result},
            opts=self._child,
        )

    def _scripts(self) -> k8s.core.v1.ConfigMap:
        # Auto-named: a changed script gets a new ConfigMap name, which changes the pod
        # template and rolls the StatefulSet; the old ConfigMap is deleted only after.
        return k8s.core.v1.ConfigMap(
            f"{self._name}-scripts",
            metadata={"namespace": self._namespace, "labels": self._labels.object_labels},
            data={
                LAUNCH_SCRIPT.name: LAUNCH_SCRIPT.read_text(),
                PROBE_SCRIPT.name: PROBE_SCRIPT.read_text(),
            },
            opts=self._child,
        )

    # --- the Services ----------------------------------------------------------------

    def _write_service(self) -> k8s.core.v1.Service:
        # Headless and named in the StatefulSet's serviceName: this is what gives each pod
        # the DNS name <pod>.<service>. Not-ready addresses are published so replicas can
        # resolve the master before it reports Ready.
        return self._service(
            f"{self._name}-write",
            f"{self._labels.component}-write",
            {"cluster_ip": "None", "publish_not_ready_addresses": True},
        )

    def _master_host(self, write_service: k8s.core.v1.Service) -> pulumi.Output[str]:
        # "<pod>.<service>.<namespace>.svc" leaves the cluster domain to the pod's DNS
        # search path instead of assuming "cluster.local".
        return pulumi.Output.concat(
            self._statefulset_name, "-0.", write_service.metadata.name, ".", self._namespace, ".svc"
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
        write_service: k8s.core.v1.Service,
        master_host: pulumi.Output[str],
        scripts: k8s.core.v1.ConfigMap,
        password_secret: k8s.core.v1.Secret,
    ) -> k8s.apps.v1.StatefulSet:
        settings, labels = self._settings, self._labels
        pod_labels = labels.labels_with_version(settings.image.version)
        return k8s.apps.v1.StatefulSet(
            f"{self._name}-statefulset",
            metadata={"name": self._statefulset_name, "namespace": self._namespace, "labels": pod_labels},
            spec={
                "service_name": write_service.metadata.name,
                "replicas": settings.replicas,
                # With the default OrderedReady, a pod that never becomes Ready (an image
                # that cannot be pulled) blocks the controller for good: reverting the
                # template does not replace it, someone must delete it by hand. Parallel
                # lets the revert through; updates still go one pod at a time, and replicas
                # started before the master retry until it answers.
                "pod_management_policy": "Parallel",
                "selector": labels.pod_selector,
                # The claims hold the journal: deleting or scaling down the StatefulSet
                # must never delete them with it.
                "persistent_volume_claim_retention_policy": {"when_deleted": "Retain", "when_scaled": "Retain"},
                "template": hardened_pod_template(
                    labels,
                    pod_labels,
                    REDIS_USER_ID,
                    self._redis_container(master_host),
                    self._volumes(scripts, password_secret),
                    rollout_aware=False,
                ),
                "volume_claim_templates": [self._data_claim()],
            },
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

    def _redis_container(self, master_host: pulumi.Output[str]) -> HardenedContainer:
        settings = self._settings

        def probe(mode: str, period: int, failures: int) -> Probe:
            return {
                "exec_": {"command": ["sh", f"{SCRIPTS_MOUNT}/{PROBE_SCRIPT.name}", mode]},
                "period_seconds": period,
                "timeout_seconds": 5,
                "failure_threshold": failures,
            }

        return HardenedContainer(
            name="redis",
            image=settings.image,
            resources=settings.resources,
            port_name="redis",
            port=REDIS_PORT,
            command=["sh", f"{SCRIPTS_MOUNT}/{LAUNCH_SCRIPT.name}"],
            env=[
                {"name": "REDIS_MASTER_HOST", "value": master_host},
                {"name": "REDIS_MASTER_PORT", "value": str(REDIS_PORT)},
                {"name": "REDIS_PORT", "value": str(REDIS_PORT)},
                {"name": "REDIS_PASSWORD_FILE", "value": f"{PASSWORD_MOUNT}/{PASSWORD_FILE_KEY}"},
                {"name": "REDIS_DATA_DIR", "value": "/data"},
                {"name": "REDIS_CONF_DIR", "value": "/etc/redis"},
                # An empty master asks its peers for their data first.
                {"name": "REDIS_PODS", "value": str(settings.replicas)},
                {
                    "name": "REDIS_RECOVERY",
                    "value_from": {"field_ref": {"field_path": f"metadata.annotations['{RECOVERY_ANNOTATION}']"}},
                },
                {
                    "name": "REDIS_MAXMEMORY",
                    "value": str(int(settings.resources.memory_limit_bytes * DATA_SHARE_OF_MEMORY_LIMIT)),
                },
            ],
            # Until the first liveness check passes: an empty master asking its peers
            # (REDIS_PEER_WAIT_SECONDS, 30 s) and copying the journal from one (up to
            # 300 s) answers no probe meanwhile, and a restart part-way would only begin
            # it again.
            startup_probe=probe("liveness", period=10, failures=STARTUP_CHECKS),
            readiness_probe=probe("readiness", period=5, failures=3),
            # Liveness tolerates a node that is loading its data or waiting for its
            # master: restarting it would not help.
            liveness_probe=probe("liveness", period=10, failures=6),
            volume_mounts=[
                {"name": "data", "mount_path": "/data"},
                {"name": "config", "mount_path": "/etc/redis"},
                {"name": "scripts", "mount_path": SCRIPTS_MOUNT, "read_only": True},
                {"name": "password", "mount_path": PASSWORD_MOUNT, "read_only": True},
            ],
        )

    @staticmethod
    def _volumes(scripts: k8s.core.v1.ConfigMap, password_secret: k8s.core.v1.Secret) -> list[Volume]:
        return [
            # The generated redis.conf holds the password: keep it in memory, never on
            # the node's disk.
            {"name": "config", "empty_dir": {"medium": "Memory", "size_limit": "1Mi"}},
            {"name": "scripts", "config_map": {"name": scripts.metadata.name, "default_mode": 0o444}},
            {"name": "password", "secret": {"secret_name": password_secret.metadata.name, "default_mode": 0o440}},
        ]

    def _data_claim(self) -> k8s.core.v1.PersistentVolumeClaimArgsDict:
        storage: k8s.core.v1.PersistentVolumeClaimSpecArgsDict = {
            "access_modes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": self._settings.storage_size}},
        }
        if self._settings.storage_class:
            storage["storage_class_name"] = self._settings.storage_class
        return {"metadata": {"name": "data", "labels": self._labels.selector_labels}, "spec": storage}
