#!/bin/sh
# Launch script of every Redis pod of the StatefulSet:
#     sh /scripts/redis-launch.sh
#
# Environment (set by the StatefulSet; defaults in brackets):
#   HOSTNAME             pod name, e.g. redis-2; the digits after the last
#                        "-" are the ordinal: 0 is the master, the others replicate it
#   REDIS_PASSWORD_FILE  [/etc/redis-passwd/passwd] the mounted Secret
#   REDIS_MASTER_HOST    the master's stable DNS name: replicas follow it, and the
#                        master names its peers after it (required on both then)
#   REDIS_MASTER_PORT    [6379]
#   REDIS_PORT           [6379]
#   REDIS_BIND           [* -::*]
#   REDIS_DATA_DIR       [/data]
#   REDIS_CONF_DIR       [/etc/redis] must be writable (an emptyDir)
#   REDIS_MAXMEMORY      [unset: no limit] bytes of data Redis may hold; past it,
#                        writes are refused (noeviction) instead of the container
#                        being OOM-killed at its memory limit
#
# The master's guard against wiping its replicas (only on pod 0, only when its data
# directory holds no append-only file; see "A Redis master on an empty volume" in
# the README):
#   REDIS_PODS           [1] pods in the StatefulSet, master included; pods 1..N-1
#                        are asked for their data before an empty master starts
#   REDIS_PEERS          [derived] the peers' addresses, host:port separated by
#                        spaces, in ordinal order; by default pod <i> is the master's
#                        host name with its "-0" replaced by "-<i>", on REDIS_MASTER_HOST's
#                        domain and REDIS_MASTER_PORT (the master needs both then)
#   REDIS_PEER_WAIT_SECONDS  [30] how long to wait for every peer to answer before
#                        refusing to start; with the copy's 300 s, keep it under the
#                        startup probe's allowance (STARTUP_CHECKS in redis.py: 40
#                        checks 10 s apart), after which liveness takes over
#   REDIS_RECOVERY       [empty: ask every peer, recover from the one with the most
#                        data, refuse if one cannot be asked] an operator's decision,
#                        from the pod's annotation journal-iac/redis-recovery:
#                        "start-empty" starts without asking anyone (the replicas then
#                        discard their data); "recover-from-<i>" asks pod <i> only
#                        and recovers from it
# Besides redis-server and redis-cli, the guard runs timeout, awk, tr and date, all
# in the official Debian-based image.
#
# POSIX sh on purpose: the official image's /bin/sh is dash, where [[ ]] is a
# command-not-found that evaluates as false and silently picks the wrong branch.

set -eu

# LC_ALL=C makes the character classes below byte-wise and independent of the
# image's locale.
LC_ALL=C
export LC_ALL

die() {
    # Never pass the password to this function: its text goes to the pod's log.
    printf 'redis-launch: error: %s\n' "$*" >&2
    exit 1
}

password_file=${REDIS_PASSWORD_FILE:-/etc/redis-passwd/passwd}
master_host=${REDIS_MASTER_HOST:-}
master_port=${REDIS_MASTER_PORT:-6379}
port=${REDIS_PORT:-6379}
# "-::*": the leading "-" makes the IPv6 wildcard optional, so Redis still starts
# on clusters whose pods have no IPv6 address.
bind=${REDIS_BIND:-* -::*}
data_dir=${REDIS_DATA_DIR:-/data}
conf_dir=${REDIS_CONF_DIR:-/etc/redis}
maxmemory=${REDIS_MAXMEMORY:-}
pods=${REDIS_PODS:-1}
peers=${REDIS_PEERS:-}
peer_wait=${REDIS_PEER_WAIT_SECONDS:-30}
recovery=${REDIS_RECOVERY:-}
conf=$conf_dir/redis.conf

# --- role, from the StatefulSet ordinal -------------------------------------
# Kubernetes sets HOSTNAME to the pod name, and a StatefulSet names its pods
# <statefulset>-<ordinal>; the ordinal is the only stable identity a pod has.
# (Linters flag $HOSTNAME because bash sets it itself; here it comes from the
# container's environment, which is POSIX.)
# shellcheck disable=SC3028
pod=${HOSTNAME:-}
case $pod in
    *-*) ordinal=${pod##*-} ;;
    *) ordinal= ;;
