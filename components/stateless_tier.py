"""The shape both stateless tiers share: an HTTP Deployment behind a ClusterIP Service,
rolled out without losing capacity, spread across nodes, with a disruption budget."""

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from .hardening import EnvVar, HardenedContainer, Probe, Volume, VolumeMount, disruption_budget, hardened_pod_template
from .labels import PartLabels
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
    env: list[EnvVar] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)
    volume_mounts: list[VolumeMount] = field(default_factory=list)

    def hardened(self) -> HardenedContainer:
        def http_probe(period: int, failures: int) -> Probe:
            return {
                "http_get": {"path": self.health_path, "port": "http"},
                "period_seconds": period,
                "timeout_seconds": 2,
                "failure_threshold": failures,
            }

        return HardenedContainer(
            name=self.name,
            image=self.image,
            resources=self.resources,
            port_name="http",
            port=self.port,
            env=self.env,
            # Often: a new pod joins the Service (and `up` returns) within two seconds of
            # answering, not at the next of 10-second checks; one that stops answering
            # leaves it within six.
            readiness_probe=http_probe(period=2, failures=3),
            # A pod being replaced leaves the Service's endpoints at once, but the ingress
            # controller and kube-proxy learn of it a moment later: it keeps serving for
            # those seconds before SIGTERM.
            lifecycle={"pre_stop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
            # Slower to give up than readiness: a busy pod is taken out of the Service
            # long before it is restarted.
            liveness_probe=http_probe(period=10, failures=6),
            # The root filesystem is read-only; /tmp is the one scratch space.
            volume_mounts=[*self.volume_mounts, {"name": "tmp", "mount_path": "/tmp"}],
        )


@dataclass(frozen=True)
class StatelessTier:
    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service


def stateless_http_tier(
    name: str,
    labels: PartLabels,
    namespace: pulumi.Input[str],
    replicas: int,
    container: HttpContainer,
    service_port: int,
    opts: pulumi.ResourceOptions,
    image_pull_secret: pulumi.Input[str] | None = None,
) -> StatelessTier:
    pod_labels = labels.labels_with_version(container.image.version)
    deployment = k8s.apps.v1.Deployment(
        f"{name}-deployment",
        metadata={"name": labels.component, "namespace": namespace, "labels": pod_labels},
        spec={
            "replicas": replicas,
            "selector": labels.pod_selector,
            # A new pod must be Ready before an old one goes: no capacity dip on rollout.
            "strategy": {"type": "RollingUpdate", "rolling_update": {"max_unavailable": 0, "max_surge": 1}},
            "template": hardened_pod_template(
                labels,
                pod_labels,
                container.user_id,
                [container.hardened()],
                volumes=[*container.volumes, {"name": "tmp", "empty_dir": {"size_limit": "64Mi"}}],
                rollout_aware=True,
                image_pull_secret=image_pull_secret,
            ),
        },
        opts=opts,
    )
    service = k8s.core.v1.Service(
        f"{name}-service",
        metadata={"name": labels.component, "namespace": namespace, "labels": labels.object_labels, "annotations": NOT_AWAITED},
        spec={
            "type": "ClusterIP",
            "selector": labels.selector_labels,
            "ports": [{"name": "http", "port": service_port, "target_port": "http", "protocol": "TCP"}],
        },
        opts=opts,
    )
    disruption_budget(name, labels, namespace, replicas, opts)
    return StatelessTier(deployment=deployment, service=service)
