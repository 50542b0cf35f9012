"""A one-node Kubernetes on this machine, for running the journal's stacks for real
(scripts/cluster.sh; the commands are in cluster.py)."""


class ClusterError(RuntimeError):
    """A cluster command could not do what it was asked; the message says why."""