esac
case $ordinal in
    '' | *[!0-9]*)
        die "HOSTNAME '$pod' has no numeric ordinal after its last '-' (expected a StatefulSet pod name such as redis-0)"
        ;;
    *[!0]*) role=replica ;;
    *) role=master ;;
esac

# --- validation ---------------------------------------------------------------
# Every value below is written into redis.conf; a newline in one of them would
# inject a directive of its own, so each is held to a strict character set.
check_port() {
    case $2 in
        '' | *[!0-9]* | 0 | 0*) die "$1 must be a port number from 1 to 65535, got '$2'" ;;
    esac
    # The length test comes first: dash's -le fails on numbers beyond its integers.
    if [ "${#2}" -gt 5 ] || [ "$2" -gt 65535 ]; then
        die "$1 must be a port number from 1 to 65535, got '$2'"
    fi
}
check_port REDIS_PORT "$port"
case $maxmemory in
    '' ) ;;
    *[!0-9]* | 0*) die "REDIS_MAXMEMORY must be a number of bytes, got '$maxmemory'" ;;
esac

case $bind in
    '' | *[!0-9A-Za-z.:*%\ -]*) die "REDIS_BIND must be a space-separated list of addresses, got '$bind'" ;;
esac

# Paths are written double-quoted; only '"', '\' and control characters would
# break out of Redis's quoting.
check_dir() {
    case $2 in
        '' | *[\"\\]* | *[[:cntrl:]]*) die "$1 must be a plain directory path" ;;
    esac
    [ -d "$2" ] || die "$1 '$2' is not a directory"
    [ -w "$2" ] || die "$1 '$2' is not writable by uid $(id -u) (on Kubernetes: the pod's runAsUser/fsGroup)"
}
check_dir REDIS_DATA_DIR "$data_dir"
check_dir REDIS_CONF_DIR "$conf_dir"

if [ "$role" = replica ]; then
    [ -n "$master_host" ] || die "REDIS_MASTER_HOST is required on replica $pod (the master's stable DNS name, e.g. <statefulset>-0.<headless-service>.<namespace>.svc.cluster.local)"
fi
if [ -n "$master_host" ]; then
    case $master_host in
        *[!0-9A-Za-z.:_-]*) die "REDIS_MASTER_HOST must be a host name or IP address, got '$master_host'" ;;
    esac
    check_port REDIS_MASTER_PORT "$master_port"
fi

case $pods in
    '' | *[!0-9]* | 0*) die "REDIS_PODS must be the number of pods of the StatefulSet, 1 or more, got '$pods'" ;;
esac
[ "${#pods}" -le 3 ] || die "REDIS_PODS must be the number of pods of the StatefulSet, got '$pods'"
case $peer_wait in
    '' | *[!0-9]*) die "REDIS_PEER_WAIT_SECONDS must be a number of seconds, got '$peer_wait'" ;;
esac
[ "${#peer_wait}" -le 5 ] || die "REDIS_PEER_WAIT_SECONDS must be a number of seconds, got '$peer_wait'"
case $peers in
    *[!0-9A-Za-z.:_\ -]*) die "REDIS_PEERS must be host:port addresses separated by spaces, got '$peers'" ;;
esac
case $recovery in
    '' | start-empty | recover-from-[1-9] | recover-from-[1-9][0-9] | recover-from-[1-9][0-9][0-9]) ;;
    *) die "REDIS_RECOVERY must be empty, 'start-empty' or 'recover-from-<ordinal>', got '$recovery'" ;;
esac

