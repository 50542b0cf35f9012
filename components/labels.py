"""The app.kubernetes.io/* labels every object carries, and the selectors built from them.

Selectors use only labels that never change over an object's life: a Deployment's or
StatefulSet's `spec.selector` is immutable, so a label that changes on upgrade (such as
`app.kubernetes.io/version`) in a selector would force a replacement on every release.
"""

from dataclasses import dataclass

import pulumi_kubernetes as k8s

PART_OF = "journal"
MANAGED_BY = "pulumi"


@dataclass(frozen=True)
class PartLabels:
    """Labels of one part (a tier, the namespace, the traffic policy) of one deployed
    instance of the journal service."""

    name: str
    """The software the part runs (`journal-api`, `redis`, `nginx`), or `journal`."""
    component: str
    """The part's role in the service (`frontend`, `redis`, `fileserver`, `edge`, ...)."""
    instance: str
    """The deployed instance, unique per stack (`journal-dev`)."""

    @property
    def selector_labels(self) -> dict[str, str]:
        """The labels that pick out the part's pods, and only those that never change: a
        Service's selector, the labels of a claim template."""
        return {
            "app.kubernetes.io/name": self.name,
            "app.kubernetes.io/instance": self.instance,
            "app.kubernetes.io/component": self.component,
        }

    @property
    def pod_selector(self) -> k8s.meta.v1.LabelSelectorArgsDict:
        """The part's pods as a label selector: of a workload, a budget, a spread
        constraint or a network policy."""
        return {"match_labels": self.selector_labels}

    @property
    def object_labels(self) -> dict[str, str]:
        """The labels every object of the part carries."""
        return {
            **self.selector_labels,
            "app.kubernetes.io/part-of": PART_OF,
            "app.kubernetes.io/managed-by": MANAGED_BY,
        }

    def labels_with_version(self, version: str) -> dict[str, str]:
        """Labels for a workload and its pods: the running version is worth a query."""
        return {**self.object_labels, "app.kubernetes.io/version": version}


@dataclass(frozen=True)
class JournalLabels:
    """The labels of every part of one instance (the namespace, each tier, the traffic
    policy), known before any resource exists, so a policy can name the pods of a tier
    without depending on the tier's component."""

    namespace: PartLabels
    frontend: PartLabels
    redis: PartLabels
    fileserver: PartLabels
    edge: PartLabels
    traffic: PartLabels

    @classmethod
    def of(cls, instance: str) -> "JournalLabels":
        return cls(
            namespace=PartLabels(name="journal", component="namespace", instance=instance),
            frontend=PartLabels(name="journal-api", component="frontend", instance=instance),
            redis=PartLabels(name="redis", component="redis", instance=instance),
            fileserver=PartLabels(name="nginx", component="fileserver", instance=instance),
            edge=PartLabels(name="journal", component="edge", instance=instance),
            traffic=PartLabels(name="journal", component="traffic-policy", instance=instance),
        )
