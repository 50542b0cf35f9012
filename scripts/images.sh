#!/usr/bin/env bash
# The journal's images from their Containerfiles (images/*/Containerfile), pushed to the
# local cluster's registry by digest (localcluster/release.py):
#
#   sudo scripts/images.sh      build, tag v<images/VERSION>-<commit>, push, write SBOMs;
#                               prints each image's reference by digest
#
# Needs root and a running local cluster (scripts/cluster.sh up). Installs buildah and
# skopeo from Debian when they are missing; builds syft with toolchain/install-image-tools.sh.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

[[ $(id -u) == 0 ]] || { echo "images.sh: run as root (the registry's credential and buildah's storage are root's)" >&2; exit 1; }
missing=()
for pair in buildah:buildah skopeo:skopeo; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
	echo "images.sh: installing ${missing[*]} from Debian ..." >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
cd "$repo"
exec python3 -m localcluster.release
