"""StackNamespace: the namespace every object of one stack lives in, and the registry
credential its pods pull with.

Pod Security Admission enforces the "restricted" profile on it, so a pod that slips past
the hardening in code is refused by the API server instead of running privileged.
"""

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from .labels import PartLabels
from .settings import ImagePullSettings

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
    image_pull: ImagePullSettings | None = None
    """The registry credential, made a `kubernetes.io/dockerconfigjson` Secret in the
    namespace for every pod to pull with. Default None: images are pulled without one."""


class StackNamespace(pulumi.ComponentResource):
    name: pulumi.Output[str]
    image_pull_secret: pulumi.Output[str] | None
    """The name of the Secret the pods pull with, when there is a credential."""

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
        self.image_pull_secret = None
        if args.image_pull is not None:
            # The SDK hands a Secret's string_data to the engine as a secret: the state
            # holds the credential encrypted.
            pull_secret = k8s.core.v1.Secret(
                f"{name}-image-pull",
                metadata={"name": "image-pull", "namespace": self.name, "labels": args.labels.object_labels},
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": args.image_pull.docker_config_json()},
                opts=child,
            )
            self.image_pull_secret = pull_secret.metadata.name
        self.register_outputs({"name": self.name, "imagePullSecret": self.image_pull_secret})
