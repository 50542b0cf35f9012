#!/bin/sh
# preStop hook of the redis container: the kubelet runs it before sending SIGTERM,
#     sh /scripts/redis-prestop.sh
# and waits for it (within the pod's terminationGracePeriodSeconds). It sources
# redis-common.sh from its own directory (the same ConfigMap mount).
#
# A planned stop of the master (a rolling update, a drain, a deletion) would otherwise
# leave the journal without a master for the Sentinels' whole detection time. So when
# this pod's Redis is the master and the StatefulSet has Sentinels, it hands the role
# over first, and writes pause for about a second instead:
#  0. While it still takes writes, it waits (REDIS_PRESTOP_REPLICAS_WAIT_SECONDS, 15 s
#     at most) until two replicas are in sync (one with two pods): the next master
#     then keeps one when this pod is gone, and takes writes at once.
#  1. CLIENT PAUSE WRITE: from now on this master takes no write (clients wait, and
#     get READONLY once it is a replica), so none can be acknowledged here and lost
#     when it follows the new master.
#  2. It waits (3 s at most) until every replica in sync has processed all it has
#     (asking each replica), so whichever one the Sentinel promotes holds every
#     acknowledged entry.
#  3. SENTINEL FAILOVER journal, to another pod's Sentinel first: the kubelet stops
#     this pod's sentinel container at the same time as this one, and a failover
#     must not depend on a Sentinel that is going away; this pod's own is the last
#     resort.
#  4. It waits until another pod's Redis says it is the master (or that Sentinel names
#     another pod), then makes this Redis its replica at once (the Sentinels would do
#     it only some seconds later), and lifts the pause, so paused clients get
#     READONLY, and the journal API, asking this Redis whom it follows (ROLE), takes
#     them to the new master before the Sentinels name it.
#  5. It stays the new master's replica until another one is in sync with it (4 s at
#     most), so the new master never stands without a replica and refuses writes.
# A replica, a single Redis (REDIS_PODS=1) or a Redis that does not answer: nothing to
# hand over. It always exits 0, logging what happened (the kubelet records a failed
# hook's output in the pod's events, but a failure must not hold the stop up): if the
# hand-over fails, the pause is lifted, and the Sentinels fail over after SIGTERM as
# for any lost master.
#
# Environment: that of the redis container (redis-common.sh's, REDIS_PORT [6379]),
# REDIS_PRESTOP_LOG [standard error] where its log lines go: the kubelet keeps a hook's
# output only when it fails, so the StatefulSet points this at the container's own
# standard error (/proc/1/fd/2), and the hand-over shows in `kubectl logs`,
# REDIS_PRESTOP_REPLICAS_WAIT_SECONDS [15] how long to wait for the second replica,
# and REDIS_PRESTOP_WAIT_SECONDS [10] how long to wait for the new master (keep
# terminationGracePeriodSeconds well above both, the 3 s for the replicas to catch
# up, and Redis's own shutdown).
# POSIX sh, for dash, like the launch script.

set -u
LC_ALL=C
export LC_ALL

