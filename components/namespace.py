"""StackNamespace: the namespace every object of one stack lives in.

Pod Security Admission enforces the "restricted" profile on it, so a pod that slips past
the hardening in code is refused by the API server instead of running privileged.
"""

import pulumi
import pulumi_kubernetes as k8s

from .labels import PartLabels

# Pinned: a new Kubernetes release may tighten "restricted", and the stack should move to
# the new rules on purpose, not on a cluster upgrade.
POD_SECURITY_VERSION = "v1.34"


class StackNamespace(pulumi.ComponentResource):
    name: pulumi.Output[str]

    def __init__(
        self, name: str, namespace: str, labels: PartLabels, protected: bool = False, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("journal:index:StackNamespace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        namespace_labels = dict(labels.object_labels)
        for mode in ("enforce", "audit", "warn"):
            namespace_labels[f"pod-security.kubernetes.io/{mode}"] = "restricted"
            namespace_labels[f"pod-security.kubernetes.io/{mode}-version"] = POD_SECURITY_VERSION

        # Deleting a namespace deletes every claim in it, whatever the claims' retention
        # policy: protected, `pulumi destroy` or a namespace change refuses instead.
        created = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": namespace, "labels": namespace_labels},
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=protected)),
        )
        self.name = created.metadata.name
        self.register_outputs({"name": self.name})
