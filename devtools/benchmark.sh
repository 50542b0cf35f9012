#!/usr/bin/env bash
# Prints how long the everyday commands take on this machine, and how large a render is:
#
#   devtools/benchmark.sh [RUNS]       (default 3 runs of each; the best and the median)
#
# It runs on a copy of the project (like the engine tests), so the clone's state and
# stack files stay as they are. Figures, not a pass/fail: compare them across changes.
set -euo pipefail
runs=${1:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The project's files as git sees them (tracked, and new ones not ignored).
git -C "$root" ls-files -z --cached --others --exclude-standard | tar -C "$root" --null -T - -cf - | tar -C "$work" -xf -
ln -s "$root/venv" "$work/venv"
export PULUMI_CONFIG_PASSPHRASE
PULUMI_CONFIG_PASSPHRASE=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export KUBECONFIG="$work/no-cluster"
cd "$work"

# measure LABEL COMMAND...: runs COMMAND $runs times after one warm-up run.
measure() {
	local label=$1 times=() start
	shift
	"$@" >/dev/null 2>&1
	for _ in $(seq "$runs"); do
		start=$(date +%s%N)
		"$@" >/dev/null 2>&1
		times+=($((($(date +%s%N) - start) / 1000000)))
	done
	printf '%s\n' "${times[@]}" | sort -n | awk -v label="$label" '
		{ t[NR] = $1 } END { printf "%-36s best %6.2f s   median %6.2f s   (%d runs)\n", label, t[1] / 1000, t[int((NR + 1) / 2)] / 1000, NR }'
}

measure "unit tests (mocks, no engine)" venv/bin/python -m pytest -q -p no:cacheprovider -m "not redis and not engine and not apiserver"
measure "redis tests (real redis-server)" venv/bin/python -m pytest -q -p no:cacheprovider -m redis
measure "pulumi preview, dev" scripts/pulumi.sh dev preview
measure "pulumi preview, prod" scripts/pulumi.sh prod preview
measure "render prod (no changes)" scripts/render.sh prod

objects=$(find rendered/prod -name '*.yaml' | wc -l)
bytes=$(find rendered/prod -name '*.yaml' -exec cat {} + | wc -c)
printf '%-36s %d objects, %d bytes of YAML\n' "rendered prod" "$objects" "$bytes"
