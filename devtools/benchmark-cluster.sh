#!/usr/bin/env bash
# Figures for the real lifecycle on the local cluster (scripts/cluster.sh), in one run:
#
#   sudo devtools/benchmark-cluster.sh
#
#   cluster up (warm)            scripts/cluster.sh up, binaries and images built
#   pulumi up, dev, from nothing every object created and awaited (pods Ready, the
#                                certificate issued by the cluster's ACME server)
#   kubectl apply + wait         the same rendered manifests, server-side apply, then a
#                                wait for the same readiness; the ratio is the figure
#   pulumi up, no changes
#   pulumi up, a config change   frontendJournalEntries, which rolls the frontend
#   pulumi destroy
#   cluster down, and the cluster's peak memory (its cgroup's, pods included)
#
# and the slowest resources of the first `up`, from the engine's own timings. It needs
# no cluster running (it starts and stops its own) and works on a copy of the project.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if "$root/scripts/cluster.sh" status | grep -q '^running'; then
	echo "benchmark-cluster.sh: a cluster is running; stop it first (it measures the start too)" >&2
	exit 1
fi
work=$(mktemp -d)
cleanup() {
	"$root/scripts/cluster.sh" down >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
git -C "$root" ls-files -z --cached --others --exclude-standard | tar -C "$root" --null -T - -cf - | tar -C "$work" -xf -
ln -s "$root/venv" "$work/venv"
cd "$work"
kubectl="$("$root/toolchain/install-kubernetes.sh" --print-bin)/kubectl"
"$root/scripts/cluster.sh" images >/dev/null

# seconds COMMAND...: runs it (output kept in $work/last.log) and prints the seconds taken.
seconds() {
	local start
	start=$(date +%s%N)
	"$@" >"$work/last.log" 2>&1 || {
		cat "$work/last.log" >&2
		return 1
	}
	echo $((($(date +%s%N) - start) / 1000000)) | awk '{ printf "%.1f", $1 / 1000 }'
}
row() { printf '%-36s %6s s\n' "$1" "$2"; }

row "cluster up (warm)" "$(seconds "$root/scripts/cluster.sh" up)"
KUBECONFIG=$("$root/scripts/cluster.sh" kubeconfig)
export KUBECONFIG
k() { "$kubectl" "$@"; }

up=$(seconds scripts/pulumi.sh dev up --yes --skip-preview)
slowest=$(grep -oE '[+~-] +[^ ]+ +[^ ]+ (created|updated|deleted) \(([0-9.]+)s\)' "$work/last.log" |
	sed -E 's/^[+~-] +//; s/ (created|updated|deleted) \(([0-9.]+)s\)$/ \2/' | sort -k3 -n -r | head -n 5)
row "pulumi up, dev, from nothing" "$up"
row "pulumi up, no changes" "$(seconds scripts/pulumi.sh dev up --yes --skip-preview)"
row "pulumi up, frontendJournalEntries" "$(seconds scripts/pulumi.sh dev up --yes --skip-preview --config journal:frontendJournalEntries=11)"
row "pulumi destroy" "$(seconds scripts/pulumi.sh dev destroy --yes --skip-preview)"
k wait --for=delete namespace/journal-dev --timeout=120s >/dev/null 2>&1 || true

# The same objects with kubectl: rendered, applied, then awaited as `up` awaits them.
KUBECONFIG="$work/no-cluster" scripts/render.sh dev >/dev/null 2>&1
apply_and_wait() {
	k apply --server-side -f rendered/dev/1-manifest/v1-namespace-default-journal-dev.yaml
	k apply --server-side -f rendered/dev/1-manifest
	k rollout status -n journal-dev deployment/frontend --timeout=300s
	k rollout status -n journal-dev deployment/fileserver --timeout=300s
	k rollout status -n journal-dev statefulset/redis --timeout=300s
	k wait -n journal-dev --for=jsonpath='{.status.loadBalancer.ingress[0].ip}' ingress --all --timeout=300s
	k wait -n journal-dev --for=condition=Ready certificate --all --timeout=300s
}
apply=$(seconds apply_and_wait)
row "kubectl apply --server-side + wait" "$apply"
awk -v up="$up" -v apply="$apply" 'BEGIN { printf "%-36s %6.1f x\n", "pulumi up / kubectl apply+wait", up / apply }'
k delete namespace journal-dev --wait=true --timeout=120s >/dev/null
row "cluster down" "$(seconds "$root/scripts/cluster.sh" down)"
printf '%-36s %6s MiB\n' "cluster peak memory (all of it)" "$(sed -n 's/.*peak memory was \([0-9]*\) MiB.*/\1/p' "$work/last.log")"

echo "slowest resources of the first up (seconds):"
echo "$slowest" | awk '{ printf "  %-60s %6s\n", $1 " " $2, $3 }'