# Pods of a StatefulSet share the master's DNS domain (the headless Service), so
# pod <i> is the master's name with its ordinal replaced.
if [ "$role" = master ] && [ -z "$peers" ] && [ "$pods" -gt 1 ]; then
    [ -n "$master_host" ] || die "REDIS_MASTER_HOST is required on the master when REDIS_PODS is $pods: its peers are named after it"
    master_name=${master_host%%.*}
    case $master_name in
        ?*-0) ;;
        *) die "REDIS_MASTER_HOST '$master_host' must start with the master's pod name (<statefulset>-0) for its peers to be named after it" ;;
    esac
    domain=
    case $master_host in
        *.*) domain=.${master_host#*.} ;;
    esac
    i=1
    while [ "$i" -lt "$pods" ]; do
        peers="${peers:+$peers }${master_name%-0}-$i$domain:$master_port"
        i=$((i + 1))
    done
fi

# --- password -------------------------------------------------------------------
# Kept in a shell variable that is never exported, and only handed to printf,
# which is a shell builtin: no exec'd process ever carries it in its argv or its
# environment. Error messages name the file, never its content.
[ -e "$password_file" ] || die "password file $password_file does not exist (is the Secret mounted?)"
[ -r "$password_file" ] || die "password file $password_file is not readable by uid $(id -u)"
# $(...) drops trailing newlines, so a Secret made with "echo" still works.
password=$(cat -- "$password_file") || die "cannot read password file $password_file"
[ -n "$password" ] || die "password file $password_file is empty"
case $password in
    *[\"\\]* | *[[:cntrl:]]*)
        die "password in $password_file contains a double quote, a backslash or a control character (such as a newline), which cannot be written safely into redis.conf"
        ;;
esac

# --- config -------------------------------------------------------------------------
# The password goes into a config file, not onto the command line: argv is
# readable by every process on the node through /proc and ps (Redis replaces its
# own with a process title once running, but only after exec has exposed it).
# The root filesystem is read-only, so the file lives in the emptyDir. An emptyDir
# outlives container restarts, so a stale file is removed first: a fresh file
# gets the 0600 mode of the umask, and the role and the password are derived
# anew (a rotated Secret takes effect at the next restart; so is anything a
# CONFIG REWRITE saved, on purpose: the ordinal alone decides the role).
umask 077
rm -f -- "$conf" || die "cannot replace $conf"
{
    printf '# Generated by redis-launch.sh at every container start; edits are lost.\n'
    printf 'port %s\n' "$port"
    printf 'bind %s\n' "$bind"
    printf 'dir "%s"\n' "$data_dir"
    # With the append-only file, acknowledged writes survive a crash or kill -9
    # of Redis (they reach the kernel before the reply, unless a slow disk makes
    # Redis postpone them); a crash of the whole node can lose about the last
    # second (appendfsync everysec). Snapshots alone lose all since the last one.
    printf 'appendonly yes\n'
    # No RDB snapshots besides: the append-only file already holds every write, and
    # with save points Redis would also fork for periodic dumps and write a blocking
    # final dump on SIGTERM, which a large dataset can stretch past the grace period.
    printf 'save ""\n'
    if [ -n "$maxmemory" ]; then
        printf 'maxmemory %s\n' "$maxmemory"
        # A journal must not lose entries to eviction: a full Redis refuses writes.
        printf 'maxmemory-policy noeviction\n'
    fi
    # requirepass AND masterauth on every node: replicas serve reads, so they
    # need requirepass as much as the master; masterauth lets a replica sync, and
    # on the master too it means that if an operator swaps roles at runtime
    # (REPLICAOF), every node already knows how to authenticate to the other.
    printf 'requirepass "%s"\n' "$password"
    printf 'masterauth "%s"\n' "$password"
    if [ "$role" = replica ]; then
        # Follow the master by its stable DNS name (headless Service), never by a
        # pod IP, which changes whenever the master pod is rescheduled.
        printf 'replicaof %s %s\n' "$master_host" "$master_port"
    fi
} > "$conf" || die "cannot write $conf"

if [ "$role" = replica ]; then
    printf 'redis-launch: %s is a replica of %s:%s\n' "$pod" "$master_host" "$master_port" >&2
else
    printf 'redis-launch: %s is the master\n' "$pod" >&2
fi

# --- the master's guard: no empty master over replicas that hold data ----------------
# A replica that finds its master under a new replication ID (as a master restarted
# on an empty volume is) does a full sync: it discards its own dataset and loads the
# master's, empty. One lost volume would lose the journal on every pod. So an empty
# pod 0 first asks its peers, and starts empty only when none of them holds data.

log() {
    # Never pass the password to this function: its text goes to the pod's log.
    printf 'redis-launch: %s\n' "$*" >&2
}

holds_data() {
    # What redis-server 7 loads with appendonly yes: the manifest of its multi-part
    # append-only file, or the single file of Redis 6 and before, which it upgrades.
    # A dump.rdb alone is not loaded then: the server starts empty beside it.
    [ -e "$data_dir/appendonlydir/appendonly.aof.manifest" ] || [ -e "$data_dir/appendonly.aof" ]
}

# ask SECONDS HOST:PORT COMMAND...: the peer's reply, or redis-cli's or timeout's
# failure. The password reaches redis-cli only through REDISCLI_AUTH, set for that
# one command (as in redis-probe.sh): never in an argv, never exported. redis-cli
# has no timeout of its own, so a peer that accepts and never answers would hang
# the start.
ask() {
    within=$1
    address=$2
    shift 2
    REDISCLI_AUTH=$password timeout "$within" redis-cli -h "${address%:*}" -p "${address##*:}" "$@" 2>&1
}

# From the text of "INFO replication keyspace persistence memory": "loading" while
# the dataset is being read (its key counts are partial then), "<keys> <offset>
# <dataset bytes>" once it is loaded, nothing for any other reply (an error, a
# refused connection).
info_figures() {
    printf '%s\n' "$1" | tr -d '\r' | awk -F: '
        $1 == "loading" { loading = $2 }
        $1 == "master_repl_offset" { offset = $2 }
        $1 == "used_memory_dataset" { bytes = $2 }
        $1 ~ /^db[0-9]+$/ { split($2, counts, /[=,]/); keys += counts[2] }
        END {
            if (loading == "1") print "loading"
            else if (loading == "0" && offset != "" && bytes != "") printf "%d %s %s\n", keys, offset, bytes
        }'
}

# The figures of every peer, once all of them answered; the most data is the highest
# replication offset (every replica followed the same master, so its dataset is a
# later state of the others'), then the largest dataset. Not the most keys: the
# journal is two keys however many entries it holds, and replicas restarted while
# their master was away all report offset 0.
survey_peers() {
    log "$data_dir holds no data: asking the peers ($peers) before starting as the master, for up to $peer_wait s"
    # In milliseconds (GNU date, as in the image): whole seconds would cut the wait short
    # by up to one second, depending on how far into its first second it began.
    deadline=$(($(date +%s%3N) + peer_wait * 1000))
    while :; do
        best='' best_keys=0 best_offset=-1 best_bytes=-1 figures_seen='' silent='' reason=''
        for peer in $peers; do
            reply=$(ask 5 "$peer" INFO replication keyspace persistence memory) || true
            figures=$(info_figures "$reply")
            case $figures in
                '' | loading)
                    silent="$silent $peer"
                    if [ "$figures" = loading ]; then
                        reason="$peer is still loading its data"
                    else
                        reason="$peer: ${reply:-no answer within 5 s}"
                    fi
                    ;;
                *)
                    keys=${figures%% *} offset_and_bytes=${figures#* }
                    offset=${offset_and_bytes% *} bytes=${offset_and_bytes#* }
                    figures_seen="$figures_seen $peer holds $keys keys ($bytes bytes) at replication offset $offset;"
                    if [ "$keys" -gt 0 ] && { [ "$offset" -gt "$best_offset" ] ||
                        { [ "$offset" -eq "$best_offset" ] && [ "$bytes" -gt "$best_bytes" ]; }; }; then
                        best=$peer best_keys=$keys best_offset=$offset best_bytes=$bytes
                    fi
                    ;;
            esac
        done
        [ -n "$silent" ] || break
        if [ "$(date +%s%3N)" -ge "$deadline" ]; then
            die "refusing to start $pod as an empty master: $data_dir holds no data and peer(s)$silent did not answer within $peer_wait s (last: $reason). An empty master would make every replica that holds data discard it at its next sync. Bring the peer back, or decide with the pod annotation journal-iac/redis-recovery (README: \"A Redis master on an empty volume\")"
        fi
        sleep 1
    done
    log "peers:$figures_seen"
}

# recover_from HOST:PORT: the peer's dataset, copied into this pod's data directory
# as the append-only file that the master then loads.
recover_from() {
    source=$1
    rdb=$data_dir/recovery.rdb
    log "recovering from $source, $chosen_because ($best_keys keys, $best_bytes bytes, at replication offset $best_offset): it serves the copy as a master, then follows $master_host:$master_port again"
    # A replica whose master is away refuses to serve a copy (NOMASTERLINK), and
    # its master is this very pod: the peer is made a master for the copy. Should
    # this pod be stopped before the peer follows it again, the peer stays a
    # master with all its data, and the next start recovers from it again.
    reply=$(ask 5 "$source" REPLICAOF NO ONE) || true
    case $reply in
        OK*) ;;
        *) die "cannot recover from $source: REPLICAOF NO ONE answered: $reply" ;;
    esac
    rm -f -- "$rdb"
    copied=0
    copy=$(ask 300 "$source" --rdb "$rdb") || copied=$?
    reply=$(ask 5 "$source" REPLICAOF "$master_host" "$master_port") || true
    case $reply in
        OK*) ;;
        *) log "warning: $source did not go back to following $master_host:$master_port ($reply); it stays a master with its data until it restarts" ;;
    esac
    [ "$copied" -eq 0 ] || die "cannot recover from $source: the copy failed: $copy"
    load_into_append_only_file "$rdb" "$source"
}

