#!/usr/bin/env bash
# Runs the pinned Pulumi CLI on one stack of this project, offline and self-contained:
#
#   scripts/pulumi.sh STACK [pulumi arguments...]
#   scripts/pulumi.sh dev preview
#   PULUMI_CONFIG_PASSPHRASE_FILE=~/prod.pass scripts/pulumi.sh prod up
#
# - the CLI and plugins come from scripts/install-pulumi.sh (built if missing); the
#   providers are installed into PULUMI_HOME under the versions requirements.txt pins
#   (the versions the Python SDK asks the engine for) and never downloaded;
# - PULUMI_HOME and the state backend are local to the clone (.pulumi/, git-ignored)
#   unless PULUMI_HOME / PULUMI_BACKEND_URL are already set;
# - secrets in state are encrypted with a passphrase. For dev, a random passphrase is
#   generated once into .pulumi/dev-passphrase (owner-only, never committed). Every
#   other stack needs PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE from
#   your environment: a production passphrase never lives in the repository;
# - the stack is created on first use and selected on every run, so any Pulumi command
#   (`version`, `stack output`, `state ...`) acts on STACK; the commands that take
#   --stack get it as well (never after a `--`), which keeps two runs on different
#   stacks in one clone apart.
set -euo pipefail

if [ $# -lt 1 ]; then
	sed -n '2,8s/^# \{0,1\}//p' "$0" >&2
	exit 2
fi
stack=$1
shift

root=$(cd "$(dirname "$0")/.." && pwd)
state_dir="$root/.pulumi"
mkdir -p "$state_dir"
chmod 700 "$state_dir"

tools_bin=$("$root/scripts/install-pulumi.sh")
export PATH="$tools_bin:$root/venv/bin:$PATH"
export PULUMI_HOME="${PULUMI_HOME:-$state_dir/home}"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$state_dir/state}"
case $PULUMI_BACKEND_URL in
file://*) mkdir -p "${PULUMI_BACKEND_URL#file://}" ;;
esac
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
# Providers come from PULUMI_HOME only, at exactly the pinned versions.
export PULUMI_IGNORE_AMBIENT_PLUGINS=true

installed_plugins=$(pulumi plugin ls --json)
for provider in kubernetes random; do
	version=$(sed -n "s/^pulumi-$provider==//p" "$root/requirements.txt")
	[ -n "$version" ] || { echo "pulumi.sh: requirements.txt pins no pulumi-$provider" >&2; exit 2; }
	if ! "$root/venv/bin/python" -c '
import json, sys
name, version = sys.argv[1:]
sys.exit(not any(p["name"] == name and p["kind"] == "resource" and p["version"] == version for p in json.load(sys.stdin)))
' "$provider" "$version" <<<"$installed_plugins"; then
		pulumi plugin install resource "$provider" "$version" --file "$tools_bin/pulumi-resource-$provider" >&2
	fi
done

if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
	if [ "$stack" != dev ]; then
		echo "pulumi.sh: stack '$stack' needs PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE in the environment" >&2
		exit 2
	fi
	passphrase_file="$state_dir/dev-passphrase"
	if [ ! -s "$passphrase_file" ]; then
		(umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$passphrase_file")
	fi
	export PULUMI_CONFIG_PASSPHRASE_FILE="$passphrase_file"
fi

cd "$root"
# Create the stack on first use, then select it: commands without a --stack flag act on
# the selected stack.
if ! pulumi stack select "$stack" >/dev/null 2>&1; then
	pulumi stack init "$stack" --secrets-provider passphrase --no-select >&2 ||
		pulumi stack select "$stack" >/dev/null # created meanwhile by another run
	pulumi stack select "$stack" >/dev/null
fi

# Where the command is: past the global flags (those that take a value take the next
# argument unless written --flag=value), up to a `--`.
command='' end=$#
args=("$@")
for ((i = 0; i < $#; i++)); do
	arg=${args[i]}
	if [ "$arg" = -- ]; then
		end=$i
		break
	elif [ -z "$command" ]; then
		case $arg in
		--color | -C | --cwd | --memprofilerate | --otel-traces | --profiling | --tracing | -v | --verbose) i=$((i + 1)) ;;
		-*) ;;
		*) command=$arg ;;
		esac
	fi
done
flags=("${args[@]:0:end}")
given() {
	local flag name
	for flag in "${flags[@]}"; do
		for name in "$@"; do
			case $flag in "$name" | "$name="*) return 0 ;; esac
		done
	done
	return 1
}

extra=()
case $command in
preview | pre | up | update | refresh | destroy | down | dn | import | config | stack | cancel | console)
	given --stack -s || extra+=("--stack=$stack")
	;;
esac

# The added flags go before any `--`, where the command still reads them as flags.
exec pulumi "${flags[@]}" "${extra[@]}" "${args[@]:end}"
