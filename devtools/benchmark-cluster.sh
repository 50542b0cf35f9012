#!/usr/bin/env bash
# Figures for the real lifecycle on the local cluster (scripts/cluster.sh), in one run:
#
#   sudo devtools/benchmark-cluster.sh [RUNS]     (RUNS of each quick command, default 5:
#                                                  the median is printed)
#
#   cluster up (warm)              scripts/cluster.sh up, binaries and images built
#   pulumi up, from nothing        every object created and awaited (pods Ready, and with
#                                  TLS the certificate issued by the cluster's ACME server),
#                                  for the dev stack (TLS) and the same stack without TLS
#   kubectl apply + wait           the same rendered manifests, server-side apply, then a
#                                  wait for the same readiness; the ratio is the figure
#   pulumi up, no changes          and pulumi preview, against the floor: a program that
#                                  imports the same SDKs and declares nothing
#   pulumi up, a config change     frontendJournalEntries, which rolls the frontend
#   pulumi destroy
#   cluster down, and the cluster's peak memory (its cgroup's, pods included)
#
# then where the time of a no-op up, the floor's up and an up from nothing goes, from the
# engine's own log (devtools/engine_timeline.py), and the slowest resources of the first
# up. Plain `pulumi` after `source scripts/env.sh`, as the README teaches it. It needs no
# cluster running (it starts and stops its own) and works on a copy of the project.
set -euo pipefail
runs=${1:-5}
if ! [[ $runs =~ ^[1-9][0-9]*$ ]]; then
	echo "benchmark-cluster.sh: RUNS must be a positive number, got '$runs'" >&2
	exit 2
fi
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
mkdir "$work/project" "$work/floor" "$work/logs"
git -C "$root" ls-files -z --cached --others --exclude-standard | tar -C "$root" --null -T - -cf - | tar -C "$work/project" -xf -
ln -s "$root/venv" "$work/project/venv"
cd "$work/project"
kubectl="$("$root/toolchain/install-kubernetes.sh" --print-bin)/kubectl"
"$root/scripts/cluster.sh" images >/dev/null
export PULUMI_CONFIG_PASSPHRASE
PULUMI_CONFIG_PASSPHRASE=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
# shellcheck source-path=SCRIPTDIR source=../scripts/env.sh
source scripts/env.sh >/dev/null

# The dev stack without TLS: no Issuer, no Certificate, no ACME flow to wait for.
venv/bin/python - <<'PY'
import yaml
settings = yaml.safe_load(open("Pulumi.dev.yaml"))
for key in ("journal:acmeServer", "journal:acmeCaBundle", "journal:tlsEmail"):
    settings["config"].pop(key, None)
settings["config"]["journal:tlsIssuer"] = "none"
settings.pop("encryptionsalt", None)
yaml.safe_dump(settings, open("Pulumi.notls.yaml", "w"), sort_keys=False)
PY
cat >"$work/floor/Pulumi.yaml" <<YAML
name: floor
runtime:
  name: python
  options:
    virtualenv: $root/venv
YAML
echo 'import pulumi, pulumi_kubernetes, pulumi_random  # the same SDKs, nothing declared' >"$work/floor/__main__.py"
# dev may exist already: env.sh creates it in a clone without a stack.
for stack in dev notls; do pulumi stack init "$stack" >/dev/null 2>&1 || pulumi stack select "$stack" >/dev/null; done
(cd "$work/floor" && pulumi stack init floor >/dev/null)

# seconds COMMAND...: runs it (output kept in $work/last.log) and prints the seconds taken.
seconds() {
	local start
	start=$(date +%s%N)
	"$@" >"$work/last.log" 2>&1 || {
		cat "$work/last.log" >&2
		return 1
	}
	echo $((($(date +%s%N) - start) / 1000000)) | awk '{ printf "%.2f", $1 / 1000 }'
}
# median COMMAND...: the median seconds of $runs runs.
median() {
	for _ in $(seq "$runs"); do seconds "$@"; echo; done | sort -n | awk '{ t[NR] = $1 } END { printf "%.2f", t[int((NR + 1) / 2)] }'
}
row() { printf '%-40s %8s %8s\n' "$1" "$2" "${3:-}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", a / b }'; }
up() { pulumi up --stack "$1" --yes --skip-preview "${@:2}"; }

row "cluster up (warm)" "$(seconds "$root/scripts/cluster.sh" up) s"
KUBECONFIG=$("$root/scripts/cluster.sh" kubeconfig)
export KUBECONFIG
k() { "$kubectl" "$@"; }