# With appendonly yes and no append-only file, redis-server 7 ignores an RDB file
# and starts empty. So a server of its own, on a Unix socket in the config
# directory (no TCP port: no client but this script), loads the copy, turns it into
# the append-only file (CONFIG SET appendonly yes rewrites the dataset into it, as
# the documented switch from RDB to AOF does), and stops.
load_into_append_only_file() {
    socket=$conf_dir/recovery.sock
    loader_conf=$conf_dir/recovery.conf
    rm -f -- "$socket" "$loader_conf"
    {
        printf 'port 0\n'
        printf 'unixsocket "%s"\n' "$socket"
        printf 'unixsocketperm 700\n'
        printf 'dir "%s"\n' "$data_dir"
        printf 'dbfilename "%s"\n' "${1##*/}"
        printf 'appendonly no\n'
        printf 'save ""\n'
    } > "$loader_conf" || die "cannot write $loader_conf"
    redis-server "$loader_conf" >&2 &
    loader=$!
    # Should this script die while the loader runs, the loader goes with it.
    trap 'kill "$loader" 2>/dev/null' EXIT
    until [ "$(loader_cli PING)" = PONG ]; do
        kill -0 "$loader" 2>/dev/null || die "the copy from $2 could not be loaded (redis-server's log is above)"
        sleep 0.2
    done
    [ "$(loader_cli CONFIG SET appendonly yes)" = OK ] || die "cannot turn the copy from $2 into an append-only file"
    while :; do
        persistence=$(loader_cli INFO persistence | tr -d '\r')
        case $persistence in
            *aof_rewrite_in_progress:1* | *aof_rewrite_scheduled:1*) sleep 0.2 ;;
            *aof_last_bgrewrite_status:ok*) break ;;
            *) die "writing the append-only file from the copy of $2 failed: $persistence" ;;
        esac
    done
    figures=$(info_figures "$(loader_cli INFO replication keyspace persistence memory)")
    loader_cli SHUTDOWN > /dev/null || true
    wait "$loader" || die "the server that loaded the copy from $2 did not stop cleanly"
    trap - EXIT
    holds_data || die "no append-only file in $data_dir after loading the copy from $2"
    rm -f -- "$1" "$loader_conf"
    log "recovered ${figures%% *} keys from $2 into $data_dir; starting as the master"
}

