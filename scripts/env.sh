# shellcheck shell=bash
# The pinned Pulumi toolchain for plain `pulumi` in this project, sourced into your shell:
#
#   source scripts/env.sh
#   pulumi preview                     # the selected stack: dev, unless you select another
#   PULUMI_CONFIG_PASSPHRASE_FILE=~/journal-prod.passphrase pulumi up --stack prod
#
# It builds the CLI and providers from Go modules when they are missing
# (toolchain/install-pulumi.sh; a no-op once built) and sets, for this shell:
# - PATH: the pinned CLI and the project's venv first;
# - PULUMI_HOME and PULUMI_BACKEND_URL: the clone's owner-only .pulumi/, unless set
#   already (a team's backend: see the README, "A team's state"); on the clone's own
#   backend with no stack selected yet, dev is created and selected;
# - no update checks, no plugin downloads, no providers but the pinned ones, installed
#   into PULUMI_HOME from the binaries built here;
# - PULUMI_CONFIG_PASSPHRASE_FILE, when neither it nor PULUMI_CONFIG_PASSPHRASE is set:
#   dev's own passphrase, .pulumi/dev-passphrase (generated once, owner-only). Every
#   other stack needs its own passphrase in the environment; the program refuses a
#   passphrase file others may read, and any stack but dev on dev's passphrase;
# - PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER: a stack file without an `encryptionsalt:`
#   line (dev's, whose salt belongs to this clone and lives in the state) takes the salt
#   from the state instead of making a new one, and Pulumi writes it into the file; the
#   clean filter `dev-salt` (configured here, named in .gitattributes) keeps that line of
#   Pulumi.dev.yaml out of every commit.
# Returns non-zero, changing nothing, when the toolchain cannot be built.

if ! (return 0 2>/dev/null); then
	echo "env.sh: sets variables for the shell that sources it: source scripts/env.sh" >&2
	exit 2
fi
journal_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
if [ ! -x "$journal_root/venv/bin/python" ]; then
	echo "env.sh: no venv in $journal_root yet: run \`make setup\` (or \`make up\`) first; nothing was set" >&2
	return 1
fi
journal_tools_bin=$("$journal_root/toolchain/install-pulumi.sh") || {
	echo "env.sh: toolchain/install-pulumi.sh failed; nothing was set" >&2
	return 1
}
mkdir -p "$journal_root/.pulumi"
chmod 700 "$journal_root/.pulumi"
export PATH="$journal_tools_bin:$journal_root/venv/bin:$PATH"
export PULUMI_HOME="${PULUMI_HOME:-$journal_root/.pulumi/home}"
journal_own_backend="file://$journal_root/.pulumi/state"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-$journal_own_backend}"
case $PULUMI_BACKEND_URL in
file://*) mkdir -p "${PULUMI_BACKEND_URL#file://}" ;;
esac
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
# Providers come from PULUMI_HOME only, at exactly the versions the Python SDKs that
# requirements.txt pins ask the engine for.
export PULUMI_IGNORE_AMBIENT_PLUGINS=true
export PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER=true
if git -C "$journal_root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git -C "$journal_root" config filter.dev-salt.clean "sed '/^encryptionsalt:/d'"
fi

for journal_provider in kubernetes random; do
	journal_version=$(sed -n "s/^pulumi-$journal_provider==//p" "$journal_root/requirements.txt")
	if [ -z "$journal_version" ]; then
		echo "env.sh: requirements.txt pins no pulumi-$journal_provider" >&2
		return 2
	fi
	# Where `pulumi plugin install` puts it (with a .partial marker beside it until the
	# install completes); looking there costs nothing, where `pulumi plugin ls` costs a
	# fifth of a second on every command of scripts/pulumi.sh.
	journal_plugin_dir="$PULUMI_HOME/plugins/resource-$journal_provider-v$journal_version"
	if [ ! -x "$journal_plugin_dir/pulumi-resource-$journal_provider" ] || [ -e "$journal_plugin_dir.partial" ]; then
		pulumi plugin install resource "$journal_provider" "$journal_version" \
			--file "$journal_tools_bin/pulumi-resource-$journal_provider" >&2
	fi
done

if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
	if [ ! -s "$journal_root/.pulumi/dev-passphrase" ]; then
		(umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$journal_root/.pulumi/dev-passphrase")
		rm -f "$journal_root/.pulumi/stacks/Pulumi.dev.yaml" # a salt made with an earlier passphrase
	fi
	export PULUMI_CONFIG_PASSPHRASE_FILE="$journal_root/.pulumi/dev-passphrase"
fi
# A fresh clone has no stack: dev, created as scripts/pulumi.sh creates it (its salt kept
# out of the tracked Pulumi.dev.yaml) and selected, unless some stack is selected. Not
# on a team's backend: there the stacks are the team's, and a dev made with this clone's
# own passphrase would be one no other clone could open.
if [ -z "${JOURNAL_SELECTING_DEV:-}" ] && [ "$PULUMI_BACKEND_URL" = "$journal_own_backend" ] &&
	! (cd "$journal_root" && pulumi stack --show-name >/dev/null 2>&1); then
	# With dev's own passphrase, as the caller's environment had it: none.
	if [ "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" = "$journal_root/.pulumi/dev-passphrase" ]; then
		journal_select=(env -u PULUMI_CONFIG_PASSPHRASE_FILE)
	else
		journal_select=(env)
	fi
	"${journal_select[@]}" JOURNAL_SELECTING_DEV=1 "$journal_root/scripts/pulumi.sh" dev --config-file-path >/dev/null || {
		echo "env.sh: could not create or select the dev stack" >&2
		return 1
	}
fi
unset journal_root journal_own_backend journal_tools_bin journal_plugin_dir journal_provider journal_version journal_select