# The same objects with kubectl: rendered, applied, then awaited as `up` awaits them.
# (Run by `seconds`, where a failing command does not stop the script: each step says so.)
apply_and_wait() {
	local stack=$1 namespace=journal-$1
	k apply --server-side -f "rendered/$stack/1-manifest/v1-namespace-default-$namespace.yaml" || return
	k apply --server-side -f "rendered/$stack/1-manifest" || return
	k rollout status -n "$namespace" deployment/frontend --timeout=300s || return
	k rollout status -n "$namespace" deployment/fileserver --timeout=300s || return
	k rollout status -n "$namespace" statefulset/redis --timeout=300s || return
	k wait -n "$namespace" --for=jsonpath='{.status.loadBalancer.ingress[0].ip}' ingress --all --timeout=300s || return
	if [ "$stack" = dev ]; then
		k wait -n "$namespace" --for=condition=Ready certificate --all --timeout=300s || return
	fi
}
declare -A from_nothing applied
for stack in dev notls; do
	from_nothing[$stack]=$(seconds up "$stack")
	if [ "$stack" = dev ]; then
		slowest=$(grep -oE '[+~-] +[^ ]+ +[^ ]+ (created|updated|deleted) \(([0-9.]+)s\)' "$work/last.log" |
			sed -E 's/^[+~-] +//; s/ (created|updated|deleted) \(([0-9.]+)s\)$/ \2/' | sort -k3 -n -r | head -n 5)
	fi
	pulumi destroy --stack "$stack" --yes --skip-preview >/dev/null
	k wait --for=delete "namespace/journal-$stack" --timeout=120s >/dev/null 2>&1 || true
	KUBECONFIG="$work/no-cluster" scripts/render.sh "$stack" >/dev/null 2>&1
	applied[$stack]=$(seconds apply_and_wait "$stack")
	k delete namespace "journal-$stack" --wait=true --timeout=120s >/dev/null
done
# Deployed once more, without its timings, for the rows below; the engine's log of an up
# from nothing kept for the breakdown.
up notls -v=9 --logtostderr >/dev/null 2>"$work/logs/from-nothing.log"
pulumi destroy --stack notls --yes --skip-preview >/dev/null
up dev >/dev/null

echo
row "" "TLS" "no TLS"
row "pulumi up, from nothing" "${from_nothing[dev]} s" "${from_nothing[notls]} s"
row "kubectl apply --server-side + wait" "${applied[dev]} s" "${applied[notls]} s"
row "  pulumi up / kubectl apply+wait" "$(ratio "${from_nothing[dev]}" "${applied[dev]}")" "$(ratio "${from_nothing[notls]}" "${applied[notls]}")"
echo
noop=$(median up dev)
preview=$(median pulumi preview --stack dev)
floor_up=$(cd "$work/floor" && median up floor)
floor_preview=$(cd "$work/floor" && median pulumi preview --stack floor)
up dev -v=9 --logtostderr >/dev/null 2>"$work/logs/no-op.log"
(cd "$work/floor" && up floor -v=9 --logtostderr >/dev/null 2>"$work/logs/floor.log")
row "pulumi up, no changes (median of $runs)" "$noop s"
row "empty program, up (the floor)" "$floor_up s"
row "  no-op up / floor" "$(ratio "$noop" "$floor_up")"
row "pulumi preview (median of $runs)" "$preview s"
row "empty program, preview (the floor)" "$floor_preview s"
row "  preview / floor" "$(ratio "$preview" "$floor_preview")"
row "pulumi up, frontendJournalEntries" "$(seconds up dev --config journal:frontendJournalEntries=11) s"
row "pulumi destroy" "$(seconds pulumi destroy --stack dev --yes --skip-preview) s"
k wait --for=delete namespace/journal-dev --timeout=120s >/dev/null 2>&1 || true
row "cluster down" "$(seconds "$root/scripts/cluster.sh" down) s"
row "cluster peak memory (all of it)" "$(sed -n 's/.*peak memory was \([0-9]*\) MiB.*/\1/p' "$work/last.log") MiB"

echo
echo "slowest resources of the first up of dev (seconds):"
echo "$slowest" | awk '{ printf "  %-60s %6s\n", $1 " " $2, $3 }'
echo
echo "where the time goes (seconds, from the engine's log; see devtools/engine_timeline.py):"
"$root/venv/bin/python" "$root/devtools/engine_timeline.py" \
	"no-op up=$work/logs/no-op.log" "floor up=$work/logs/floor.log" "up, no TLS=$work/logs/from-nothing.log" | sed 's/^/  /'
