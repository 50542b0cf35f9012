#!/bin/sh
# Launch script of every Redis pod of the StatefulSet (its "redis" container):
#     sh /scripts/redis-launch.sh
# It sources redis-common.sh from its own directory (the same ConfigMap mount).
#
# One pod (REDIS_PODS=1, dev): the roles are static, as they always were: ordinal 0 is
# the master, any other pod replicates REDIS_MASTER_HOST.
#
# Several pods (prod: 3): every pod also runs a Sentinel (redis-sentinel.sh, in its
# "sentinel" container), and the Sentinels, not the ordinal, say which pod is the
# master; they fail over by themselves when it fails (redis-sentinel.sh has the
# timings). This script only decides how this pod's Redis starts:
#  1. It asks every Sentinel (the peers' and its own) which pod is the master; when
#     they differ, the most recent failover's answer counts. Another pod: this one
#     starts as its replica. This pod (back before the Sentinels noticed it was
#     gone): it has a Sentinel promote a replica and follows it (hand_over below),
#     and takes the role back with its data only if no replica can be promoted. It
#     refuses to start if its data directory is empty, since its replicas would
#     discard the journal at their next sync to an empty master; being down, it lets
#     the Sentinels fail over to a replica, and its next start follows that one. It
#     refuses too while a Sentinel is failing it over: it would be a second master.
#  2. No Sentinel knows a master (the first deploy, or every pod restarted at once):
#     an election. Every pod starts serving its own data read-only, as the replica of
#     an address where nothing listens (127.0.0.1 port 1): a replica whose link is
#     down answers reads, refuses writes, and lets no other replica sync from it, so
#     nothing is written or wiped before the election. Pod 0 then asks every pod for
#     its data and, once all of them answered, promotes the one holding the most: the
#     highest replication offset under the same replication ID; then the most
#     elements (the lengths of all its keys added up: entries of the journal's sorted
#     set, bytes of a string); then the largest dataset (used_memory_dataset); then
#     the lowest ordinal. A pod holding no element never beats another.
#     Redis 7.0 restarts from its append-only file at offset 0 under a new ID, so
#     after a full restart the offsets tell nothing, and the journal is two keys
#     however long it is, so the key count tells nothing either. Nor is memory a
#     measure of entries: a journal of 9990 entries rebuilt from the commands of an
#     append-only file was measured at 1568000 bytes, one of 10000 loaded from its
#     RDB base at 1503232; hence the element count first.
#     Every pod, pod 0 included, follows the first pod it finds answering as a
#     master (or what a Sentinel names, once one does). No pod waits for a pod that
#     is waiting: pod 0 waits for answers, which every pod gives while it waits, and
#     the others wait for a master to appear.
# Either way redis-server is exec'd as soon as its config is written, so it is the
# container's main process and receives the kubelet's SIGTERM itself (shutting down
# cleanly, flushing the append-only file); the steps that need it running are taken
# by a helper this script leaves in the background. Once this Redis has its role,
# the helper writes the master's host name and this Redis's run ID to
# $REDIS_CONF_DIR/master-host, which the Sentinel of the pod waits for on a first
# start. A refusal after redis-server started (the election could not be held in
# REDIS_PEER_WAIT_SECONDS) kills it: it took no write, so nothing is lost, and the
# container fails and restarts, reading the operator's REDIS_RECOVERY anew.
#
# Environment (set by the StatefulSet; defaults in brackets), besides those of
# redis-common.sh (HOSTNAME, REDIS_USERS_DIR, REDIS_PODS, REDIS_MASTER_HOST,
# REDIS_MASTER_PORT, REDIS_HOSTS, REDIS_SENTINEL_PORT, REDIS_LOCAL_HOST):
#   REDIS_PORT           [6379]
#   REDIS_BIND           [* -::*]
#   REDIS_DATA_DIR       [/data]
#   REDIS_CONF_DIR       [/etc/redis] must be writable (an emptyDir in memory: the
#                        config holds the password), shared with the sentinel container
#   REDIS_MAXMEMORY      [unset: no limit] bytes of data Redis may hold; past it,
#                        writes are refused (noeviction) instead of the container
#                        being OOM-killed at its memory limit
#   REDIS_MASTER_HOST    with REDIS_PODS=1, required on a pod other than 0: the
#                        master it follows
#   REDIS_PEER_WAIT_SECONDS  [30] how long an election may wait for a silent pod,
#                        counted from when this Redis has loaded its data, before
#                        refusing; keep it under the startup probe's allowance
#   REDIS_RECOVERY       [empty] an operator's decision, from the pod's annotation
#                        journal-iac/redis-recovery, for an election that cannot be
#                        held because a pod stays silent; read only when
#                        REDIS_PEER_WAIT_SECONDS have passed with a pod silent and no
#                        Sentinel knowing a master, and ignored otherwise:
#                        "start-empty": the pods that answer elect among themselves
#                        (this one even if empty); the silent ones discard their data
#                        when they come back and follow;
#                        "recover-from-<i>": pod <i>, which must answer and hold data,
#                        becomes the master
# Besides redis-server and redis-cli, it runs timeout, awk, tr, date, cat, mv, rm,
# sleep and id, all in the official Debian-based image.
#
# POSIX sh on purpose: the official image's /bin/sh is dash, where [[ ]] is a
# command-not-found that evaluates as false and silently picks the wrong branch.

