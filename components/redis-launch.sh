#!/bin/sh
# Launch script of every Redis pod of the StatefulSet:
#     sh /scripts/redis-launch.sh
#
# Environment (set by the StatefulSet; defaults in brackets):
#   HOSTNAME             pod name, e.g. journal-redis-2; the digits after the last
#                        "-" are the ordinal: 0 is the master, the others replicate it
#   REDIS_PASSWORD_FILE  [/etc/redis-passwd/passwd] the mounted Secret
#   REDIS_MASTER_HOST    replicas only: the master's stable DNS name
#   REDIS_MASTER_PORT    [6379]
#   REDIS_PORT           [6379]
#   REDIS_BIND           [* -::*]
#   REDIS_DATA_DIR       [/data]
#   REDIS_CONF_DIR       [/etc/redis] must be writable (an emptyDir)
#   REDIS_MAXMEMORY      [unset: no limit] bytes of data Redis may hold; past it,
#                        writes are refused (noeviction) instead of the container
#                        being OOM-killed at its memory limit
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
    case $master_host in
        *[!0-9A-Za-z.:_-]*) die "REDIS_MASTER_HOST must be a host name or IP address, got '$master_host'" ;;
    esac
    check_port REDIS_MASTER_PORT "$master_port"
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

# exec: redis-server replaces this shell as the container's main process, so it
# receives SIGTERM from the kubelet directly and shuts down cleanly (flushing the
# append-only file), instead of being killed after the grace period.
exec redis-server "$conf"
