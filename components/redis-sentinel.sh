#!/bin/sh
# Launch script of the Sentinel beside each Redis pod's Redis (its "sentinel"
# container), when the StatefulSet has more than one pod:
#     sh /scripts/redis-sentinel.sh
# It sources redis-common.sh from its own directory (the same ConfigMap mount).
#
# Every pod runs one Sentinel; together they watch the master named "journal" and,
# when a majority of them (the quorum: 2 of 3) finds it down, one of them promotes the
# replica with the most data and points the others at it. The Sentinel writes its
# config, then is exec'd as the container's main process (redis-server --sentinel),
# which keeps the config up to date itself (it rewrites it on every change, so the
# file must stay writable: it lives in the pod's in-memory emptyDir, mode 0600, as
# it holds the Sentinel's password).
#
# Which master to watch: what the other pods' Sentinels say (the most recent
# failover's answer when they differ), else what this pod's Redis decided at its
# start (redis-launch.sh writes it to $REDIS_CONF_DIR/master-host with the run ID of
# the Redis that took the role): the Redis's current view (itself if it is a master,
# else the master it follows), once that file belongs to the Redis running now.
# Until one of them is known, it waits, for REDIS_SENTINEL_WAIT_SECONDS at most.
#
# Pods are addressed only by their stable host names (resolve-hostnames,
# announce-hostnames, announce-ip): a pod IP changes when the pod is rescheduled. The
# Sentinel's ID is derived from its host name (sha1), so a restarted Sentinel is the
# one its peers knew, not a new stranger beside a ghost of itself; its peers and
# every pod's Redis are listed as known from the start, so it can fail over a master
# that was down before this Sentinel ever saw it.
#
# The timings (targets: writes resume within about 15 s of a master that hangs or is
# cut off, and no failover for a pause of a few seconds):
#   down-after-milliseconds 5000: a master is down for a Sentinel after 5 s without a
#     valid reply to its PINGs (sent every second). Redis has no garbage collector;
#     its pauses are a fork for the append-only file's rewrite (milliseconds per GB),
#     a slow fsync (up to 2 s before Redis stops waiting), CPU throttling at the
#     container's limit and node hiccups, all well under 5 s. Then about a second for
#     the quorum to agree, up to one more of deliberate desynchronisation, a second or
#     so for the promotion to show in INFO: a replica is promoted 5.5 s after the
#     master was killed and 7 s after it hung (measured by the tests on real servers),
#     well within the 15 s. Bitnami's chart defaults to 60000: a minute of refused
#     writes for a dead master.
#   failover-timeout 20000: how long a failover may take before it is abandoned and
#     tried again (by the same Sentinel after twice as long), and how long the
#     Sentinels leave a replica following a wrong master before they correct it.
#     Promotion is one command and the other replica catches up by a partial resync
#     from the promoted one, both in a second or two: 20 s is ample, and a stuck
#     failover is retried within 40 s, not after Bitnami's 180000 (6 min).
#   parallel-syncs 1: replicas are pointed at the new master one at a time, so at
#     most one stops serving reads for a full resync.
#
# Environment (defaults in brackets), besides those of redis-common.sh (HOSTNAME,
# REDIS_USERS_DIR, REDIS_PODS (more than 1 here), REDIS_MASTER_HOST,
# REDIS_MASTER_PORT, REDIS_HOSTS, REDIS_SENTINEL_PORT, REDIS_LOCAL_HOST):
#   REDIS_PORT           [6379] this pod's Redis, asked for its view through
#                        REDIS_LOCAL_HOST
#   REDIS_BIND           [* -::*] the addresses the Sentinel listens on
#   REDIS_CONF_DIR       [/etc/redis] shared with the redis container: the Sentinel's
#                        config (sentinel.conf) goes there, and master-host is read there
#   REDIS_SENTINEL_WAIT_SECONDS  [120] how long to wait for a master to watch before
#                        failing (the container restarts and waits again); keep the
#                        sentinel container's startup probe allowance above it
# POSIX sh, for dash, like the launch script.

set -eu
LC_ALL=C
export LC_ALL