set -eu

# LC_ALL=C makes the character classes below byte-wise and independent of the
# image's locale.
LC_ALL=C
export LC_ALL

script=redis-launch
case $0 in
    */*) here=${0%/*} ;;
    *) here=. ;;
esac
if [ ! -r "$here/redis-common.sh" ]; then
    printf 'redis-launch: error: %s/redis-common.sh is missing: the scripts ConfigMap must ship it beside this script\n' "$here" >&2
    exit 1
fi
# shellcheck source=redis-common.sh
. "$here/redis-common.sh"

master_host=${REDIS_MASTER_HOST:-}
master_port=${REDIS_MASTER_PORT:-6379}
port=${REDIS_PORT:-6379}
# "-::*": the leading "-" makes the IPv6 wildcard optional, so Redis still starts
# on clusters whose pods have no IPv6 address.
bind=${REDIS_BIND:-* -::*}
data_dir=${REDIS_DATA_DIR:-/data}
conf_dir=${REDIS_CONF_DIR:-/etc/redis}
maxmemory=${REDIS_MAXMEMORY:-}
peer_wait=${REDIS_PEER_WAIT_SECONDS:-30}
recovery=${REDIS_RECOVERY:-}
conf=$conf_dir/redis.conf
decision=$conf_dir/master-host
# Where a Redis waiting for the election points its replication: nothing listens on
# port 1 of the pod's own loopback, so its link stays down.
nowhere_host=127.0.0.1
nowhere_port=1

# --- validation ---------------------------------------------------------------
# Every value below is written into redis.conf; a newline in one of them would
# inject a directive of its own, so each is held to a strict character set.
read_identity
read_pods
check_port REDIS_PORT "$port"
case $maxmemory in
    '' ) ;;
    *[!0-9]* | 0*) die "REDIS_MAXMEMORY must be a number of bytes, got '$maxmemory'" ;;
esac
case $bind in
    '' | *[!0-9A-Za-z.:*%\ -]*) die "REDIS_BIND must be a space-separated list of addresses, got '$bind'" ;;
esac
check_dir REDIS_DATA_DIR "$data_dir"
check_dir REDIS_CONF_DIR "$conf_dir"
case $peer_wait in
    '' | *[!0-9]*) die "REDIS_PEER_WAIT_SECONDS must be a number of seconds, got '$peer_wait'" ;;
esac
[ "${#peer_wait}" -le 5 ] || die "REDIS_PEER_WAIT_SECONDS must be a number of seconds, got '$peer_wait'"
case $recovery in
    '' | start-empty | recover-from-[0-9] | recover-from-[1-9][0-9] | recover-from-[1-9][0-9][0-9]) ;;
    *) die "REDIS_RECOVERY must be empty, 'start-empty' or 'recover-from-<ordinal>', got '$recovery'" ;;
esac

if [ "$pods" -eq 1 ]; then
    if [ "$ordinal" -eq 0 ]; then
        start_as=master
    else
        start_as=replica
        [ -n "$master_host" ] || die "REDIS_MASTER_HOST is required on replica $pod (the master's stable DNS name, e.g. <statefulset>-0.<headless-service>.<namespace>.svc.cluster.local)"
    fi
    if [ -n "$master_host" ]; then
        check_host REDIS_MASTER_HOST "$master_host"
        check_port REDIS_MASTER_PORT "$master_port"
    fi
else
    read_topology
    local_address=$local_host:$port
    if [ -n "$recovery" ]; then
        case $recovery in
            recover-from-*)
                [ "${recovery#recover-from-}" -lt "$pods" ] ||
                    die "REDIS_RECOVERY=$recovery names no pod of $pods (they are $hosts)"
                ;;
        esac
    fi
fi

read_password
read_secret replication
replication_password=$secret

holds_data() {
    # What redis-server 7 loads with appendonly yes: the manifest of its multi-part
    # append-only file, or the single file of Redis 6 and before, which it upgrades.
    # A dump.rdb alone is not loaded then: the server starts empty beside it.
    [ -e "$data_dir/appendonlydir/appendonly.aof.manifest" ] || [ -e "$data_dir/appendonly.aof" ]
}

# --- with Sentinels: whom the Sentinels name -------------------------------------
if [ "$pods" -gt 1 ]; then
    known=$(sentinel_master)
    if [ -z "$known" ]; then
        start_as=election
    else
        [ -z "$recovery" ] ||
            log "REDIS_RECOVERY=$recovery ignored: the Sentinels know the master (remove the pod's annotation journal-iac/redis-recovery)"
        if [ "${known% *}" = "$own_host" ]; then
            holds_data || die "refusing to start $pod: the Sentinels name it the master, and $data_dir holds no data. An empty master would make every replica that holds data discard it at its next sync; while this pod is down the Sentinels fail over to a replica, and its next start follows that one"
            # Back while the Sentinels replace it, it would be a second master until
            # they turn it into a replica; its next start follows the new one. (Not while
            # the Sentinels merely find it down: if no replica can be promoted, it must
            # come back as the master.)
            ! failover_under_way || die "refusing to start $pod as the master: a Sentinel is failing it over right now; its next start follows the new master"
            start_as=handover
        else
            start_as=replica
            master_host=${known% *} master_port=${known#* }
            check_port "the Sentinels' master port" "$master_port"
        fi
    fi
fi

# --- config -------------------------------------------------------------------------
# The password goes into a config file, not onto the command line: argv is
# readable by every process on the node through /proc and ps (Redis replaces its
# own with a process title once running, but only after exec has exposed it).
# The root filesystem is read-only, so the file lives in the emptyDir. An emptyDir
# outlives container restarts, so a stale file is removed first: a fresh file
# gets the 0600 mode of the umask, and the role and the password are derived
# anew (a rotated Secret takes effect at the next restart; so is anything a
# CONFIG REWRITE saved, on purpose: the Sentinels or the ordinal decide the role).
umask 077
rm -f -- "$conf" "$decision" || die "cannot replace $conf"
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
    # The same users on every node: replicas serve reads, so they refuse strangers
    # as much as the master; masteruser and masterauth let a replica sync, and on
    # the master too, since any pod may be made a replica of another. Only the
    # replication password is written in clear (Redis sends it); the others are
    # hashes. `default` is off: no command without a user, and no AUTH can pick it.
    # Its rights are all the same: the append-only file is replayed as `default`,
    # and EXEC checks the user's rights again (redis/redis#14541, fixed after
    # 7.0), so a `default` allowed nothing drops every MULTI/EXEC since the last
    # rewrite, the journal's writes among them, at each restart.
    printf 'user default off ~* &* +@all\n'
    user_line journal "$ACL_JOURNAL"
    user_line replication "$ACL_REPLICATION"
    user_line sentinel "$ACL_SENTINEL"
    user_line "$OPERATOR" "$ACL_OPERATOR"
    user_line admin "$ACL_ADMIN"
    printf 'masteruser replication\n'
    printf 'masterauth "%s"\n' "$replication_password"
    if [ "$pods" -gt 1 ]; then
        # A master cut off from every replica (a partition that leaves it alone, on
        # the side where the Sentinels elect another) refuses writes once its last
        # replica's acknowledgement is 10 s old: entries it took then would be lost
        # when it rejoins as a replica of the new master. Before that, the journal
        # API's WAIT for a replica is what keeps such a write from being acknowledged.
        printf 'min-replicas-to-write 1\n'
        printf 'min-replicas-max-lag 10\n'
        # The master lists its replicas, and Sentinels learn them from that list, by
        # the name each announces: its stable host name, never the pod IP that the
        # connection comes from, which changes when the pod is rescheduled.
        printf 'replica-announce-ip %s\n' "$own_host"
        # A full sync starts at once instead of after 5 s (the default, to serve
        # several replicas from one transfer): a master that has just taken over, or
        # restarted, refuses writes (min-replicas-to-write) until a replica has synced,
        # and with two replicas at most, waiting saves one fork at the most.
        printf 'repl-diskless-sync-delay 0\n'
    fi
    case $start_as in
        replica)
            # Follow the master by its stable DNS name (headless Service), never by a
            # pod IP, which changes whenever the master pod is rescheduled.
            printf 'replicaof %s %s\n' "$master_host" "$master_port"
            ;;
        election | handover) printf 'replicaof %s %s\n' "$nowhere_host" "$nowhere_port" ;;
    esac
} > "$conf" || die "cannot write $conf"

case $start_as in
    master) log "$pod is the master" ;;
    replica) log "$pod is a replica of $master_host:$master_port" ;;
    election) log "no Sentinel knows a master: $pod serves its data read-only until the election ($hosts)" ;;
    handover) log "the Sentinels still name $pod the master: it serves its data read-only while a replica takes over" ;;
esac

# --- the helper: what needs this Redis running -------------------------------------
# Run in the background with errors handled one by one (no set -e): it ends by
# writing $decision, or by killing the server, which then took no write. Should it
# end any other way, it kills the server too, so that no Redis waits for an
# election that nobody holds.

# local_info SECTION...: this Redis's INFO, without the CRs.
local_info() {
    ask 5 "$local_address" INFO "$@" | tr -d '\r'
}

# field NAME TEXT: the value of "NAME:value" in INFO's TEXT.
field() {
    printf '%s\n' "$2" | awk -F: -v name="$1" '$1 == name { print $2; exit }'
}

# record HOST: write the master's host name and this Redis's run ID to $decision,
# whole or not at all (a rename), for the Sentinel of the pod.
record() {
    run_id=$(field run_id "$(local_info server)")
    case $run_id in
        '' | *[!0-9a-f]*) log "error: cannot read this Redis's run ID"; return 1 ;;
    esac
    if ! { printf '%s %s\n' "$1" "$run_id" > "$decision.new" && mv -f -- "$decision.new" "$decision"; }; then
        log "error: cannot write $decision"
        return 1
    fi
    recorded=yes
}

# follow HOST PORT: make this Redis the master (HOST is this pod) or a replica of
# HOST, unless it is already, and record it.
follow() {
    replication=$(local_info replication)
    if [ "$1" = "$own_host" ]; then
        if [ "$(field role "$replication")" != master ]; then
            reply=$(ask 5 "$local_address" REPLICAOF NO ONE)
            case $reply in
                OK*) ;;
                *) log "error: REPLICAOF NO ONE answered: $reply"; return 1 ;;
            esac
        fi
        log "$pod is the master"
    else
        if [ "$(field master_host "$replication"):$(field master_port "$replication")" != "$1:$2" ]; then
            reply=$(ask 5 "$local_address" REPLICAOF "$1" "$2")
            case $reply in
                OK*) ;;
                *) log "error: REPLICAOF $1 $2 answered: $reply"; return 1 ;;
            esac
        fi
        log "$pod is a replica of $1:$2"
    fi
    record "$1"
}

# From the text of "INFO replication keyspace persistence memory": "loading" while
# the dataset is being read (its key counts are partial then), else "<keys> <offset>
# <dataset bytes> <replication ID> <role> <master host or -> <connected replicas>",
# nothing for any other reply (an error, a refused connection).
info_figures() {
    printf '%s\n' "$1" | tr -d '\r' | awk -F: '
        $1 == "loading" { loading = $2 }
        $1 == "master_repl_offset" { offset = $2 }
        $1 == "master_replid" { replid = $2 }
        $1 == "used_memory_dataset" { bytes = $2 }
        $1 == "role" { role = $2 }
        $1 == "master_host" { master = $2 }
        $1 == "connected_slaves" { replicas = $2 }
        $1 ~ /^db[0-9]+$/ { split($2, counts, /[=,]/); keys += counts[2] }
        END {
            if (loading == "1") print "loading"
            else if (loading == "0" && offset != "" && bytes != "" && replid != "" && role != "")
                printf "%d %s %s %s %s %s %d\n", keys, offset, bytes, replid, role, master == "" ? "-" : master, replicas
        }'
}

# The lengths of every key added up, by a read-only script (EVAL_RO runs on a
# replica): members of a sorted set, set or hash, items of a list or stream, bytes
# of a string.
count_elements='local total, cursor = 0, "0"
repeat
    local page = redis.call("SCAN", cursor, "COUNT", 1000)
    cursor = page[1]
    for _, key in ipairs(page[2]) do
        local kind = redis.call("TYPE", key)["ok"]
        if kind == "zset" then total = total + redis.call("ZCARD", key)
        elseif kind == "string" then total = total + redis.call("STRLEN", key)
        elseif kind == "list" then total = total + redis.call("LLEN", key)
        elseif kind == "set" then total = total + redis.call("SCARD", key)
        elseif kind == "hash" then total = total + redis.call("HLEN", key)
        elseif kind == "stream" then total = total + redis.call("XLEN", key)
        end
    end
until cursor == "0"
return total'

# Asks every pod, this one included. Sets answers (one line a pod that answered, in
# ordinal order: "<ordinal> <host>", its figures, then its element count), silent
# (the hosts that did not), reason (why the last of them did not) and summary (for
# the log).
survey() {
    answers='' silent='' reason='' summary=''
    i=0
    while [ "$i" -lt "$pods" ]; do
        host=$(host_of "$i")
        address=$(address_of "$i" "$peer_port")
        reply=$(ask 5 "$address" INFO replication keyspace persistence memory) || true
        figures=$(info_figures "$reply")
        elements=
        case $figures in
            '' | loading) ;;
            *)
                elements=$(ask 5 "$address" EVAL_RO "$count_elements" 0) || true
                case $elements in
                    '' | *[!0-9]*) reply="EVAL_RO answered: $elements" figures= ;;
                esac
                ;;
        esac
        case $figures in
            '' | loading)
                silent="$silent $host"
                if [ "$figures" = loading ]; then
                    reason="$host is still loading its data"
                else
                    reason="$host: ${reply:-no answer within 5 s}"
                fi
                ;;
            *)
                answers="$answers$i $host $figures $elements
"
                # shellcheck disable=SC2086 # the figures are words on purpose
                set -- $figures
                summary="$summary $host holds $1 keys of $elements elements ($3 bytes) at replication offset $2;"
                ;;
        esac
        i=$((i + 1))
    done
}

# The master already there, as its host: the first pod answering as a master with a
# replica, else the first answering as a master. No pod waiting for the election is
# a master, so one that is was elected, or named by the Sentinels, or kept running.
answering_master() {
    printf '%s' "$answers" | awk '
        $7 == "master" && $9 > 0 && linked == "" { linked = $2 }
        $7 == "master" && alone == "" { alone = $2 }
        END { print linked != "" ? linked : alone }'
}

# The pod holding the most data among those that answered, as its answer's line.
most_data() {
    printf '%s' "$answers" | awk '
        function better() {
            # A pod holding nothing never beats another: among empty pods, whose memory
            # differs by noise alone, the lowest ordinal stays.
            if (elements == 0) return 0
            # Offsets only compare within one history: one replication ID.
            if (replid == best_replid && offset != best_offset) return offset > best_offset
            if (elements != best_elements) return elements > best_elements
            return bytes > best_bytes
        }
        { offset = $4; bytes = $5; replid = $6; elements = $10 }
        NR == 1 || better() {
            best = $0; best_offset = offset; best_bytes = bytes; best_replid = replid; best_elements = elements
        }
        END { print best }'
}

# promote LINE: make the pod of that survey line the master.
promote() {
    # shellcheck disable=SC2086 # the line's fields are words on purpose
    set -- $1
    winner_ordinal=$1 winner=$2
    log "electing $winner, $because ($3 keys of ${10} elements, $5 bytes, at replication offset $4); pods:$summary"
    reply=$(ask 5 "$(address_of "$winner_ordinal" "$peer_port")" REPLICAOF NO ONE)
    case $reply in
        OK*) return 0 ;;
        *) log "error: $winner answered REPLICAOF NO ONE with: $reply"; return 1 ;;
    esac
}

refuse() {
    log "error: $*"
    kill -KILL "$server" 2>/dev/null
    exit 1
}

# unused_recovery WHY: say that the operator's decision played no part.
unused_recovery() {
    [ -z "$recovery" ] || [ -n "$overridden" ] ||
        log "REDIS_RECOVERY=$recovery ignored: $1 (remove the pod's annotation journal-iac/redis-recovery)"
}

elect() {
    # In milliseconds (GNU date, as in the image): whole seconds would cut the wait
    # short by up to one second, depending on how far into its first second it began.
    deadline=$(($(date +%s%3N) + peer_wait * 1000))
    while :; do
        kill -0 "$server" 2>/dev/null || exit 0
        # A Sentinel that knows a master has it from an election (or a failover)
        # already held: its word ends this one.
        known=$(sentinel_master)
        if [ -n "$known" ]; then
            unused_recovery "a Sentinel knows the master"
            if [ "${known% *}" = "$own_host" ] && [ "$(field role "$(local_info replication)")" != master ]; then
                # The Sentinels answer only now (a new pod's network is opened a
                # moment after it starts) and name this pod, which was gone and serves
                # read-only: as at a start, a replica takes over rather than this pod
                # racing them. (The pod this election promoted is a master already.)
                hand_over
            else
                follow "${known% *}" "${known#* }"
            fi
            return
        fi
        survey
        elected=$(answering_master)
        if [ -n "$elected" ]; then
            unused_recovery "$elected answers as the master"
            follow "$elected" "$peer_port"
            return
        fi
        if [ -z "$silent" ] && [ "$ordinal" -eq 0 ]; then
            because="the pod with the most data"
            promote "$(most_data)" || refuse "cannot promote the pod elected as master"
            continue
        fi
        if [ "$(date +%s%3N)" -ge "$deadline" ]; then
            [ -z "$overridden" ] || refuse "the master REDIS_RECOVERY=$recovery chose does not answer as one (pods:$summary; silent:$silent)"
            case $recovery in
                start-empty)
                    overridden=yes because="the pod with the most data among those that answer (REDIS_RECOVERY=start-empty; silent:$silent)"
                    promote "$(most_data)" || refuse "cannot promote the pod elected as master"
                    continue
                    ;;
                recover-from-*)
                    wanted=${recovery#recover-from-}
                    line=$(printf '%s' "$answers" | awk -v wanted="$wanted" '$1 == wanted && $3 > 0')
                    [ -n "$line" ] || refuse "REDIS_RECOVERY=$recovery: $(host_of "$wanted") does not answer with data (pods:$summary; silent:$silent)"
                    overridden=yes because="as REDIS_RECOVERY=$recovery says"
                    promote "$line" || refuse "cannot promote the pod REDIS_RECOVERY names"
                    continue
                    ;;
            esac
            if [ "$ordinal" -eq 0 ]; then
                refuse "refusing to start $pod: no Sentinel knows a master, and pod(s)$silent did not answer within $peer_wait s (last: $reason). The master is elected only once every pod told what data it holds, or a pod with less data could become the master and the others discard theirs at their next sync. Bring the pod back, or decide with the pod annotation journal-iac/redis-recovery (docs/operations.md: \"When the election refuses, the operator decides\")"
            fi
            refuse "refusing to start $pod: no Sentinel knows a master, and no pod answers as one within $peer_wait s: pod 0 ($(host_of 0)) elects the master once every pod answers (silent:$silent; last: $reason). Bring the pod back, or decide with the pod annotation journal-iac/redis-recovery (docs/operations.md: \"When the election refuses, the operator decides\")"
        fi
        sleep 1
    done
}

# A master back before the Sentinels noticed it was gone (its container crashed, was
# OOM-killed or restarted by its liveness probe) must not take the role again by
# itself: the Sentinels may be failing it over already, and for a while there would be
# two masters, each acknowledging writes the other never sees; its replicas would also
# discard their copies and sync anew (a restarted Redis has a new replication ID),
# refusing writes until one has. So, serving only reads of its own data, it asks a
# Sentinel (another pod's first) to promote a replica, and follows the master they
# name: every acknowledged entry is on every replica in step (the journal API WAITs
# for all of them), so the promoted one holds them all. Only when no replica can be
# promoted (none in step, no Sentinel answering) does it take the role back.
hand_over() {
    asked='' i=0
    while [ "$i" -lt "$pods" ]; do
        candidate=$(( (ordinal + 1 + i) % pods ))
        reply=$(ask 3 "$(address_of "$candidate" "$sentinel_port")" SENTINEL FAILOVER "$MASTER_NAME")
        case $reply in
            OK* | INPROG*) asked=$(host_of "$candidate"); break ;;
        esac
        log "the Sentinel of $(host_of "$candidate") did not start a failover: ${reply:-no answer}"
        i=$((i + 1))
    done
    if [ -n "$asked" ]; then
        log "the Sentinel of $asked is promoting a replica"
        deadline=$(($(date +%s%3N) + peer_wait * 1000))
        while [ "$(date +%s%3N)" -lt "$deadline" ]; do
            kill -0 "$server" 2>/dev/null || exit 0
            known=$(sentinel_master)
            if [ -n "$known" ] && [ "${known% *}" != "$own_host" ]; then
                follow "${known% *}" "${known#* }"
                return
            fi
            sleep 0.2
        done
        log "no Sentinel named another master within $peer_wait s"
    fi
    holds_data || refuse "no replica can be promoted, and $data_dir holds no data: $pod does not take the master role empty"
    log "no replica can be promoted: $pod takes the master role back with its data"
    follow "$own_host" "$peer_port" || refuse "cannot take the master role back"
}

take_role() {
    set +e
    recorded='' overridden=''
    trap '[ -n "$recorded" ] || kill -KILL "$server" 2>/dev/null' EXIT
    until [ "$(ask 5 "$local_address" PING)" = PONG ]; do
        kill -0 "$server" 2>/dev/null || exit 0
        sleep 0.2
    done
    case $start_as in
        master) record "$own_host" ;;
        replica) record "$master_host" ;;
        election) elect ;;
        handover) hand_over ;;
    esac
}

if [ "$pods" -gt 1 ]; then
    # $$ stays this shell's pid in the subshell, and becomes redis-server's below.
    server=$$
    take_role &
fi

# exec: redis-server replaces this shell as the container's main process, so it
# receives SIGTERM from the kubelet directly and shuts down cleanly (flushing the
# append-only file), instead of being killed after the grace period.
exec redis-server "$conf"
