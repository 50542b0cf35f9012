"""RedisCluster: one master and its replicas, with a generated password.

Pod 0 of the StatefulSet is the master; every other pod replicates from it through the
master's stable DNS name. The launch and probe scripts beside this file are shipped
verbatim in a ConfigMap and are the same files the tests run against real redis-server.
"""

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from .hardening import container_security_context, disruption_budget, pod_spec_defaults, spread_across_nodes
from .labels import TierLabels
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


@dataclass(frozen=True)
class RedisConnection:
    """What a client of the cluster needs: where to read, where to write, and the
    Secret holding the password."""

    read_host: pulumi.Output[str]
    write_host: pulumi.Output[str]
    port: int
    password_secret_name: pulumi.Output[str]
    password_secret_key: str


class RedisCluster(pulumi.ComponentResource):
    connection: RedisConnection

    def __init__(
        self,
        name: str,
        settings: RedisSettings,
        labels: TierLabels,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("journal:index:RedisCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        read_service_name = labels.component
        write_service_name = f"{labels.component}-write"
        statefulset_name = labels.component

        # Alphanumeric only: the password is written into redis.conf and into client
        # URLs, where quotes and '@' need escaping; 32+ characters of 62 symbols is
        # over 190 bits. RandomPassword (unlike RandomString) keeps the result secret
        # in state.
        password = random.RandomPassword(
            f"{name}-password", length=settings.password_length, special=False, opts=child
        )
        secret = k8s.core.v1.Secret(
            f"{name}-password",
            metadata={"name": f"{labels.component}-password", "namespace": namespace, "labels": labels.labels},
            type="Opaque",
            string_data={PASSWORD_FILE_KEY: password.result},
            opts=child,
        )

        # Auto-named: a changed script gets a new ConfigMap name, which changes the pod
        # template and rolls the StatefulSet; the old ConfigMap is deleted only after.
        scripts = k8s.core.v1.ConfigMap(
            f"{name}-scripts",
            metadata={"namespace": namespace, "labels": labels.labels},
            data={
                LAUNCH_SCRIPT.name: LAUNCH_SCRIPT.read_text(),
                PROBE_SCRIPT.name: PROBE_SCRIPT.read_text(),
            },
            opts=child,
        )

        redis_port = {"name": "redis", "port": REDIS_PORT, "targetPort": "redis", "protocol": "TCP"}
        # Headless and named in the StatefulSet's serviceName: this is what gives each pod
        # the DNS name <pod>.<service>. Not-ready addresses are published so replicas can
        # resolve the master before it reports Ready.
        write_service = k8s.core.v1.Service(
            f"{name}-write",
            metadata={"name": write_service_name, "namespace": namespace, "labels": labels.labels, "annotations": NOT_AWAITED},
            spec={
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": labels.selector,
                "ports": [redis_port],
            },
            opts=child,
        )
        read_service = k8s.core.v1.Service(
            f"{name}-read",
            metadata={"name": read_service_name, "namespace": namespace, "labels": labels.labels, "annotations": NOT_AWAITED},
            spec={"type": "ClusterIP", "selector": labels.selector, "ports": [redis_port]},
            opts=child,
        )

        # "<pod>.<service>.<namespace>.svc" leaves the cluster domain to the pod's DNS
        # search path instead of assuming "cluster.local".
        master_host = pulumi.Output.concat(
            statefulset_name, "-0.", write_service.metadata.name, ".", namespace, ".svc"
        )

        def probe(mode: str, period: int, failures: int) -> dict:
            return {
                "exec": {"command": ["sh", f"{SCRIPTS_MOUNT}/{PROBE_SCRIPT.name}", mode]},
                "periodSeconds": period,
                "timeoutSeconds": 5,
                "failureThreshold": failures,
            }

        storage_spec = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": settings.storage_size}},
        }
        if settings.storage_class:
            storage_spec["storageClassName"] = settings.storage_class

        statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata={
                "name": statefulset_name,
                "namespace": namespace,
                "labels": labels.labels_with_version(settings.image.version),
            },
            spec={
                "serviceName": write_service.metadata.name,
                "replicas": settings.replicas,
                # With the default OrderedReady, a pod that never becomes Ready (an image
                # that cannot be pulled) blocks the controller for good: reverting the
                # template does not replace it, someone must delete it by hand. Parallel
                # lets the revert through; updates still go one pod at a time, and replicas
                # started before the master retry until it answers.
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": labels.selector},
                # The claims hold the journal: deleting or scaling down the StatefulSet
                # must never delete them with it.
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "template": {
                    "metadata": {"labels": labels.labels_with_version(settings.image.version)},
                    "spec": {
                        **pod_spec_defaults(REDIS_USER_ID),
                        "topologySpreadConstraints": spread_across_nodes(labels, rollout_aware=False),
                        "containers": [
                            {
                                "name": "redis",
                                "image": settings.image.reference,
                                "imagePullPolicy": "IfNotPresent",
                                "command": ["sh", f"{SCRIPTS_MOUNT}/{LAUNCH_SCRIPT.name}"],
                                "env": [
                                    {"name": "REDIS_MASTER_HOST", "value": master_host},
                                    {"name": "REDIS_MASTER_PORT", "value": str(REDIS_PORT)},
                                    {"name": "REDIS_PORT", "value": str(REDIS_PORT)},
                                    {"name": "REDIS_PASSWORD_FILE", "value": f"{PASSWORD_MOUNT}/{PASSWORD_FILE_KEY}"},
                                    {"name": "REDIS_DATA_DIR", "value": "/data"},
                                    {"name": "REDIS_CONF_DIR", "value": "/etc/redis"},
                                    {
                                        "name": "REDIS_MAXMEMORY",
                                        "value": str(
                                            int(settings.resources.memory_limit_bytes * DATA_SHARE_OF_MEMORY_LIMIT)
                                        ),
                                    },
                                ],
                                "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
                                "resources": settings.resources.to_kubernetes(),
                                "securityContext": container_security_context(),
                                "readinessProbe": probe("readiness", period=5, failures=3),
                                # Liveness tolerates a node that is loading its data or
                                # waiting for its master: restarting it would not help.
                                "livenessProbe": probe("liveness", period=10, failures=6),
                                "volumeMounts": [
                                    {"name": "data", "mountPath": "/data"},
                                    {"name": "config", "mountPath": "/etc/redis"},
                                    {"name": "scripts", "mountPath": SCRIPTS_MOUNT, "readOnly": True},
                                    {"name": "password", "mountPath": PASSWORD_MOUNT, "readOnly": True},
                                ],
                            }
                        ],
                        "volumes": [
                            # The generated redis.conf holds the password: keep it in
                            # memory, never on the node's disk.
                            {"name": "config", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                            {"name": "scripts", "configMap": {"name": scripts.metadata.name, "defaultMode": 0o444}},
                            {
                                "name": "password",
                                "secret": {"secretName": secret.metadata.name, "defaultMode": 0o440},
                            },
                        ],
                    },
                },
                "volumeClaimTemplates": [
                    {"metadata": {"name": "data", "labels": labels.selector}, "spec": storage_spec}
                ],
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
        disruption_budget(name, labels, namespace, settings.replicas, child)

        self.connection = RedisConnection(
            read_host=pulumi.Output.concat(read_service.metadata.name, ".", namespace, ".svc"),
            write_host=master_host,
            port=REDIS_PORT,
            password_secret_name=secret.metadata.name,
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