script=redis-prestop
case $0 in
    */*) here=${0%/*} ;;
    *) here=. ;;
esac
if [ ! -r "$here/redis-common.sh" ]; then
    printf 'redis-prestop: error: %s/redis-common.sh is missing: the scripts ConfigMap must ship it beside this script\n' "$here" >&2
    exit 0
fi
# shellcheck source=redis-common.sh
. "$here/redis-common.sh"

# A preStop hook that fails only delays the stop and hides why in an event: this one
# says why in the log and lets the stop go on.
die() {
    printf '%s: %s; no hand-over, the stop goes on\n' "$script" "$*" >&2
    exit 0
}

started=$(date +%s)
# Checked first: a redirection that fails on exec would end the hook before it says why.
if [ -n "${REDIS_PRESTOP_LOG:-}" ]; then
    if [ -w "$REDIS_PRESTOP_LOG" ]; then
        exec 2>> "$REDIS_PRESTOP_LOG"
    else
        log "warning: cannot write to REDIS_PRESTOP_LOG $REDIS_PRESTOP_LOG; logging to standard error"
    fi
fi
read_identity
read_pods
if [ "$pods" -le 1 ]; then
    log "REDIS_PODS is $pods: no other pod to hand the master role to"
    exit 0
fi
read_topology
port=${REDIS_PORT:-6379}
check_port REDIS_PORT "$port"
wait_seconds=${REDIS_PRESTOP_WAIT_SECONDS:-10}
case $wait_seconds in
    '' | *[!0-9]*) die "REDIS_PRESTOP_WAIT_SECONDS must be a number of seconds, got '$wait_seconds'" ;;
esac
[ "${#wait_seconds}" -le 4 ] || die "REDIS_PRESTOP_WAIT_SECONDS must be a number of seconds, got '$wait_seconds'"
replicas_wait=${REDIS_PRESTOP_REPLICAS_WAIT_SECONDS:-15}
case $replicas_wait in
    '' | *[!0-9]*) die "REDIS_PRESTOP_REPLICAS_WAIT_SECONDS must be a number of seconds, got '$replicas_wait'" ;;
esac
[ "${#replicas_wait}" -le 4 ] || die "REDIS_PRESTOP_REPLICAS_WAIT_SECONDS must be a number of seconds, got '$replicas_wait'"
read_password
local_address=$local_host:$port

# local_info SECTION...: this Redis's INFO, without the CRs.
local_info() {
    ask 5 "$local_address" INFO "$@" | tr -d '\r'
}

replication=$(local_info replication)
role=$(printf '%s\n' "$replication" | awk -F: '$1 == "role" { print $2 }')
case $role in
    master) ;;
    slave)
        log "$pod is a replica: nothing to hand over"
        exit 0
        ;;
    *) die "$pod's Redis does not say its role: ${replication:-no answer}" ;;
esac

# in_sync_replicas: of the INFO replication on stdin (a master's), the replicas that
# are done syncing (state=online), one "HOST:PORT" line each. Each is listed as
# "slaveN:ip=...,port=...,state=...,offset=...,lag=..." (an IPv6 address has colons).
in_sync_replicas() {
    tr -d '\r' | awk '
        /^slave[0-9]+:/ {
            sub(/^slave[0-9]+:/, "")
            host = ""; port = ""; state = ""
            n = split($0, fields, ",")
            for (f = 1; f <= n; f++) {
                eq = index(fields[f], "=")
                key = substr(fields[f], 1, eq - 1)
                value = substr(fields[f], eq + 1)
                if (key == "ip") host = value
                else if (key == "port") port = value
                else if (key == "state") state = value
            }
            if (state == "online") print host ":" port
        }'
}

# The master that takes over needs a replica of its own once this pod is gone, or it
# refuses every write (min-replicas-to-write 1) until one syncs from it. In a rollout
# the pod restarted just before may still be syncing, or not yet following anyone:
# so, while this master still serves, wait for a second replica in sync (with three
# pods or more), for up to REDIS_PRESTOP_REPLICAS_WAIT_SECONDS, then hand over anyway.
online_replicas() {
    local_info replication | in_sync_replicas | wc -l
}
wanted=2
[ "$pods" -gt 2 ] || wanted=1
replicas_deadline=$(($(date +%s%3N) + replicas_wait * 1000))
while [ "$(online_replicas)" -lt "$wanted" ]; do
    if [ "$(date +%s%3N)" -ge "$replicas_deadline" ]; then
        log "warning: $(online_replicas) replica(s) in sync after $replicas_wait s, not $wanted: the next master may refuse writes until another replica syncs from it"
        break
    fi
    sleep 0.2
done

# Lifts the pause (the pod is going down anyway, but until SIGTERM its clients may
# still write, and the replicas carry those writes into the next master).
give_up() {
    ask 5 "$local_address" CLIENT UNPAUSE > /dev/null
    die "$*"
}

# The pause outlasts every wait below; it is lifted explicitly in any case.
reply=$(ask 5 "$local_address" CLIENT PAUSE $(((wait_seconds + 10) * 1000)) WRITE)
[ "$reply" = OK ] || die "CLIENT PAUSE answered: $reply"

log "writes paused on $pod"
# Every replica in sync holds all the master has: asked directly for the offset it has
# processed, which it answers at once (the acknowledgements the master lists arrive
# only once a second while no client WAITs, and paused clients do not).
offset=$(local_info replication | awk -F: '$1 == "master_repl_offset" { print $2 }')
# replicas_behind: the online replicas ("HOST:PORT") that have not processed $offset.
replicas_behind() {
    for replica in $(local_info replication | in_sync_replicas); do
        processed=$(ask 1 "$replica" INFO replication | tr -d '\r' | awk -F: '$1 == "slave_repl_offset" { print $2 }')
        [ "${processed:-0}" -ge "${offset:-0}" ] || printf '%s ' "$replica"
    done
}
catch_up_deadline=$(($(date +%s%3N) + 3000))
behind=$(replicas_behind)
while [ -n "$behind" ] && [ "$(date +%s%3N)" -lt "$catch_up_deadline" ]; do
    sleep 0.02
    behind=$(replicas_behind)
done
[ -z "$behind" ] || log "warning: replica(s) $behind did not reach offset $offset within 3 s; the Sentinel promotes the one furthest ahead"
# Another pod's Sentinel first, this pod's last.
sentinel=
i=0
while [ "$i" -le "$pods" ]; do
    candidate=$(( (ordinal + 1 + i) % pods ))
    address=$(address_of "$candidate" "$sentinel_port")
    reply=$(ask 3 "$address" SENTINEL FAILOVER "$MASTER_NAME")
    if [ "$reply" = OK ]; then
        sentinel=$address
        break
    fi
    log "the Sentinel at $address did not start a failover: $reply"
    i=$((i + 1))
    [ "$candidate" -ne "$ordinal" ] || break
done
[ -n "$sentinel" ] || give_up "no Sentinel started a failover"
log "the Sentinel at $sentinel is handing the master role over"

# promoted_pod: "HOST PORT" of another pod whose Redis says it is a master now. The
# Sentinel promotes its choice at once, but names it only once it has asked it for
# its role (once a second): asking the pods directly ends the pause that much sooner.
promoted_pod() {
    i=0
    while [ "$i" -lt "$pods" ]; do
        if [ "$i" -ne "$ordinal" ]; then
            candidate_host=$(host_of "$i")
            if [ "$(ask 1 "$candidate_host:$peer_port" ROLE | awk 'NR == 1 { print; exit }' | tr -d '\r')" = master ]; then
                printf '%s %s' "$candidate_host" "$peer_port"
                return 0
            fi
        fi
        i=$((i + 1))
    done
}
deadline=$(($(date +%s) + wait_seconds))
while :; do
    promoted=$(promoted_pod)
    if [ -n "$promoted" ]; then
        new_host=${promoted% *}
        new_port=${promoted##* }
        learned="its Redis says so"
        break
    fi
    named=$(ask 3 "$sentinel" SENTINEL GET-MASTER-ADDR-BY-NAME "$MASTER_NAME" | tr -d '\r')
    new_host=$(printf '%s\n' "$named" | awk 'NR == 1')
    new_port=$(printf '%s\n' "$named" | awk 'NR == 2')
    if [ -n "$new_host" ] && [ "$new_host" != "$own_host" ] && is_pod "$new_host"; then
        learned="the Sentinel names it; its Redis did not answer"
        break
    fi
    [ "$(date +%s)" -lt "$deadline" ] || give_up "the Sentinel named no new master within $wait_seconds s"
    sleep 0.05
done
check_port "the new master's port" "$new_port"

reply=$(ask 5 "$local_address" REPLICAOF "$new_host" "$new_port")
case $reply in
    OK*) ;;
    *) log "warning: REPLICAOF $new_host $new_port answered: $reply (the Sentinels will make it a replica)" ;;
esac
ask 5 "$local_address" CLIENT UNPAUSE > /dev/null
log "$new_host is the master now ($learned); $pod follows it (hand-over in $(($(date +%s) - started)) s)"
# The new master refuses writes (min-replicas-to-write) while no replica is in sync
# with it, and this pod's Redis, its replica now, stops right after this hook: it
# stays until another replica, pointed at the new master by the Sentinels once they
# have seen the promotion (a second at most), is in sync (a partial resync:
# milliseconds), for 4 s at most.
other_replicas() {
    ask 1 "$new_host:$new_port" INFO replication | in_sync_replicas |
        awk -v own="$own_host" '{ sub(/:[0-9]+$/, "") } $0 != own' | wc -l
}
stay_deadline=$(($(date +%s%3N) + 4000))
until [ "$(other_replicas)" -gt 0 ]; do
    if [ "$(date +%s%3N)" -ge "$stay_deadline" ]; then
        log "warning: no other replica in sync with $new_host within 4 s: it refuses writes until one is"
        break
    fi
    sleep 0.05
done
exit 0
