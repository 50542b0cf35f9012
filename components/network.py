"""TrafficPolicy: who may talk to whom, in one place.

Everything in the namespace is denied in both directions first; each policy after that
opens exactly one path the service needs:

    edge proxy  -> frontend :8080, file server :8080
    frontend    -> redis :6379, and :26379 to ask the Sentinels for the master
    redis       -> redis :6379, :26379 (replicas follow the master, pod 0's election asks
                                        every pod; Sentinels watch the Redis servers and
                                        each other)
The Sentinel port is opened only when Sentinels run (several Redis pods).
    every pod   -> cluster DNS :53
    edge proxy  -> cert-manager's HTTP-01 solver :8089   (only with TLS)

The edge proxy is every pod in one namespace: the ingress controller's
(ingressControllerNamespace) or, with a Gateway, that of its proxies (gatewayNamespace).

Kubelet probes come from the node, which the common network plugins do not subject to
NetworkPolicy, so no rule is needed for them.
"""

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from .fileserver import CONTAINER_PORT as FILESERVER_PORT
from .frontend import API_PORT
from .labels import JournalLabels, PartLabels
from .redis import REDIS_PORT
from .settings import EdgeSettings

ACME_SOLVER_PORT = 8089


def _peer_pods(tier: PartLabels) -> k8s.networking.v1.NetworkPolicyPeerArgsDict:
    return {"pod_selector": tier.pod_selector}


def _tcp(port: int) -> list[k8s.networking.v1.NetworkPolicyPortArgsDict]:
    return [{"protocol": "TCP", "port": port}]


@dataclass(frozen=True)
class TrafficPolicyArgs:
    """What a TrafficPolicy is made of. Every field is required."""

    edge: EdgeSettings
    """The edge's settings: the namespace of its proxies, which alone reach the tiers from
    outside, and whether TLS opens a path to cert-manager's solver."""
    labels: JournalLabels
    """The labels of every part: the policies select the tiers' pods by them, and carry
    the traffic policy's own."""
    namespace: pulumi.Input[str]
    """The namespace the policies go into and apply to."""
    sentinel_port: int | None
    """The port of the Sentinels beside the Redis pods, None when there are none."""


class TrafficPolicy(pulumi.ComponentResource):
    def __init__(self, name: str, args: TrafficPolicyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("journal:index:TrafficPolicy", name, None, opts)
        edge, labels, namespace = args.edge, args.labels, args.namespace
        redis_ports = _tcp(REDIS_PORT) + (_tcp(args.sentinel_port) if args.sentinel_port else [])
        child = pulumi.ResourceOptions(parent=self)
        edge_proxy: k8s.networking.v1.NetworkPolicyPeerArgsDict = {
            "namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": edge.proxy_namespace}}
        }

        def policy(policy_name: str, spec: k8s.networking.v1.NetworkPolicySpecArgsDict) -> k8s.networking.v1.NetworkPolicy:
            return k8s.networking.v1.NetworkPolicy(
                f"{name}-{policy_name}",
                metadata={"name": policy_name, "namespace": namespace, "labels": labels.traffic.object_labels},
                spec=spec,
                opts=child,
            )

        created = [
            policy("default-deny", {"pod_selector": {}, "policy_types": ["Ingress", "Egress"]}),
            policy(
                "allow-dns",
                {
                    "pod_selector": {},
                    "policy_types": ["Egress"],
                    "egress": [
                        {
                            "to": [
                                {
                                    "namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": "kube-system"}},
                                    "pod_selector": {"match_labels": {"k8s-app": "kube-dns"}},
                                }
                            ],
                            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                        }
                    ],
                },
            ),
            policy(
                "frontend",
                {
                    "pod_selector": labels.frontend.pod_selector,
                    "policy_types": ["Ingress", "Egress"],
                    "ingress": [{"from_": [edge_proxy], "ports": _tcp(API_PORT)}],
                    "egress": [{"to": [_peer_pods(labels.redis)], "ports": redis_ports}],
                },
            ),
            policy(
                "redis",
                {
                    "pod_selector": labels.redis.pod_selector,
                    "policy_types": ["Ingress", "Egress"],
                    "ingress": [
                        {"from_": [_peer_pods(labels.frontend), _peer_pods(labels.redis)], "ports": redis_ports}
                    ],
                    "egress": [{"to": [_peer_pods(labels.redis)], "ports": redis_ports}],
                },
            ),
            policy(
                "fileserver",
                {
                    "pod_selector": labels.fileserver.pod_selector,
                    "policy_types": ["Ingress"],
                    "ingress": [{"from_": [edge_proxy], "ports": _tcp(FILESERVER_PORT)}],
                },
            ),
        ]
        if edge.tls is not None:
            # cert-manager starts its solver pods in this namespace, labelled like this;
            # the ACME server reaches them through the edge proxy.
            created.append(
                policy(
                    "acme-http01-solver",
                    {
                        "pod_selector": {"match_labels": {"acme.cert-manager.io/http01-solver": "true"}},
                        "policy_types": ["Ingress"],
                        "ingress": [{"from_": [edge_proxy], "ports": _tcp(ACME_SOLVER_PORT)}],
                    },
                )
            )

        self.policy_names = [p.metadata.name for p in created]
        self.register_outputs({"policyNames": self.policy_names})