script=redis-sentinel
case $0 in
    */*) here=${0%/*} ;;
    *) here=. ;;
esac
if [ ! -r "$here/redis-common.sh" ]; then
    printf 'redis-sentinel: error: %s/redis-common.sh is missing: the scripts ConfigMap must ship it beside this script\n' "$here" >&2
    exit 1
fi
# shellcheck source=redis-common.sh
. "$here/redis-common.sh"

port=${REDIS_PORT:-6379}
bind=${REDIS_BIND:-* -::*}
conf_dir=${REDIS_CONF_DIR:-/etc/redis}
wait_seconds=${REDIS_SENTINEL_WAIT_SECONDS:-120}
conf=$conf_dir/sentinel.conf
decision=$conf_dir/master-host

# --- validation: every value below is written into sentinel.conf -------------------
read_identity
read_pods
[ "$pods" -gt 1 ] || die "REDIS_PODS is $pods: a single Redis has no Sentinel (the StatefulSet runs this container only with more than one pod)"
read_topology
check_port REDIS_PORT "$port"
case $bind in
    '' | *[!0-9A-Za-z.:*%\ -]*) die "REDIS_BIND must be a space-separated list of addresses, got '$bind'" ;;
esac
check_dir REDIS_CONF_DIR "$conf_dir"
case $wait_seconds in
    '' | *[!0-9]*) die "REDIS_SENTINEL_WAIT_SECONDS must be a number of seconds, got '$wait_seconds'" ;;
esac
[ "${#wait_seconds}" -le 5 ] || die "REDIS_SENTINEL_WAIT_SECONDS must be a number of seconds, got '$wait_seconds'"
read_password
read_secret sentinel
sentinel_password=$secret

# A majority of the pods: two Sentinels must agree that the master is down, and no
# minority cut off from the rest can promote a second master (a failover also needs
# the votes of a majority of the Sentinels, whatever the quorum).
quorum=$((pods / 2 + 1))

# sentinel_id HOST: the 40 hex digits Sentinel takes as an ID.
sentinel_id() {
    printf '%s' "$1" | sha1sum | awk '{ print $1 }'
}

# The Redis of this pod, as it is now, if the launch script's decision belongs to it:
# "HOST PORT" of the master it follows, or its own if it is the master.
local_view() {
    [ -r "$decision" ] || return 0
    read -r _ decided_run_id < "$decision" || return 0
    info=$(ask 5 "$local_host:$port" INFO server replication | tr -d '\r') || return 0
    run_id=$(printf '%s\n' "$info" | awk -F: '$1 == "run_id" { print $2 }')
    [ -n "$run_id" ] && [ "$run_id" = "$decided_run_id" ] || return 0
    case $(printf '%s\n' "$info" | awk -F: '$1 == "role" { print $2 }') in
        master) printf '%s %s' "$own_host" "$peer_port" ;;
        slave)
            printf '%s\n' "$info" | awk -F: '
                $1 == "master_host" { host = $2 }
                $1 == "master_port" { port = $2 }
                END { if (host != "" && port != "") printf "%s %s", host, port }'
            ;;
    esac
}

deadline=$(($(date +%s) + wait_seconds))
while :; do
    # "HOST PORT EPOCH": the master the Sentinels name, with its config epoch (-1 and
    # no master when none names one).
    known=$(sentinel_master; printf ' %s' "$best_epoch")
    epoch=${known##* } master=${known% *}
    source="the Sentinels"
    if [ -z "$master" ]; then
        master=$(local_view)
        source="$pod's Redis"
    fi
    if [ -n "$master" ]; then
        if is_pod "${master% *}"; then
            break
        fi
        log "$source name ${master% *} as the master, which is none of the pods ($hosts); waiting"
    fi
    [ "$(date +%s)" -lt "$deadline" ] ||
        die "no master to watch after $wait_seconds s: no Sentinel knows one, and $pod's Redis has not taken its role (its log says why)"
    sleep 1
done
master_host=${master% *} master_port=${master#* }
check_host "the master's host" "$master_host"
check_port "the master's port" "$master_port"

# --- config -------------------------------------------------------------------------
umask 077
rm -f -- "$conf" || die "cannot replace $conf"
{
    printf '# Generated by redis-sentinel.sh at every container start; Sentinel rewrites it.\n'
    printf 'port %s\n' "$sentinel_port"
    printf 'bind %s\n' "$bind"
    printf 'dir "%s"\n' "$conf_dir"
    # Users of its own, as the servers have (redis-common.sh): the frontend asks
    # for the master, the other Sentinels say hello and vote, the scripts ask and
    # fail over, people administer; `default` is off. It authenticates to the others, and to the
    # servers it watches, as the user "sentinel".
    printf 'user default off\n'
    user_line journal "$SENTINEL_ACL_JOURNAL"
    user_line sentinel "$SENTINEL_ACL_SENTINEL"
    user_line "$OPERATOR" "$SENTINEL_ACL_OPERATOR"
    user_line admin "$SENTINEL_ACL_ADMIN"
    printf 'sentinel sentinel-user sentinel\n'
    printf 'sentinel sentinel-pass "%s"\n' "$sentinel_password"
    printf 'sentinel resolve-hostnames yes\n'
    printf 'sentinel announce-hostnames yes\n'
    printf 'sentinel announce-ip %s\n' "$own_host"
    printf 'sentinel announce-port %s\n' "$sentinel_port"
    printf 'sentinel myid %s\n' "$(sentinel_id "$own_host")"
    printf 'sentinel monitor %s %s %s %s\n' "$MASTER_NAME" "$master_host" "$master_port" "$quorum"
    if [ "$epoch" -gt 0 ]; then
        # The epoch of the master the Sentinels name. Started at epoch 0, this Sentinel
        # would learn it from their hello messages only seconds later, and a failover
        # it led meanwhile (a preStop hand-over asks it right after a rollout restarted
        # it) would announce the new master under an epoch lower than theirs: they
        # would ignore it and keep the old master until they saw it fail.
        printf 'sentinel current-epoch %s\n' "$epoch"
        printf 'sentinel config-epoch %s %s\n' "$MASTER_NAME" "$epoch"
    fi
    printf 'sentinel auth-user %s sentinel\n' "$MASTER_NAME"
    printf 'sentinel auth-pass %s "%s"\n' "$MASTER_NAME" "$sentinel_password"
    printf 'sentinel down-after-milliseconds %s 5000\n' "$MASTER_NAME"
    printf 'sentinel failover-timeout %s 20000\n' "$MASTER_NAME"
    printf 'sentinel parallel-syncs %s 1\n' "$MASTER_NAME"
    for host in $hosts; do
        [ "$host" = "$master_host" ] || printf 'sentinel known-replica %s %s %s\n' "$MASTER_NAME" "$host" "$peer_port"
        [ "$host" = "$own_host" ] ||
            printf 'sentinel known-sentinel %s %s %s %s\n' "$MASTER_NAME" "$host" "$sentinel_port" "$(sentinel_id "$host")"
    done
} > "$conf" || die "cannot write $conf"

log "$pod's Sentinel watches $master_host:$master_port (from $source), quorum $quorum of $pods"

# exec: the Sentinel is the container's main process and receives SIGTERM itself.
exec redis-server "$conf" --sentinel
