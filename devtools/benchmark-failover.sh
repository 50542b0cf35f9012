#!/usr/bin/env bash
# Figures for Redis failover on the local cluster, under traffic through the ingress
# (25 writes and 10 reads a second, every request recorded):
#
#   sudo devtools/benchmark-failover.sh
#
# It runs tests/cluster/prod/test_redis_failover.py (prod's shape: 3 Redis pods with their
# Sentinels; the cluster is started if none runs, and stopped after only if it started
# it) and prints, for each fault, the seconds from the fault to the first acknowledged
# write sent after it, the longest stretch without one, and the requests that failed;
# then the Sentinel timings of this project and of the Bitnami chart's defaults, which
# bound the time without writes of a master that died without a hand-over.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cd "$root"
if ! venv/bin/pytest -q -s -p no:cacheprovider tests/cluster/prod/test_redis_failover.py >"$log" 2>&1; then
	tail -n 40 "$log" >&2
	echo "benchmark-failover.sh: the failover tests failed; figures above are partial" >&2
	exit 1
fi
echo "Redis failover under traffic (tests/cluster/prod/test_redis_failover.py):"
# Each figure is a "failover:" line and, for a traffic report, the line after it.
awk '/^failover: / { sub(/^failover: /, "  "); print; if ($0 !~ /refused writes/) { getline; print "    " $0 } }' "$log"
cat <<'TABLE'
Sentinel timings               this project        Bitnami chart defaults
  down-after-milliseconds      5000                60000  (a dead master: >= 60 s without writes)
  failover-timeout             20000               180000 (a stuck failover retried after 6 min)
  planned stop of the master   preStop hand-over   preStop failover
TABLE
