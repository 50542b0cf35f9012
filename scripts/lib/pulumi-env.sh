# shellcheck shell=bash disable=SC2034,SC2154  # variables shared with the sourcing script
# The environment scripts/pulumi.sh runs the pinned Pulumi CLI in; sourced, not run.
#
# The sourcing script sets `root` (the clone) and `stack`. This then:
# - puts the CLI of toolchain/install-pulumi.sh (built if missing) and the venv on PATH;
# - keeps PULUMI_HOME and the file state backend in the clone's owner-only .pulumi/,
#   unless PULUMI_HOME / PULUMI_BACKEND_URL are already set; no update checks, no plugin
#   downloads;
# - installs the providers into PULUMI_HOME under the versions requirements.txt pins (the
#   versions the Python SDK asks the engine for), from the binaries built here;
# - settles the passphrase that encrypts secrets in state: PULUMI_CONFIG_PASSPHRASE or
#   PULUMI_CONFIG_PASSPHRASE_FILE from the caller's environment, which every stack other
#   than dev needs; without either, dev's own random passphrase, generated once into
#   .pulumi/dev-passphrase (owner-only, never committed).
# and sets `private_dir` for the sourcing script: with dev's own passphrase, the
# directory of the private stack files that keep its salt (.pulumi/stacks/); empty when
# the passphrase comes from the caller.

state_dir="$root/.pulumi"
mkdir -p "$state_dir"
chmod 700 "$state_dir"

tools_bin=$("$root/toolchain/install-pulumi.sh")
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

private_dir=
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
	if [ "$stack" != dev ]; then
		echo "pulumi.sh: stack '$stack' needs PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE in the environment" >&2
		exit 2
	fi
	private_dir="$state_dir/stacks"
	passphrase_file="$state_dir/dev-passphrase"
	if [ ! -s "$passphrase_file" ]; then
		(umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$passphrase_file")
		rm -f "$private_dir/Pulumi.$stack.yaml" # a salt made with an earlier passphrase
	fi
	export PULUMI_CONFIG_PASSPHRASE_FILE="$passphrase_file"
fi
