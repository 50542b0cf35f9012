"""The shape both stateless tiers share: an HTTP Deployment behind a ClusterIP Service,
rolled out without losing capacity, spread across nodes, with a disruption budget."""

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from .hardening import container_security_context, disruption_budget, pod_spec_defaults, spread_across_nodes
from .labels import TierLabels
from .settings import Image, Resources
from .waits import NOT_AWAITED


PRE_STOP_SECONDS = 5


@dataclass(frozen=True)
class HttpContainer:
    name: str
    image: Image
    resources: Resources
    user_id: int
    port: int
    health_path: str
    env: list[dict] = field(default_factory=list)
    volumes: list[dict] = field(default_factory=list)
    volume_mounts: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class StatelessTier:
    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service


def stateless_http_tier(
    name: str,
    labels: TierLabels,
    namespace: pulumi.Input[str],
    replicas: int,
    container: HttpContainer,
    service_port: int,
    opts: pulumi.ResourceOptions,
) -> StatelessTier:
    http_probe = {"httpGet": {"path": container.health_path, "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 2}
    pod_labels = labels.labels_with_version(container.image.version)
    deployment = k8s.apps.v1.Deployment(
        f"{name}-deployment",
        metadata={"name": labels.component, "namespace": namespace, "labels": pod_labels},
        spec={
            "replicas": replicas,
            "selector": {"matchLabels": labels.selector},
            # A new pod must be Ready before an old one goes: no capacity dip on rollout.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    **pod_spec_defaults(container.user_id),
                    "topologySpreadConstraints": spread_across_nodes(labels, rollout_aware=True),
                    "containers": [
                        {
                            "name": container.name,
                            "image": container.image.reference,
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"name": "http", "containerPort": container.port, "protocol": "TCP"}],
                            "env": container.env,
                            "resources": container.resources.to_kubernetes(),
                            "securityContext": container_security_context(),
                            # Often: a new pod joins the Service (and `up` returns) within
                            # two seconds of answering, not at the next of 10-second checks;
                            # one that stops answering leaves it within six.
                            "readinessProbe": {**http_probe, "periodSeconds": 2, "failureThreshold": 3},
                            # A pod being replaced leaves the Service's endpoints at once, but
                            # the ingress controller and kube-proxy learn of it a moment
                            # later: it keeps serving for those seconds before SIGTERM.
                            "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
                            # Slower to give up than readiness: a busy pod is taken out
                            # of the Service long before it is restarted.
                            "livenessProbe": {**http_probe, "failureThreshold": 6},
                            # The root filesystem is read-only; /tmp is the one scratch space.
                            "volumeMounts": [*container.volume_mounts, {"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [*container.volumes, {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
        opts=opts,
    )
    service = k8s.core.v1.Service(
        f"{name}-service",
        metadata={"name": labels.component, "namespace": namespace, "labels": labels.labels, "annotations": NOT_AWAITED},
        spec={
            "type": "ClusterIP",
            "selector": labels.selector,
            "ports": [{"name": "http", "port": service_port, "targetPort": "http", "protocol": "TCP"}],
        },
        opts=opts,
    )
    disruption_budget(name, labels, namespace, replicas, opts)
    return StatelessTier(deployment=deployment, service=service)
