"""Frontend: the stateless journal API behind /api.

It reads from every Redis replica, writes to the master, and finds the Redis password
as a file. Its configuration lives in an auto-named ConfigMap, so a changed value rolls
the Deployment instead of going unnoticed by running pods.
"""

import pulumi
import pulumi_kubernetes as k8s

from .hardening import container_security_context, disruption_budget, pod_spec_defaults, spread_across_nodes
from .labels import TierLabels
from .redis import RedisConnection
from .settings import FrontendSettings

API_PORT = 8080
API_PATH = "/api"
HEALTH_PATH = "/api/healthz"
PASSWORD_MOUNT = "/etc/redis-passwd"
# Any unprivileged uid works: the image is run, not trusted to pick one.
FRONTEND_USER_ID = 10001


class Frontend(pulumi.ComponentResource):
    service_name: pulumi.Output[str]
    service_port: int = API_PORT

    def __init__(
        self,
        name: str,
        settings: FrontendSettings,
        labels: TierLabels,
        namespace: pulumi.Input[str],
        redis: RedisConnection,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("journal:index:Frontend", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # Auto-named on purpose: see the module docstring.
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"namespace": namespace, "labels": labels.labels},
            data={"journalEntries": str(settings.journal_entries)},
            opts=child,
        )

        http_probe = {"httpGet": {"path": HEALTH_PATH, "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 2}
        pod_labels = labels.labels_with_version(settings.image.version)
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={"name": labels.component, "namespace": namespace, "labels": pod_labels},
            spec={
                "replicas": settings.replicas,
                "selector": {"matchLabels": labels.selector},
                # A new pod must be Ready before an old one goes: no capacity dip on rollout.
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {
                        **pod_spec_defaults(FRONTEND_USER_ID),
                        "topologySpreadConstraints": spread_across_nodes(labels, rollout_aware=True),
                        "containers": [
                            {
                                "name": "api",
                                "image": settings.image.reference,
                                "imagePullPolicy": "IfNotPresent",
                                "ports": [{"name": "http", "containerPort": API_PORT, "protocol": "TCP"}],
                                "env": [
                                    {
                                        "name": "JOURNAL_ENTRIES",
                                        "valueFrom": {
                                            "configMapKeyRef": {"name": config.metadata.name, "key": "journalEntries"}
                                        },
                                    },
                                    {"name": "REDIS_READ_HOST", "value": redis.read_host},
                                    {"name": "REDIS_WRITE_HOST", "value": redis.write_host},
                                    {"name": "REDIS_PORT", "value": str(redis.port)},
                                    {
                                        "name": "REDIS_PASSWORD_FILE",
                                        "value": f"{PASSWORD_MOUNT}/{redis.password_secret_key}",
                                    },
                                ],
                                "resources": settings.resources.to_kubernetes(),
                                "securityContext": container_security_context(),
                                "readinessProbe": {**http_probe, "failureThreshold": 3},
                                "livenessProbe": {**http_probe, "failureThreshold": 6},
                                "volumeMounts": [
                                    {"name": "redis-password", "mountPath": PASSWORD_MOUNT, "readOnly": True},
                                    {"name": "tmp", "mountPath": "/tmp"},
                                ],
                            }
                        ],
                        "volumes": [
                            {
                                "name": "redis-password",
                                "secret": {"secretName": redis.password_secret_name, "defaultMode": 0o440},
                            },
                            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                        ],
                    },
                },
            },
            opts=child,
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": labels.component, "namespace": namespace, "labels": labels.labels},
            spec={
                "type": "ClusterIP",
                "selector": labels.selector,
                "ports": [{"name": "http", "port": API_PORT, "targetPort": "http", "protocol": "TCP"}],
            },
            opts=child,
        )
        disruption_budget(name, labels, namespace, settings.replicas, child)

        self.service_name = service.metadata.name
        self.deployment_name = deployment.metadata.name
        self.register_outputs({"serviceName": self.service_name, "deploymentName": self.deployment_name})
