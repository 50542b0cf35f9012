# shellcheck shell=bash disable=SC2034,SC2154  # variables shared with the sourcing script
# The environment scripts/pulumi.sh runs the pinned Pulumi CLI in; sourced, not run.
#
# The sourcing script sets `root` (the clone) and `stack`. This refuses a stack other
# than dev without a passphrase from the caller's environment (PULUMI_CONFIG_PASSPHRASE
# or PULUMI_CONFIG_PASSPHRASE_FILE), then sources scripts/env.sh (the toolchain, state and
# dev's own passphrase, as for plain `pulumi`), and sets `private_dir` for the sourcing
# script: with dev's own passphrase, the directory of the private stack files that keep
# its salt (.pulumi/stacks/); empty when the passphrase comes from the caller.

private_dir=
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
	if [ "$stack" != dev ]; then
		echo "pulumi.sh: stack '$stack' needs PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE in the environment" >&2
		exit 2
	fi
	private_dir="$root/.pulumi/stacks"
fi
# shellcheck source-path=SCRIPTDIR source=../env.sh
source "$root/scripts/env.sh" || exit 1
