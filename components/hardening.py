"""What every workload of the stack shares: the Pod Security Standards "restricted"
profile, spreading across nodes, and a disruption budget once there is more than one pod.
"""

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from .labels import TierLabels


def pod_security_context(user_id: int) -> dict:
    # fsGroup makes mounted volumes (PVCs, Secrets) readable by the unprivileged user;
    # OnRootMismatch skips the recursive chown of a large volume on every start.
    return {
        "runAsNonRoot": True,
        "runAsUser": user_id,
        "runAsGroup": user_id,
        "fsGroup": user_id,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_spec_defaults(user_id: int) -> dict:
    """Fields every pod spec of the stack sets."""
    return {
        "securityContext": pod_security_context(user_id),
        # None of the tiers talks to the Kubernetes API: no token to steal.
        "automountServiceAccountToken": False,
        # Otherwise every Service of the namespace injects Docker-link variables into
        # every pod (REDIS_PORT=tcp://10.x.y.z:6379, ...): noise that shadows the
        # variable of the same name in any container that does not set it itself.
        "enableServiceLinks": False,
    }


def spread_across_nodes(labels: TierLabels, *, rollout_aware: bool) -> list[dict]:
    selector = {"matchLabels": labels.selector}
    across_nodes = {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        # A rule, not a preference: two pods of a tier share a node only once every node
        # has one, so losing any one node never takes a replicated tier down. (The skew is
        # counted over the nodes there are: one node still takes them all.)
        "whenUnsatisfiable": "DoNotSchedule",
        # A cordoned, draining or unreachable node is tainted: left out of the count, it
        # does not hold back the replacements of its pods on the nodes that remain.
        "nodeTaintsPolicy": "Honor",
        "labelSelector": selector,
    }
    across_zones = {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        # A preference: nodes without a zone label (a one-node cluster) must still qualify.
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": selector,
    }
    constraints = [across_nodes, across_zones]
    if rollout_aware:
        # During a rollout the old and the new ReplicaSet's pods would be counted
        # together; pod-template-hash makes the skew count the new pods only.
        for constraint in constraints:
            constraint["matchLabelKeys"] = ["pod-template-hash"]
    return constraints


def disruption_budget(
    name: str,
    labels: TierLabels,
    namespace: pulumi.Input[str],
    replicas: int,
    opts: pulumi.ResourceOptions,
) -> Optional[k8s.policy.v1.PodDisruptionBudget]:
    """One pod at a time may be evicted (node drains, upgrades); none for a single pod,
    where a budget would only block every drain."""
    if replicas < 2:
        return None
    return k8s.policy.v1.PodDisruptionBudget(
        f"{name}-pdb",
        metadata={"name": labels.component, "namespace": namespace, "labels": labels.labels},
        spec={"maxUnavailable": 1, "selector": {"matchLabels": labels.selector}},
        opts=opts,
    )
