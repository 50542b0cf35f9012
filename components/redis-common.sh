# Shared by redis-launch.sh, redis-sentinel.sh and redis-prestop.sh, which source it
# from their own directory (the same ConfigMap mount); never run on its own. It holds
# what the three must agree on: the pod's identity, its peers' names, the password and
# how a peer is asked a question. POSIX sh, like its callers (dash in the image).
#
# Before sourcing, a caller sets `script` (its name, the prefix of every message).
# Environment read here (defaults in brackets):
#   HOSTNAME             pod name, e.g. journal-redis-2: the digits after the last "-"
#                        are the ordinal
#   REDIS_USERS_DIR      [/etc/redis-users] the mounted Secrets: for each Redis user
#                        a script authenticates as, a file named after it holding its
#                        password, and for each user a server defines, <user>.sha256
#                        holding the SHA-256 of its password (64 hex digits)
#   REDIS_PODS           [1] pods in the StatefulSet; above 1, Sentinels pick the master
#   REDIS_MASTER_HOST    pod 0's stable DNS name, <statefulset>-0.<headless>.<ns>.svc:
#                        pod <i>'s name is it with "-0" replaced by "-<i>"
#   REDIS_MASTER_PORT    [6379] the port every pod's Redis listens on, as peers reach it
#   REDIS_HOSTS          [derived from REDIS_MASTER_HOST] every pod's host name, in
#                        ordinal order, separated by spaces
#   REDIS_SENTINEL_PORT  [26379] the port every pod's Sentinel listens on
#   REDIS_LOCAL_HOST     [127.0.0.1] where this pod's own Redis and Sentinel answer from
#                        inside the pod
#   REDIS_CONF_DIR       [/etc/redis] the in-memory emptyDir both containers mount

# Sentinel's name for the journal's master, in every Sentinel command and config line.
MASTER_NAME=journal

# --- the Redis users: who may do what (docs/operations.md, "Redis users") -----------
# `default` is off on every server and Sentinel: a connection does nothing before it
# authenticates as one of the users below, each allowed only what it needs ("-@all",
# then each command by name). Passwords reach the configs only as SHA-256 hashes
# ("#<hash>"), except those a server itself sends (masterauth, Sentinel's auth-pass).
# On every Redis server:
#   journal      the frontend: the commands store.py sends, on the journal's keys only.
#                INFO is for the replicas in step before WAIT (every section comes with
#                it: ACL cannot split INFO); ROLE asks a master that refused a write
#                which server it follows now (a hand-over the Sentinels have not named yet).
# shellcheck disable=SC2034 # used by the scripts that source this file
ACL_JOURNAL='resetkeys ~journal:* resetchannels -@all +watch +get +multi +incr +zadd +exec +zremrangebyscore +info +role +wait +zrevrange +zrangebyscore'
#   replication  a replica on its master (masteruser): the replication handshake and stream.
# shellcheck disable=SC2034 # used by the scripts that source this file
ACL_REPLICATION='resetkeys resetchannels -@all +psync +replconf +ping'
#   sentinel     a Sentinel on the servers it watches, as the Redis documentation lists
#                it ("ACL rules for Sentinel"): INFO and ROLE to watch, its hello channel,
#                SLAVEOF, CONFIG REWRITE and CLIENT KILL in MULTI/EXEC to fail over.
# shellcheck disable=SC2034 # used by the scripts that source this file
ACL_SENTINEL='resetkeys resetchannels &__sentinel__:hello -@all +multi +slaveof +ping +exec +subscribe +config|rewrite +role +publish +info +client|setname +client|kill +script|kill'
#   operator     these scripts and the probe: PING, INFO and ROLE, REPLICAOF to take a
#                role, CLIENT PAUSE/UNPAUSE for the hand-over, and a read-only script (EVAL_RO)
#                reading every key's length for the election; nothing that writes a key.
# shellcheck disable=SC2034 # used by the scripts that source this file
ACL_OPERATOR='resetkeys %R~* resetchannels -@all +ping +info +role +replicaof +client|pause +client|unpause +eval_ro +scan +type +zcard +strlen +llen +scard +hlen +xlen'
#   admin        people, for what no other user may do (an incident's CONFIG SET, a
#                test's faults): everything. No container mounts its password; it is
#                only in its Secret, and whoever uses it pipes it in (docs/operations.md).
# shellcheck disable=SC2034 # used by the scripts that source this file
ACL_ADMIN='~* &* +@all'
# On every Sentinel:
#   journal      the frontend asks for the master (SENTINEL MASTERS), nothing else.
# shellcheck disable=SC2034 # used by the scripts that source this file
SENTINEL_ACL_JOURNAL='resetchannels -@all +sentinel|masters'
#   sentinel     the other Sentinels (sentinel-user): PING, the hello messages, votes.
# shellcheck disable=SC2034 # used by the scripts that source this file
SENTINEL_ACL_SENTINEL='resetchannels &__sentinel__:hello -@all +ping +publish +sentinel|is-master-down-by-addr +client|setname'
#   operator     these scripts and the probe: whom the Sentinels name, and a failover.
# shellcheck disable=SC2034 # used by the scripts that source this file
SENTINEL_ACL_OPERATOR='resetchannels -@all +ping +sentinel|master +sentinel|get-master-addr-by-name +sentinel|failover'
#   admin        people: everything, as on the servers.
# shellcheck disable=SC2034 # used by the scripts that source this file
SENTINEL_ACL_ADMIN='&* +@all'
# The user these scripts and the probe authenticate as.
OPERATOR=operator
# The caller's name, set before sourcing.
script=${script:?set script before sourcing redis-common.sh}

