#!/bin/sh
# Exec probe of the Redis StatefulSet:
#     sh /scripts/redis-probe.sh liveness     the redis container
#     sh /scripts/redis-probe.sh readiness    the redis container
#     sh /scripts/redis-probe.sh sentinel     the sentinel container (liveness and
#                                             readiness both)
#
# Environment: REDIS_USERS_DIR [/etc/redis-users] (it authenticates as the user
# "operator", with the password in the file of that name), REDIS_PORT [6379],
# REDIS_PODS [1], REDIS_SENTINEL_PORT [26379], REDIS_LOCAL_HOST [127.0.0.1] (where the
# pod's own servers answer); exec probes run with the container's environment, so the
# StatefulSet's values for the launch scripts apply here too.
# Exit 0 when the check passes, 1 when it fails (reason on stderr, which the
# kubelet records in the pod's events), 2 on a usage error.
#
# redis-cli has no timeout of its own: a hung server hangs the probe, and the
# probe's timeoutSeconds is what turns that into a failure.

set -u
LC_ALL=C
export LC_ALL

usage() {
    printf 'usage: sh %s liveness|readiness|sentinel\n' "$0" >&2
    exit 2
}

[ "$#" -eq 1 ] || usage
mode=$1
case $mode in
    liveness | readiness | sentinel) ;;
    *) usage ;;
esac

fail() {
    printf 'redis-probe %s: %s\n' "$mode" "$*" >&2
    exit 1
}

user=operator
password_file=${REDIS_USERS_DIR:-/etc/redis-users}/$user
port=${REDIS_PORT:-6379}
pods=${REDIS_PODS:-1}
host=${REDIS_LOCAL_HOST:-127.0.0.1}
if [ "$mode" = sentinel ]; then
    port=${REDIS_SENTINEL_PORT:-26379}
fi
address=$host:$port
case $port in
    '' | *[!0-9]*) fail "port must be a number, got '$port'" ;;
esac
case $pods in
    '' | *[!0-9]*) fail "REDIS_PODS must be a number, got '$pods'" ;;
esac
case $host in
    '' | *[!0-9A-Za-z.:_-]*) fail "REDIS_LOCAL_HOST must be a host name or address, got '$host'" ;;
esac

[ -r "$password_file" ] || fail "cannot read password file $password_file"
password=$(cat -- "$password_file") || fail "cannot read password file $password_file"
[ -n "$password" ] || fail "password file $password_file is empty"

# The password reaches redis-cli only through REDISCLI_AUTH, set for that one
# command: "-a <password>" would put it in redis-cli's argv, which every process
# on the node can read through /proc and ps (and redis-cli warns about it on
# every call). The variable is never exported to anything else.
cli() {
    REDISCLI_AUTH=$password redis-cli --user "$user" -h "$host" -p "$port" "$@" 2>&1
}

# Replies are read as text: redis-cli exits 0 on error replies such as LOADING
# and fails only when it cannot connect. Trailing newlines are dropped by $(...).
reply=$(cli PING) || fail "cannot reach Redis at $address: $reply"

if [ "$mode" = sentinel ]; then
    [ "$reply" = PONG ] && exit 0
    fail "PING to the Sentinel at $address answered: $reply"
fi

if [ "$mode" = liveness ]; then
    case $reply in
        # LOADING: the dataset is being read from disk (or from the master after a
        # full resync); MASTERDOWN: a replica with replica-serve-stale-data off
        # whose master is away. Both are alive and would only restart into the
        # same state, so liveness passes; readiness keeps them out of the Service.
        PONG | LOADING* | MASTERDOWN*) exit 0 ;;
        *) fail "PING to $address answered: $reply" ;;
    esac
fi

[ "$reply" = PONG ] || fail "PING to $address answered: $reply"

info=$(cli INFO replication) || fail "cannot reach Redis at $address: $info"

# INFO lines end in CR LF; field NAME prints the value of "NAME:value".
cr=$(printf '\r')
field() {
    printf '%s\n' "$info" | while IFS=: read -r key value; do
        if [ "$key" = "$1" ]; then
            printf '%s' "${value%"$cr"}"
            break
        fi
    done
}

case $(field role) in
    master)
        # With Sentinels, a master that lost every replica (cut off from them, and so
        # perhaps already replaced on the other side) refuses writes after
        # min-replicas-max-lag, and its dataset stops following the journal: it leaves
        # the read Service too, so no Ready pod answers reads from it. A replica counts
        # once its sync is done (state=online) while it acknowledged within the last
        # 10 s (lag, min-replicas-max-lag): a replica cut off without a word stays
        # listed until the replication timeout.
        [ "$pods" -le 1 ] && exit 0
        in_sync=$(printf '%s\n' "$info" | tr -d '\r' | awk -F: '
            $1 ~ /^slave[0-9]+$/ && $2 ~ /(^|,)state=online(,|$)/ {
                n = split($2, fields, ",")
                for (f = 1; f <= n; f++) if (fields[f] ~ /^lag=[0-9]+$/ && substr(fields[f], 5) + 0 <= 10) count++
            }
            END { print count + 0 }')
        [ "$in_sync" -gt 0 ] && exit 0
        fail "master has no replica in sync: connected_slaves:$(field connected_slaves) (none online with lag 10 s or less)"
        ;;
    slave)
        # A replica whose master is unreachable still answers PING (with stale
        # data, by default): only the link status tells whether it follows. So
        # while the master is down, the replicas leave the read Service as well.
        [ "$(field master_link_status)" = up ] && exit 0
        fail "replica's link to master $(field master_host):$(field master_port) is not up: master_link_status:$(field master_link_status) master_sync_in_progress:$(field master_sync_in_progress) master_link_down_since_seconds:$(field master_link_down_since_seconds)"
        ;;
    *) fail "INFO replication from $address has no role: $info" ;;
esac
