"""What every workload of the stack shares: the Pod Security Standards "restricted"
profile, one shape of hardened container, spreading across nodes, and a disruption budget
once there is more than one pod.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from .labels import PartLabels
from .settings import Image, Resources

Container = k8s.core.v1.ContainerArgsDict
EnvVar = k8s.core.v1.EnvVarArgsDict
Probe = k8s.core.v1.ProbeArgsDict
Volume = k8s.core.v1.VolumeArgsDict
VolumeMount = k8s.core.v1.VolumeMountArgsDict


def pod_security_context(user_id: int) -> k8s.core.v1.PodSecurityContextArgsDict:
    # fsGroup makes mounted volumes (PVCs, Secrets) readable by the unprivileged user;
    # OnRootMismatch skips the recursive chown of a large volume on every start.
    return {
        "run_as_non_root": True,
        "run_as_user": user_id,
        "run_as_group": user_id,
        "fs_group": user_id,
        "fs_group_change_policy": "OnRootMismatch",
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> k8s.core.v1.SecurityContextArgsDict:
    return {
        "allow_privilege_escalation": False,
        "read_only_root_filesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


@dataclass(frozen=True)
class HardenedContainer:
    """One container of a workload: what differs between the tiers. Everything else
    (security context, pull policy, one named TCP port) is the same for all of them."""

    name: str
    image: Image
    resources: Resources
    port_name: str
    port: int
    readiness_probe: Probe
    liveness_probe: Probe
    command: Sequence[str] = ()
    env: Sequence[EnvVar] = ()
    volume_mounts: Sequence[VolumeMount] = ()
    lifecycle: k8s.core.v1.LifecycleArgsDict | None = None
    startup_probe: Probe | None = None

    def to_kubernetes(self) -> Container:
        # Typed on its own: inside the container's literal, a wrong key of the port would
        # be reported without its name.
        port: k8s.core.v1.ContainerPortArgsDict = {"name": self.port_name, "container_port": self.port, "protocol": "TCP"}
        container: Container = {
            "name": self.name,
            "image": self.image.reference,
            "image_pull_policy": "IfNotPresent",
            "ports": [port],
            "env": list(self.env),
            "resources": self.resources.to_kubernetes(),
            "security_context": container_security_context(),
            "readiness_probe": self.readiness_probe,
            "liveness_probe": self.liveness_probe,
            "volume_mounts": list(self.volume_mounts),
        }
        if self.command:
            container["command"] = list(self.command)
        if self.lifecycle:
            container["lifecycle"] = self.lifecycle
        if self.startup_probe:
            container["startup_probe"] = self.startup_probe
        return container


def hardened_pod_template(
    labels: PartLabels,
    pod_labels: dict[str, str],
    user_id: int,
    containers: Sequence[HardenedContainer],
    volumes: Sequence[Volume],
    *,
    rollout_aware: bool,
    termination_grace_period_seconds: int | None = None,
    image_pull_secret: pulumi.Input[str] | None = None,
) -> k8s.core.v1.PodTemplateSpecArgsDict:
    """A pod of hardened containers, as every workload of the stack runs it; its images
    pulled with the credential in `image_pull_secret`, when it names one."""
    spec: k8s.core.v1.PodSpecArgsDict = {
        "security_context": pod_security_context(user_id),
        # None of the tiers talks to the Kubernetes API: no token to steal.
        "automount_service_account_token": False,
        # Otherwise every Service of the namespace injects Docker-link variables into
        # every pod (REDIS_PORT=tcp://10.x.y.z:6379, ...): noise that shadows the
        # variable of the same name in any container that does not set it itself.
        "enable_service_links": False,
        "topology_spread_constraints": spread_across_nodes(labels, rollout_aware=rollout_aware),
        "containers": [container.to_kubernetes() for container in containers],
        "volumes": list(volumes),
    }
    if termination_grace_period_seconds is not None:
        spec["termination_grace_period_seconds"] = termination_grace_period_seconds
    if image_pull_secret is not None:
        spec["image_pull_secrets"] = [{"name": image_pull_secret}]
    metadata: k8s.meta.v1.ObjectMetaArgsDict = {"labels": pod_labels}
    if len(containers) > 1:
        # `kubectl exec` and `logs` pick the first container when none is named, and warn
        # that they did: this says which one is meant.
        metadata["annotations"] = {"kubectl.kubernetes.io/default-container": containers[0].name}
    return {"metadata": metadata, "spec": spec}


def spread_across_nodes(labels: PartLabels, *, rollout_aware: bool) -> list[k8s.core.v1.TopologySpreadConstraintArgsDict]:
    across_nodes: k8s.core.v1.TopologySpreadConstraintArgsDict = {
        "max_skew": 1,
        "topology_key": "kubernetes.io/hostname",
        # A rule, not a preference: two pods of a tier share a node only once every node
        # has one, so losing any one node never takes a replicated tier down. (The skew is
        # counted over the nodes there are: one node still takes them all.)
        "when_unsatisfiable": "DoNotSchedule",
        # A cordoned, draining or unreachable node is tainted: left out of the count, it
        # does not hold back the replacements of its pods on the nodes that remain.
        "node_taints_policy": "Honor",
        "label_selector": labels.pod_selector,
    }
    across_zones: k8s.core.v1.TopologySpreadConstraintArgsDict = {
        "max_skew": 1,
        "topology_key": "topology.kubernetes.io/zone",
        # A preference: nodes without a zone label (a one-node cluster) must still qualify.
        "when_unsatisfiable": "ScheduleAnyway",
        "label_selector": labels.pod_selector,
    }
    constraints = [across_nodes, across_zones]
    if rollout_aware:
        # During a rollout the old and the new ReplicaSet's pods would be counted
        # together; pod-template-hash makes the skew count the new pods only.
        for constraint in constraints:
            constraint["match_label_keys"] = ["pod-template-hash"]
    return constraints


def disruption_budget(
    name: str,
    labels: PartLabels,
    namespace: pulumi.Input[str],
    replicas: int,
    opts: pulumi.ResourceOptions,
) -> k8s.policy.v1.PodDisruptionBudget | None:
    """One pod at a time may be evicted (node drains, upgrades); none for a single pod,
    where a budget would only block every drain."""
    if replicas < 2:
        return None
    return k8s.policy.v1.PodDisruptionBudget(
        f"{name}-pdb",
        metadata={"name": labels.component, "namespace": namespace, "labels": labels.object_labels},
        spec={"max_unavailable": 1, "selector": labels.pod_selector},
        opts=opts,
    )
