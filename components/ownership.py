"""The stack owns every field it sets: a hand edit is drift to undo, not a second owner.

The provider applies objects server-side, and the API server refuses an apply that
would take over a field another field manager set since (`kubectl scale` owns
`.spec.replicas` through the scale subresource, `kubectl edit` whatever it changed):
`up --refresh` would stop with "Server-Side Apply field conflict" instead of putting
the object back. With pulumi.com/patchForce on every object the provider forces its
apply, as `kubectl apply --server-side --force-conflicts` does, and the cluster ends
as the program says (docs/operations.md, Drift). A stack transformation, so that no
object of any component is left out (see waits.py for why not a transform).
"""

from typing import Any

import pulumi

FORCE_APPLY = {"pulumi.com/patchForce": "true"}


def own_every_field() -> None:
    def owned(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        metadata: Any = args.props.get("metadata")
        if not args.type_.startswith("kubernetes:") or not isinstance(metadata, dict):
            return None
        annotations = pulumi.Output.from_input(metadata.get("annotations") or {}).apply(
            lambda given: {**(given or {}), **FORCE_APPLY}
        )
        props = {**args.props, "metadata": {**metadata, "annotations": annotations}}
        return pulumi.ResourceTransformationResult(props, args.opts)

    pulumi.runtime.register_stack_transformation(owned)
