#!/usr/bin/env bash
# Serves a team's Pulumi state from this machine: a real S3 server (versitygw, built by
# toolchain/install-state-server.sh) over a directory, on loopback, in the foreground:
#
#   scripts/state-server.sh DIR [ADDRESS]    ADDRESS defaults to 127.0.0.1:7070
#
# DIR holds the buckets (DIR/buckets/journal-state is the state's bucket) and, made once
# and owner-only, the server's credentials (DIR/server.env) and what a shell needs to use
# it (DIR/client.env: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, PULUMI_BACKEND_URL):
#
#   source DIR/client.env && source scripts/env.sh && pulumi stack ls
#
# No credential is printed or passed on a command line. Stop it with Ctrl-C or SIGTERM;
# the state stays in DIR. The same URL form points Pulumi at any S3 service (see the
# README, "A team's state").
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || $1 == -* ]]; then
	sed -n '2,5s/^# \{0,1\}//p' "$0" >&2
	exit 2
fi
address=${2:-127.0.0.1:7070}
if ! [[ $address =~ ^127(\.[0-9]{1,3}){3}:[0-9]{1,5}$ ]]; then
	echo "state-server.sh: $address is not a loopback address (127.x.y.z:port); this server speaks plain HTTP and is for this machine only" >&2
	exit 2
fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$("$repo/toolchain/install-state-server.sh")

umask 077
mkdir -p "$1/buckets/journal-state"
dir=$(cd "$1" && pwd)
chmod 700 "$dir"
# write_private FILE: stdin into FILE, owner-only, written whole and then renamed (a
# server stopped half-way never leaves half a key).
write_private() {
	local staged
	staged=$(mktemp "$dir/.${1##*/}.XXXXXX")
	cat >"$staged"
	mv -f "$staged" "$1"
}
if [[ ! -s $dir/server.env ]]; then
	printf 'ROOT_ACCESS_KEY_ID=%s\nROOT_SECRET_ACCESS_KEY=%s\n' \
		"journal-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" |
		write_private "$dir/server.env"
fi
chmod 600 "$dir/server.env"
# shellcheck disable=SC1091  # made just above
source "$dir/server.env"
# The endpoint is plain HTTP, so path-style addressing (no bucket in the host name); the
# region is any one name the server and the client agree on.
write_private "$dir/client.env" <<ENV
export AWS_ACCESS_KEY_ID=$ROOT_ACCESS_KEY_ID
export AWS_SECRET_ACCESS_KEY=$ROOT_SECRET_ACCESS_KEY
export PULUMI_BACKEND_URL='s3://journal-state?endpoint=http://$address&s3ForcePathStyle=true&region=us-east-1'
ENV

echo "state-server.sh: S3 on http://$address, state in $dir/buckets/journal-state; to use it: source $dir/client.env" >&2
# versitygw takes options from VGW_* variables too (an admin listener among them): none
# from the caller's environment, this server is the command line's alone.
while read -r name; do unset "$name"; done < <(compgen -e | grep '^VGW_' || true)
export ROOT_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY
exec "$bin/versitygw" --port "$address" --region us-east-1 --quiet --health /health posix "$dir/buckets"
