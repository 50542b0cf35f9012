"""StackNamespace: the namespace every object of one stack lives in.

Pod Security Admission enforces the "restricted" profile on it, so a pod that slips past
the hardening in code is refused by the API server instead of running privileged.
"""

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from .labels import PartLabels

# Pinned: a new Kubernetes release may tighten "restricted", and the stack should move to
# the new rules on purpose, not on a cluster upgrade.
POD_SECURITY_VERSION = "v1.34"


@dataclass(frozen=True)
class StackNamespaceArgs:
    """What a StackNamespace is made of. `name` and `labels` are required."""

    name: str
    """The namespace's name in the cluster: the stack's `namespace` key, else `journal-<stack>`."""
    labels: PartLabels
    """The namespace's labels; the Pod Security Admission labels are added to them."""
    protected: bool = False
    """Whether Pulumi refuses to delete the namespace, which would take the Redis claims
    with it. Default False: the namespace goes with `pulumi destroy`."""


class StackNamespace(pulumi.ComponentResource):
    name: pulumi.Output[str]

    def __init__(self, name: str, args: StackNamespaceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("journal:index:StackNamespace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        namespace_labels = dict(args.labels.object_labels)
        for mode in ("enforce", "audit", "warn"):
            namespace_labels[f"pod-security.kubernetes.io/{mode}"] = "restricted"
            namespace_labels[f"pod-security.kubernetes.io/{mode}-version"] = POD_SECURITY_VERSION

        # Deleting a namespace deletes every claim in it, whatever the claims' retention
        # policy: protected, `pulumi destroy` or a namespace change refuses instead.
        created = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": args.name, "labels": namespace_labels},
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=args.protected)),
        )
        self.name = created.metadata.name
        self.register_outputs({"name": self.name})
