#!/usr/bin/env bash
# A one-node Kubernetes on this machine for the journal's stacks (localcluster/):
#
#   scripts/cluster.sh up          start it (as root); prints how long it took
#   scripts/cluster.sh down        stop it and put the host back as it was
#   scripts/cluster.sh status      whether one is running
#   scripts/cluster.sh kubeconfig  the path of its admin kubeconfig:
#                                  KUBECONFIG=$(scripts/cluster.sh kubeconfig) kubectl get nodes
#   scripts/cluster.sh acme-root   the path of a file holding the root its ACME server
#                                  signs with (the CA to trust for the stacks' hosts)
#   scripts/cluster.sh images      build its images only
#
# Needs root on a Debian-like host; installs containerd, runc, the CNI plugins, iptables,
# ipset, nftables, conntrack, debootstrap, docker-registry and htpasswd (apache2-utils)
# from Debian when they are missing, and builds the Kubernetes binaries with
# toolchain/install-kubernetes.sh.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# command:package pairs the cluster runs or builds with.
needed=(containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins
	iptables:iptables ipset:ipset nft:nftables conntrack:conntrack debootstrap:debootstrap
	gcc:gcc openssl:openssl docker-registry:docker-registry htpasswd:apache2-utils)
if [[ ${1:-} == up || ${1:-} == images ]]; then
	missing=()
	for pair in "${needed[@]}"; do
		command -v "${pair%%:*}" >/dev/null 2>&1 || [[ -x ${pair%%:*} ]] || missing+=("${pair#*:}")
	done
	if ((${#missing[@]})); then
		[[ $(id -u) == 0 ]] || { echo "cluster.sh: missing ${missing[*]}; run as root to install them" >&2; exit 1; }
		echo "cluster.sh: installing ${missing[*]} from Debian ..." >&2
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
	fi
fi
cd "$repo"
exec python3 -m localcluster "$@"