die() {
    # Never pass the password to this function: its text goes to the pod's log.
    printf '%s: error: %s\n' "$script" "$*" >&2
    exit 1
}

log() {
    # Never pass the password to this function: its text goes to the pod's log.
    printf '%s: %s\n' "$script" "$*" >&2
}

check_port() {
    case $2 in
        '' | *[!0-9]* | 0 | 0*) die "$1 must be a port number from 1 to 65535, got '$2'" ;;
    esac
    # The length test comes first: dash's -le fails on numbers beyond its integers.
    if [ "${#2}" -gt 5 ] || [ "$2" -gt 65535 ]; then
        die "$1 must be a port number from 1 to 65535, got '$2'"
    fi
}

# A host name or an IP address: written into config files unquoted, so nothing but
# the characters of one (a space or a newline would add an argument or a directive).
check_host() {
    case $2 in
        '' | *[!0-9A-Za-z.:_-]*) die "$1 must be a host name or IP address, got '$2'" ;;
    esac
    [ "${#2}" -le 253 ] || die "$1 must be a host name of at most 253 characters"
}

# Paths are written double-quoted; only '"', '\' and control characters would
# break out of Redis's quoting.
check_dir() {
    case $2 in
        '' | *[\"\\]* | *[[:cntrl:]]*) die "$1 must be a plain directory path" ;;
    esac
    [ -d "$2" ] || die "$1 '$2' is not a directory"
    [ -w "$2" ] || die "$1 '$2' is not writable by uid $(id -u) (on Kubernetes: the pod's runAsUser/fsGroup)"
}

# Sets pod and ordinal. Kubernetes sets HOSTNAME to the pod name, and a StatefulSet
# names its pods <statefulset>-<ordinal>; the ordinal is the only stable identity a
# pod has. (Linters flag $HOSTNAME because bash sets it itself; here it comes from
# the container's environment, which is POSIX.)
read_identity() {
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
    esac
    # Without leading zeros, which $((...)) would read as octal.
    while :; do
        case $ordinal in
            0?*) ordinal=${ordinal#0} ;;
            *) break ;;
        esac
    done
}

# Sets pods (the count), from REDIS_PODS.
read_pods() {
    pods=${REDIS_PODS:-1}
    case $pods in
        '' | *[!0-9]* | 0*) die "REDIS_PODS must be the number of pods of the StatefulSet, 1 or more, got '$pods'" ;;
    esac
    [ "${#pods}" -le 3 ] || die "REDIS_PODS must be the number of pods of the StatefulSet, got '$pods'"
}

