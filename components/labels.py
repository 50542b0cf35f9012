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
class TierLabels:
    """Labels of one tier of one deployed instance of the journal service."""

    name: str
    """The software the tier runs (`journal-api`, `redis`, `nginx`)."""
    component: str
    """The tier's role in the service (`frontend`, `redis`, `fileserver`, `edge`)."""
    instance: str
    """The deployed instance, unique per stack (`journal-dev`)."""

    @property
    def selector(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": self.name,
            "app.kubernetes.io/instance": self.instance,
            "app.kubernetes.io/component": self.component,
        }

    @property
    def label_selector(self) -> k8s.meta.v1.LabelSelectorArgsDict:
        """The selector of a workload, a budget or a spread constraint: the tier's pods."""
        return {"match_labels": self.selector}

    @property
    def labels(self) -> dict[str, str]:
        return {
            **self.selector,
            "app.kubernetes.io/part-of": PART_OF,
            "app.kubernetes.io/managed-by": MANAGED_BY,
        }

    def labels_with_version(self, version: str) -> dict[str, str]:
        """Labels for a workload and its pods: the running version is worth a query."""
        return {**self.labels, "app.kubernetes.io/version": version}


@dataclass(frozen=True)
class JournalTiers:
    """The labels of every part of one instance, known before any resource exists, so a
    policy can name the pods of a tier without depending on the tier's component."""

    namespace: TierLabels
    frontend: TierLabels
    redis: TierLabels
    fileserver: TierLabels
    edge: TierLabels
    traffic: TierLabels

    @classmethod
    def of(cls, instance: str) -> "JournalTiers":
        return cls(
            namespace=TierLabels(name="journal", component="namespace", instance=instance),
            frontend=TierLabels(name="journal-api", component="frontend", instance=instance),
            redis=TierLabels(name="redis", component="redis", instance=instance),
            fileserver=TierLabels(name="nginx", component="fileserver", instance=instance),
            edge=TierLabels(name="journal", component="edge", instance=instance),
            traffic=TierLabels(name="journal", component="traffic-policy", instance=instance),
        )
