#!/usr/bin/env bash
# The journal on this machine, from a fresh clone (as root: it runs the local cluster):
#
#   scripts/local-journal.sh up     build what is missing, start the local cluster (or
#                                   reuse the running one), `pulumi up` the dev stack,
#                                   and print its URL and the CA to trust (`make up`)
#   scripts/local-journal.sh down   destroy the dev stack and stop the cluster, the host
#                                   as it was before (`make down`)
#
# A second `up` changes nothing. `up` refreshes the stack first, so a stack whose cluster
# was stopped without `down` (or whose objects someone edited by hand) is put back as
# the program says.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [[ $# -ne 1 || ($1 != up && $1 != down) ]]; then
	sed -n '2,8s/^# \{0,1\}//p' "$0" >&2
	exit 2
fi
if [[ $(id -u) != 0 ]]; then
	echo "local-journal.sh: the local cluster needs root (a kubelet, containerd, iptables); \`make preview\` needs none" >&2
	exit 1
fi

steps=0
step() {
	steps=$((steps + 1))
	printf '\n==> [%d/%d] %s\n' "$steps" "$total" "$*" >&2
}

cluster_running() { [[ $(scripts/cluster.sh status) == running* ]]; }

up() {
	total=6
	step "Debian packages the cluster and the tests run (apt, when missing)"
	make --no-print-directory system-packages
	step "Python packages into venv/ (pip, when a requirements file changed)"
	make --no-print-directory setup
	# Both from Go modules, side by side; each line of the builds names its tool.
	step "the Pulumi CLI and providers, the Kubernetes binaries and add-ons (Go builds; cold about 30 minutes, then under a second)"
	toolchain/install-pulumi.sh 2>&1 >/dev/null | sed -u 's/^/  pulumi: /' >&2 &
	pulumi_build=$!
	toolchain/install-kubernetes.sh 2>&1 >/dev/null | sed -u 's/^/  kubernetes: /' >&2 &
	kubernetes_build=$!
	wait "$pulumi_build" || { echo "local-journal.sh: toolchain/install-pulumi.sh failed" >&2; wait "$kubernetes_build" || :; exit 1; }
	wait "$kubernetes_build" || { echo "local-journal.sh: toolchain/install-kubernetes.sh failed" >&2; exit 1; }
	step "the cluster's images (debootstrap; cold about 5 minutes)"
	scripts/cluster.sh images >/dev/null
	if cluster_running; then
		step "the local cluster: already running"
	else
		step "the local cluster (about a minute)"
		scripts/cluster.sh up
	fi
	KUBECONFIG=$(scripts/cluster.sh kubeconfig)
	export KUBECONFIG
	step "pulumi up --refresh of the dev stack"
	scripts/pulumi.sh dev up --yes --skip-preview --refresh
	url=$(scripts/pulumi.sh dev stack output url)
	ca=$(scripts/cluster.sh acme-root)
	host=${url#https://}
	host=${host%%/*}
	cat <<-EOF

		The journal is up: $url
		  Its certificate is signed by the local cluster's ACME server; trust this CA
		  (made anew each time the cluster starts): $ca
		  $host resolves to the cluster's ingress on this machine while the cluster runs.

		  curl --cacert $ca $url
		  Chromium: import $ca under Settings > Privacy and security > Security >
		  Manage certificates > Authorities, then open $url

		  Adding and deleting entries takes the write credential:
		  scripts/pulumi.sh dev stack output writeCredential --show-secrets
		  \`make down\` destroys the stack and stops the cluster.
	EOF
}

down() {
	total=2
	if cluster_running; then
		KUBECONFIG=$(scripts/cluster.sh kubeconfig)
		export KUBECONFIG
		step "pulumi destroy of the dev stack"
		scripts/pulumi.sh dev destroy --yes --skip-preview
	else
		step "pulumi destroy of the dev stack: no cluster runs, nothing to destroy (the next \`make up\` refreshes the stack's record)"
	fi
	step "stopping the local cluster and restoring the host"
	scripts/cluster.sh down
}

"$1"
