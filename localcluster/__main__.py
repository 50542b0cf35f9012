"""scripts/cluster.sh: up | down | status | kubeconfig | acme-root | images (see localcluster/cluster.py)."""

import sys

from . import ClusterError, cluster, images
from .commands import CommandFailed
from .layout import PATHS

USAGE = """usage: scripts/cluster.sh up | down | status | kubeconfig | acme-root | images
  up          start a one-node cluster on this machine (root); prints how long it took
  down        stop it and restore the host as it was before up
  status      whether a cluster is running
  kubeconfig  print the path of the admin kubeconfig
  acme-root   write the root of the certificates its ACME server issues to a file and
              print its path (the CA a browser or curl trusts for the stacks' hosts)
  images      build the cluster's images (up builds them too); prints where they are"""


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("up", "down", "status", "kubeconfig", "acme-root", "images"):
        print(USAGE, file=sys.stderr)
        return 2
    command = argv[0]
    try:
        if command == "up":
            took = cluster.up()
            print(f"cluster up in {took:.1f}s; KUBECONFIG={PATHS.admin_kubeconfig}")
        elif command == "down":
            took, peak = cluster.down()
            if not took:
                print("no cluster to stop")
            else:
                memory = f"; its peak memory was {peak / 2**20:.0f} MiB" if peak else ""
                print(f"cluster stopped and host restored in {took:.1f}s{memory}")
        elif command == "status":
            print(cluster.status())
        elif command == "kubeconfig":
            print(PATHS.admin_kubeconfig)
        elif command == "acme-root":
            print(cluster.acme_root())
        else:
            for image, archive in images.build_all(cluster.tools()):
                print(f"{archive}\t{' '.join(image.names)}")
    except (ClusterError, CommandFailed, images.ImageBuildError) as error:
        print(f"cluster {command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