# Sets hosts (every pod's host name, in ordinal order), own_host, peer_port,
# sentinel_port and local_host, for a StatefulSet of more than one pod. Pods are only
# ever addressed by these stable names, never by a pod IP, which changes whenever a
# pod is rescheduled.
read_topology() {
    peer_port=${REDIS_MASTER_PORT:-6379}
    sentinel_port=${REDIS_SENTINEL_PORT:-26379}
    local_host=${REDIS_LOCAL_HOST:-127.0.0.1}
    check_port REDIS_MASTER_PORT "$peer_port"
    check_port REDIS_SENTINEL_PORT "$sentinel_port"
    check_host REDIS_LOCAL_HOST "$local_host"
    hosts=${REDIS_HOSTS:-}
    if [ -z "$hosts" ]; then
        # Pods of a StatefulSet share pod 0's DNS domain (the headless Service), so pod
        # <i> is pod 0's name with its ordinal replaced.
        first=${REDIS_MASTER_HOST:-}
        [ -n "$first" ] || die "REDIS_MASTER_HOST is required when REDIS_PODS is $pods: every pod is named after it (<statefulset>-0.<headless-service>.<namespace>.svc)"
        check_host REDIS_MASTER_HOST "$first"
        first_name=${first%%.*}
        case $first_name in
            ?*-0) ;;
            *) die "REDIS_MASTER_HOST '$first' must start with pod 0's name (<statefulset>-0) for its peers to be named after it" ;;
        esac
        [ "${pod%-*}" = "${first_name%-0}" ] ||
            die "HOSTNAME '$pod' is not a pod of the StatefulSet REDIS_MASTER_HOST names ('${first_name%-0}')"
        domain=
        case $first in
            *.*) domain=.${first#*.} ;;
        esac
        i=0
        while [ "$i" -lt "$pods" ]; do
            hosts="${hosts:+$hosts }${first_name%-0}-$i$domain"
            i=$((i + 1))
        done
    fi
    count=0
    own_host=
    for host in $hosts; do
        check_host REDIS_HOSTS "$host"
        [ "$count" -ne "$ordinal" ] || own_host=$host
        count=$((count + 1))
    done
    [ "$count" -eq "$pods" ] || die "REDIS_HOSTS names $count pods, REDIS_PODS says $pods"
    [ -n "$own_host" ] || die "$pod's ordinal $ordinal is not below REDIS_PODS ($pods): its peers are $hosts"
}

# host_of ORDINAL: that pod's host name.
host_of() {
    i=0
    for host in $hosts; do
        if [ "$i" -eq "$1" ]; then
            printf '%s' "$host"
            return 0
        fi
        i=$((i + 1))
    done
    return 1
}

# is_pod HOST: whether HOST is one of the pods' names.
is_pod() {
    for host in $hosts; do
        [ "$host" != "$1" ] || return 0
    done
    return 1
}

# read_secret USER: sets secret to USER's password, from $REDIS_USERS_DIR/USER. Kept in
# a shell variable that is never exported, and only handed to printf, which is a shell
# builtin, and to redis-cli through REDISCLI_AUTH for one command: no exec'd process
# ever carries it in its argv, nor any other in its environment. Messages name the
# file, never its content.
read_secret() {
    password_file=${REDIS_USERS_DIR:-/etc/redis-users}/$1
    [ -e "$password_file" ] || die "password file $password_file does not exist (is the Secret mounted?)"
    [ -r "$password_file" ] || die "password file $password_file is not readable by uid $(id -u)"
    # $(...) drops trailing newlines, so a Secret made with "echo" still works.
    secret=$(cat -- "$password_file") || die "cannot read password file $password_file"
    [ -n "$secret" ] || die "password file $password_file is empty"
    case $secret in
        *[\"\\]* | *[[:cntrl:]]*)
            die "password in $password_file contains a double quote, a backslash or a control character (such as a newline), which cannot be written safely into a config"
            ;;
    esac
}

# Sets password: the operator's, which every question these scripts ask goes with.
read_password() {
    read_secret "$OPERATOR"
    password=$secret
}

# user_line USER RULES: the config line defining USER with the hash of its password,
# from $REDIS_USERS_DIR/USER.sha256 (computed where the password is generated: a
# server needs no password it does not send).
user_line() {
    hash_file=${REDIS_USERS_DIR:-/etc/redis-users}/$1.sha256
    [ -r "$hash_file" ] || die "hash file $hash_file is missing or not readable by uid $(id -u) (is the Secret mounted?)"
    hash=$(cat -- "$hash_file") || die "cannot read hash file $hash_file"
    case $hash in
        *[!0-9a-f]*) die "hash file $hash_file must hold the SHA-256 of $1's password in 64 lowercase hex digits" ;;
    esac
    [ "${#hash}" -eq 64 ] || die "hash file $hash_file must hold the SHA-256 of $1's password in 64 lowercase hex digits"
    printf 'user %s on #%s %s\n' "$1" "$hash" "$2"
}

