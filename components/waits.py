"""How long `pulumi up` waits.

The Kubernetes provider awaits what it creates: a Deployment or StatefulSet until its
pods are Ready, an Ingress until it has an address and its backends, a custom resource
until its pulumi.com/waitFor conditions hold (and a Service until it has endpoints,
unless told otherwise: below). Each wait gives up after ten minutes by default. With the
stack's rolloutTimeout on every resource, `up` fails in that time instead, naming the
object and its pods' reasons. A stack transformation, so that no resource of any
component is left out.

Services are not awaited at all. The provider's Service wait adds ten seconds of
"settling" after the endpoints appear, and the Deployment and the Ingress that take a
Service's name wait for it: that was most of a first `up`. What it guarded is guarded
elsewhere: every Service selects the pods of a workload whose rollout `up` does await
(pods Ready, hence endpoints), and the Ingress wait still needs its backends' Services
and the controller's address.
"""

import pulumi

from .settings import Rollout

NOT_AWAITED = {"pulumi.com/skipAwait": "true"}


def bound_every_wait(rollout: Rollout) -> None:
    def bounded(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult:
        timeouts = pulumi.ResourceOptions(custom_timeouts=rollout.custom_timeouts)
        return pulumi.ResourceTransformationResult(args.props, pulumi.ResourceOptions.merge(args.opts, timeouts))

    # A transformation, not its successor the transform (register_resource_transform):
    # the SDK applies a transformation itself, before it registers each resource, but a
    # transform is run by the engine, and Pulumi's mock monitor (pulumi 3.272) accepts
    # one and never calls it. Under the mocks of the unit tests, no resource would carry
    # the timeouts, and no test could hold `up` to its bound.
    pulumi.runtime.register_stack_transformation(bounded)
