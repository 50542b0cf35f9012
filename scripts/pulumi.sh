#!/usr/bin/env bash
# Runs the pinned Pulumi CLI on one stack of this project, offline and self-contained:
#
#   scripts/pulumi.sh STACK [PULUMI-COMMAND [arguments...]]
#   scripts/pulumi.sh dev preview
#   PULUMI_CONFIG_PASSPHRASE_FILE=~/prod.pass scripts/pulumi.sh prod up
#   scripts/pulumi.sh STACK --config-file-path
#
# Its environment is scripts/lib/pulumi-env.sh's: the CLI and the providers built here,
# never downloaded; PULUMI_HOME and the state backend local to the clone (.pulumi/,
# git-ignored) unless already set; secrets in state encrypted with a passphrase, which
# every stack other than dev needs from your environment (a production passphrase never
# lives in the repository; Pulumi keeps its salt as `encryptionsalt:` in
# Pulumi.STACK.yaml, to be committed once). What this script adds:
# - the stack is created on first use and selected on every run, so any Pulumi command
#   (`version`, `stack output`, `state ...`) acts on STACK; the commands that take
#   --stack get it as well (never after a `--`), which keeps two runs on different
#   stacks in one clone apart;
# - with dev's own passphrase (neither PULUMI_CONFIG_PASSPHRASE nor
#   PULUMI_CONFIG_PASSPHRASE_FILE set), which belongs to this clone alone and so does its
#   salt, the salt is kept out of the tracked Pulumi.dev.yaml, in
#   .pulumi/stacks/Pulumi.dev.yaml, a private copy of it rebuilt on every run (your edits
#   to Pulumi.dev.yaml take effect) that preview, up, refresh, destroy, import and the
#   reading config commands are given as --config-file. `config set` and the other
#   writing config commands still write Pulumi.dev.yaml; secret values (`--secret`) are
#   refused there, as no other clone could decrypt them.
# - `--config-file-path` as the only argument creates the stack if needed and prints
#   the configuration file the commands above read (used by scripts/render.sh).
set -euo pipefail

if [ $# -lt 1 ]; then
	sed -n '2,8s/^# \{0,1\}//p' "$0" >&2
	exit 2
fi
stack=$1
shift

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/pulumi-env.sh
source "$root/scripts/lib/pulumi-env.sh"

cd "$root"
stack_file="Pulumi.$stack.yaml"
# The stack configuration file the commands read: empty means Pulumi's own choice,
# the tracked Pulumi.STACK.yaml.
config_file=
if [ -n "$private_dir" ]; then
	# Here dev's salt is the private file's: the tracked one stays as it is.
	unset PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER
	# The private stack file: the tracked one without any salt of its own, plus the
	# salt Pulumi wrote into the private file (at `stack init`, below, or whenever it
	# finds none). A directory of its own, with a copy of Pulumi.yaml, so that
	# `stack init` can run there and write the salt nowhere else.
	config_file="$private_dir/$stack_file"
	mkdir -p "$private_dir"
	cp Pulumi.yaml "$private_dir/Pulumi.yaml"
	salt=
	if [ -f "$config_file" ]; then salt=$(sed -n 's/^encryptionsalt: *//p' "$config_file" | head -n 1); fi
	# Plain `pulumi` writes this clone's salt there too (scripts/env.sh): any other salt
	# belongs to another passphrase.
	if [ -f "$stack_file" ] && grep '^encryptionsalt:' "$stack_file" | grep -vqxF "encryptionsalt: $salt"; then
		echo "pulumi.sh: ignoring the encryptionsalt line of $stack_file: it belongs to another passphrase than this clone's own .pulumi/dev-passphrase (delete the line, or set PULUMI_CONFIG_PASSPHRASE to the passphrase it was made with)" >&2
	fi
	staged=$(umask 077 && mktemp "$private_dir/.$stack_file.XXXXXX")
	{
		# awk ends every line it prints, the last one too: the salt never lands on it.
		if [ -f "$stack_file" ]; then awk '!/^encryptionsalt:/' "$stack_file"; fi
		if [ -n "$salt" ]; then printf 'encryptionsalt: %s\n' "$salt"; fi
	} >"$staged"
	mv -f "$staged" "$config_file"
fi

# Create the stack on first use (in the private directory when there is one, so that
# Pulumi writes the new salt there), then select it: commands without a --stack flag
# act on the selected stack.
if ! pulumi stack select "$stack" >/dev/null 2>&1; then
	if [ -n "$config_file" ]; then
		pulumi --cwd "$private_dir" stack init "$stack" --secrets-provider passphrase --no-select >&2 ||
			pulumi --cwd "$private_dir" stack select "$stack" >/dev/null # created meanwhile by another run
	else
		pulumi stack init "$stack" --secrets-provider passphrase --no-select >&2 ||
			pulumi stack select "$stack" >/dev/null
	fi
	pulumi stack select "$stack" >/dev/null
fi

if [ "$#" -eq 1 ] && [ "$1" = --config-file-path ]; then
	echo "${config_file:-$root/$stack_file}"
	exit 0
fi

# The Pulumi command comes first (global flags such as --color may follow it), so the
# flags added here go right after it, ahead of any `--`.
command=${1:-}
[ "$#" -eq 0 ] || shift
given() {
	local arg name
	for arg in "${args[@]}"; do
		[ "$arg" != -- ] || return 1
		for name in "$@"; do
			case $arg in "$name" | "$name="*) return 0 ;; esac
		done
	done
	return 1
}
args=("$@")

extra=()
case $command in
preview | pre | up | update | refresh | destroy | down | dn | import | config | stack | cancel | console)
	given --stack -s || extra+=("--stack=$stack")
	;;
esac
if [ -n "$config_file" ] && ! given --config-file; then
	case $command in
	preview | pre | up | update | refresh | destroy | down | dn | import) extra+=("--config-file=$config_file") ;;
	config)
		case ${1:-} in
		set | set-all | rm | rm-all | cp | refresh | env)
			if given --secret; then
				echo "pulumi.sh: dev's passphrase is this clone's own (.pulumi/dev-passphrase): a secret encrypted with it in $stack_file could be read by no other clone. Share a dev passphrase through PULUMI_CONFIG_PASSPHRASE to keep secrets in $stack_file." >&2
				exit 2
			fi
			;;
		*) extra+=("--config-file=$config_file") ;; # list or get
		esac
		;;
	esac
fi

exec pulumi ${command:+"$command"} "${extra[@]}" "$@"
