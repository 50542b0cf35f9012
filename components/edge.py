"""Edge: one Ingress that sends /api to the frontend and everything else to the file server,
with a certificate from Let's Encrypt through cert-manager when TLS is on.

The cluster provides the ingress controller and cert-manager; the Edge only declares
what it wants from them.
"""

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from .labels import TierLabels
from .settings import EdgeSettings


@dataclass(frozen=True)
class Route:
    path: str
    service_name: pulumi.Input[str]
    service_port: int


class Edge(pulumi.ComponentResource):
    url: pulumi.Output[str]
    ingress_name: pulumi.Output[str]
    cluster_issuer_name: Optional[str]

    def __init__(
        self,
        name: str,
        settings: EdgeSettings,
        labels: TierLabels,
        namespace: pulumi.Input[str],
        routes: list[Route],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("journal:index:Edge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        annotations = {}
        tls = []
        ingress_depends_on = []
        self.cluster_issuer_name = None
        if settings.tls is not None:
            # A ClusterIssuer is cluster-wide: the instance in its name keeps the dev and
            # prod stacks of one cluster from fighting over the same object.
            self.cluster_issuer_name = f"{labels.instance}-{settings.tls.issuer.value}"
            issuer = k8s.apiextensions.CustomResource(
                f"{name}-cluster-issuer",
                api_version="cert-manager.io/v1",
                kind="ClusterIssuer",
                metadata={"name": self.cluster_issuer_name, "labels": labels.labels},
                spec={
                    "acme": {
                        "server": settings.tls.issuer.acme_server,
                        "email": settings.tls.email,
                        "privateKeySecretRef": {"name": f"{self.cluster_issuer_name}-account-key"},
                        "solvers": [{"http01": {"ingress": {"ingressClassName": settings.ingress_class}}}],
                    }
                },
                opts=child,
            )
            annotations["cert-manager.io/cluster-issuer"] = self.cluster_issuer_name
            # The annotation names the issuer by a plain string: say the dependency, so the
            # issuer exists before the Ingress asks for a certificate and outlives it.
            ingress_depends_on.append(issuer)
            tls = [{"hosts": [settings.host], "secretName": f"{labels.component}-tls"}]

        rule = {
            "http": {
                # Longest prefix wins regardless of order; the order here is for the reader.
                "paths": [
                    {
                        "path": route.path,
                        "pathType": "Prefix",
                        "backend": {"service": {"name": route.service_name, "port": {"number": route.service_port}}},
                    }
                    for route in routes
                ]
            }
        }
        if settings.host:
            rule["host"] = settings.host

        spec = {"ingressClassName": settings.ingress_class, "rules": [rule]}
        if tls:
            spec["tls"] = tls
        ingress = k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata={
                "name": labels.name,
                "namespace": namespace,
                "labels": labels.labels,
                "annotations": annotations,
            },
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self, depends_on=ingress_depends_on),
        )

        scheme = "https" if settings.tls else "http"
        self.url = pulumi.Output.from_input(f"{scheme}://{settings.host}/" if settings.host else "")
        self.ingress_name = ingress.metadata.name
        self.register_outputs({"url": self.url, "ingressName": self.ingress_name})
