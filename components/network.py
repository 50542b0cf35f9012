"""TrafficPolicy: who may talk to whom, in one place.

Everything in the namespace is denied in both directions first; each policy after that
opens exactly one path the service needs:

    edge proxy  -> frontend :8080, file server :8080
    frontend    -> redis :6379
    redis       -> redis :6379        (replicas follow the master; an empty master asks them)
    every pod   -> cluster DNS :53
    edge proxy  -> cert-manager's HTTP-01 solver :8089   (only with TLS)

The edge proxy is every pod in one namespace: the ingress controller's
(ingressControllerNamespace) or, with a Gateway, that of its proxies (gatewayNamespace).

Kubelet probes come from the node, which the common network plugins do not subject to
NetworkPolicy, so no rule is needed for them.
"""

import pulumi
import pulumi_kubernetes as k8s

from .fileserver import CONTAINER_PORT as FILESERVER_PORT
from .frontend import API_PORT
from .labels import JournalTiers, TierLabels
from .redis import REDIS_PORT
from .settings import StackSettings

ACME_SOLVER_PORT = 8089


def _peer_pods(tier: TierLabels) -> dict:
    return {"podSelector": {"matchLabels": tier.selector}}


def _tcp(port: int) -> list[dict]:
    return [{"protocol": "TCP", "port": port}]


class TrafficPolicy(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        settings: StackSettings,
        tiers: JournalTiers,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("journal:index:TrafficPolicy", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        edge_proxy = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.edge.proxy_namespace}}}

        def policy(policy_name: str, spec: dict) -> k8s.networking.v1.NetworkPolicy:
            return k8s.networking.v1.NetworkPolicy(
                f"{name}-{policy_name}",
                metadata={"name": policy_name, "namespace": namespace, "labels": tiers.traffic.labels},
                spec=spec,
                opts=child,
            )

        created = [
            policy("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            policy(
                "allow-dns",
                {
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [
                        {
                            "to": [
                                {
                                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
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
                    "podSelector": {"matchLabels": tiers.frontend.selector},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{"from": [edge_proxy], "ports": _tcp(API_PORT)}],
                    "egress": [{"to": [_peer_pods(tiers.redis)], "ports": _tcp(REDIS_PORT)}],
                },
            ),
            policy(
                "redis",
                {
                    "podSelector": {"matchLabels": tiers.redis.selector},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [
                        {"from": [_peer_pods(tiers.frontend), _peer_pods(tiers.redis)], "ports": _tcp(REDIS_PORT)}
                    ],
                    "egress": [{"to": [_peer_pods(tiers.redis)], "ports": _tcp(REDIS_PORT)}],
                },
            ),
            policy(
                "fileserver",
                {
                    "podSelector": {"matchLabels": tiers.fileserver.selector},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": [edge_proxy], "ports": _tcp(FILESERVER_PORT)}],
                },
            ),
        ]
        if settings.edge.tls is not None:
            # cert-manager starts its solver pods in this namespace, labelled like this;
            # the ACME server reaches them through the edge proxy.
            created.append(
                policy(
                    "acme-http01-solver",
                    {
                        "podSelector": {"matchLabels": {"acme.cert-manager.io/http01-solver": "true"}},
                        "policyTypes": ["Ingress"],
                        "ingress": [{"from": [edge_proxy], "ports": _tcp(ACME_SOLVER_PORT)}],
                    },
                )
            )

        self.policy_names = [p.metadata.name for p in created]
        self.register_outputs({"policyNames": self.policy_names})
