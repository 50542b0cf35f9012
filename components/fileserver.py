"""FileServer: NGINX serving the journal's static files at /.

The image is the user's own static-files image built on an unprivileged NGINX, which
listens on 8080 and keeps its pid and temp files under /tmp, so the root filesystem can
stay read-only.
"""

import pulumi
import pulumi_kubernetes as k8s

from .hardening import container_security_context, disruption_budget, pod_spec_defaults, spread_across_nodes
from .labels import TierLabels
from .settings import FileServerSettings

CONTAINER_PORT = 8080
SERVICE_PORT = 80
# The "nginx" user of the unprivileged NGINX images.
NGINX_USER_ID = 101


class FileServer(pulumi.ComponentResource):
    service_name: pulumi.Output[str]
    service_port: int = SERVICE_PORT

    def __init__(
        self,
        name: str,
        settings: FileServerSettings,
        labels: TierLabels,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("journal:index:FileServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        http_probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 2}
        pod_labels = labels.labels_with_version(settings.image.version)
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={"name": labels.component, "namespace": namespace, "labels": pod_labels},
            spec={
                "replicas": settings.replicas,
                "selector": {"matchLabels": labels.selector},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {
                        **pod_spec_defaults(NGINX_USER_ID),
                        "topologySpreadConstraints": spread_across_nodes(labels, rollout_aware=True),
                        "containers": [
                            {
                                "name": "nginx",
                                "image": settings.image.reference,
                                "imagePullPolicy": "IfNotPresent",
                                "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
                                "resources": settings.resources.to_kubernetes(),
                                "securityContext": container_security_context(),
                                "readinessProbe": {**http_probe, "failureThreshold": 3},
                                "livenessProbe": {**http_probe, "failureThreshold": 6},
                                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                            }
                        ],
                        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
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
                "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
            },
            opts=child,
        )
        disruption_budget(name, labels, namespace, settings.replicas, child)

        self.service_name = service.metadata.name
        self.deployment_name = deployment.metadata.name
        self.register_outputs({"serviceName": self.service_name, "deploymentName": self.deployment_name})