loader_cli() {
    timeout 5 redis-cli -s "$socket" "$@" 2>&1
}

guard_the_replicas_data() {
    chosen_because="the peer with the most data"
    if holds_data; then
        [ -z "$recovery" ] || log "REDIS_RECOVERY=$recovery ignored: $data_dir holds data (remove the pod's annotation journal-iac/redis-recovery)"
        return 0
    fi
    case $recovery in
        start-empty)
            log "$data_dir holds no data and REDIS_RECOVERY=start-empty: starting as an EMPTY master without asking any peer; replicas that hold data discard it at their next sync"
            return 0
            ;;
        recover-from-*)
            wanted=${recovery#recover-from-} i=1 chosen=
            for peer in $peers; do
                [ "$i" -ne "$wanted" ] || chosen=$peer
                i=$((i + 1))
            done
            [ -n "$chosen" ] || die "REDIS_RECOVERY=$recovery names no peer of $pod (its peers: $peers)"
            peers=$chosen
            chosen_because="the peer REDIS_RECOVERY names"
            ;;
    esac
    if [ -z "$peers" ]; then
        log "$data_dir holds no data and $pod has no peers: starting as an empty master"
        return 0
    fi
    survey_peers
    if [ -n "$best" ]; then
        recover_from "$best"
    elif [ -n "$recovery" ]; then
        die "REDIS_RECOVERY=$recovery: $peers holds no data to recover"
    else
        log "no peer holds data: starting as an empty master"
    fi
}

if [ "$role" = master ]; then
    guard_the_replicas_data
fi

# exec: redis-server replaces this shell as the container's main process, so it
# receives SIGTERM from the kubelet directly and shuts down cleanly (flushing the
# append-only file), instead of being killed after the grace period.
exec redis-server "$conf"