# ask SECONDS HOST:PORT COMMAND...: the reply, or redis-cli's or timeout's failure.
# It authenticates as the operator; the password reaches redis-cli only through
# REDISCLI_AUTH, set for that one command (as in redis-probe.sh): never in an argv,
# never exported. redis-cli has no timeout
# of its own, so a peer that accepts and never answers would hang the caller.
ask() {
    within=$1
    address=$2
    shift 2
    REDISCLI_AUTH=$password timeout "$within" redis-cli --user "$OPERATOR" -h "${address%:*}" -p "${address##*:}" "$@" 2>&1
}

# address_of ORDINAL PORT: how this pod reaches that pod's server on PORT (its own
# through REDIS_LOCAL_HOST: no name lookup for itself).
address_of() {
    if [ "$1" -eq "$ordinal" ]; then
        printf '%s:%s' "$local_host" "$2"
    else
        printf '%s:%s' "$(host_of "$1")" "$2"
    fi
}

# The master the Sentinels know, as "HOST PORT", or nothing when no Sentinel answers
# with one. Every Sentinel is asked (this pod's too); when they differ (during a
# failover), the one with the highest config-epoch is the most recent: that is the
# number a failover raises, and the one Sentinels themselves converge on. The address
# is GET-MASTER-ADDR-BY-NAME's, which names the promoted replica as soon as the
# failover's leader promoted it; SENTINEL MASTER's own "ip" names the old master
# until the failover has ended.
sentinel_master() {
    best_epoch=-1 best=
    i=0
    while [ "$i" -lt "$pods" ]; do
        address=$(address_of "$i" "$sentinel_port")
        reply=$(ask 3 "$address" SENTINEL MASTER "$MASTER_NAME") || reply=
        # A reply is field and value on alternate lines.
        epoch=$(printf '%s\n' "$reply" | tr -d '\r' | awk '
            NR % 2 == 1 { field = $0; next }
            field == "config-epoch" && $0 ~ /^[0-9]+$/ { print; exit }')
        if [ -n "$epoch" ]; then
            reply=$(ask 3 "$address" SENTINEL GET-MASTER-ADDR-BY-NAME "$MASTER_NAME") || reply=
            host_port=$(printf '%s\n' "$reply" | tr -d '\r' | awk '
                NR == 1 { host = $0 } NR == 2 { port = $0 }
                END { if (NR == 2 && host != "" && port ~ /^[0-9]+$/) print host, port }')
            if [ -z "$host_port" ]; then
                :
            elif ! is_pod "${host_port% *}"; then
                log "ignoring the Sentinel at $address: its master ${host_port% *} is none of the pods ($hosts)"
            elif [ "${#epoch}" -le 9 ] && [ "$epoch" -gt "$best_epoch" ]; then
                best_epoch=$epoch best=$host_port
            fi
        fi
        i=$((i + 1))
    done
    printf '%s' "$best"
}

# Whether a Sentinel is failing the master over right now (it says so in the flags of
# SENTINEL MASTER until the failover has ended or been abandoned).
failover_under_way() {
    i=0
    while [ "$i" -lt "$pods" ]; do
        reply=$(ask 3 "$(address_of "$i" "$sentinel_port")" SENTINEL MASTER "$MASTER_NAME") || reply=
        case $reply in
            *failover_in_progress*) return 0 ;;
        esac
        i=$((i + 1))
    done
    return 1
}
