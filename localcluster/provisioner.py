"""The local cluster's volume provisioner: a directory on the node for every claim of the
default StorageClass, as a `local` PersistentVolume bound to that claim, and removed with
it when the claim goes (reclaim policy Delete).

Kubernetes leaves dynamic provisioning to an external program for every class it has no
built-in plugin for: the PV controller marks the claim with the provisioner's name and
waits for a PersistentVolume that names the claim in its claimRef, then binds the two. A
`local` volume (not `hostPath`) because the kubelet applies the pod's fsGroup to it, so
Redis, running as a non-root uid, owns its data directory without a root init container.

    python3 -m localcluster.provisioner STATE_DIR
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from .api import Api, ApiError, Object

PROVISIONER = "journal-iac.local/volume"
STORAGE_CLASS = "local"


def claims_to_provision(api: Api) -> list[Object]:
    claims = api.get("/api/v1/persistentvolumeclaims")["items"]
    return [
        claim
        for claim in claims
        if claim["status"].get("phase") == "Pending"
        and not claim["spec"].get("volumeName")
        and claim["metadata"].get("annotations", {}).get("volume.kubernetes.io/storage-provisioner") == PROVISIONER
        and "deletionTimestamp" not in claim["metadata"]
    ]


def provision(api: Api, claim: Object, volumes: Path, node: str) -> None:
    name = f"pvc-{claim['metadata']['uid']}"
    directory = volumes / name
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
            "accessModes": claim["spec"]["accessModes"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "volumeMode": claim["spec"].get("volumeMode", "Filesystem"),
            "local": {"path": str(directory)},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": claim["metadata"]["namespace"],
                "name": claim["metadata"]["name"],
                "uid": claim["metadata"]["uid"],
            },
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}
                    ]
                }
            },
        },
    }
    try:
        api.create("/api/v1/persistentvolumes", volume)
        print(f"provisioned {name} for {claim['metadata']['namespace']}/{claim['metadata']['name']}", flush=True)
    except ApiError as error:
        if error.status != 409:
            raise


def reclaim(api: Api, volumes: Path) -> None:
    """Deletes released volumes of ours, directory and object."""
    for volume in api.get("/api/v1/persistentvolumes")["items"]:
        annotations = volume["metadata"].get("annotations", {})
        if annotations.get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
            continue
        if volume["status"].get("phase") not in ("Released", "Failed"):
            continue
        name = volume["metadata"]["name"]
        path = Path(volume["spec"].get("local", {}).get("path", ""))
        # Only ever a directory this provisioner made.
        if path.parent == volumes:
            shutil.rmtree(path, ignore_errors=True)
        try:
            api.delete(f"/api/v1/persistentvolumes/{name}")
            print(f"deleted {name}", flush=True)
        except ApiError as error:
            if error.status != 404:
                raise


def main(state_dir: str) -> None:
    state = Path(state_dir)
    pki = state / "pki"
    api = Api((state / "api-server").read_text().strip(), pki / "ca.crt", pki / "provisioner.crt", pki / "provisioner.key")
    node = (state / "node-name").read_text().strip()
    volumes = state / "volumes"
    volumes.mkdir(exist_ok=True)
    while True:
        try:
            for claim in claims_to_provision(api):
                provision(api, claim, volumes, node)
            reclaim(api, volumes)
        except (ApiError, OSError) as error:
            print(f"retrying after: {error}", file=sys.stderr, flush=True)
        time.sleep(1)


if __name__ == "__main__":
    main(*sys.argv[1:])
