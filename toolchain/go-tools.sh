# shellcheck shell=bash disable=SC2034,SC2154  # variables shared with the sourcing script
# Shared by the scripts that build pinned tools from the Go module proxy
# (install-pulumi.sh, install-kubernetes.sh); sourced, not run.
#
# A tool is built from a wrapper module under toolchain/ into
# ${JOURNAL_IAC_TOOLS:-$HOME/.cache/journal-iac/tools}/<tool>-<version>/bin and
# rebuilt only when its fingerprint (wrapper files, Go version, flags, versions)
# changes. A combined bin dir of relative symlinks is the script's one line of
# stdout; progress goes to stderr.
#
# The sourcing script sets, before calling go_tools_main "$@":
#   script      its name, for messages
#   combined    the combined bin dir
#   links       array of "<tool name>:<dir holding bin/<tool name>>"
#   lock_name   the lock file's name under the tools dir
#   modules     array of the wrapper module dirs under toolchain/ it builds from
#               (their go.mod `go` lines decide the minimum Go version)
# and defines build_all, which calls the build steps in order.
#
# Scratch dirs (the staging dir of begin_build, work dirs made with scratch_dir) are
# removed when the script exits, whether the build succeeded or failed.

log() { echo "$script: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
toolchain="$repo/toolchain"
tools=${JOURNAL_IAC_TOOLS:-$HOME/.cache/journal-iac/tools}
# Flags for every go build/run; GOFLAGS from the environment still applies.
goflags=(-mod=readonly -trimpath -buildvcs=false)
force=0
locked=0

# Removed on exit (see go_tools_main's trap): a failed build leaves no scratch dir.
scratch=()
remove_scratch() {
	local d
	for d in ${scratch[@]+"${scratch[@]}"}; do
		if [[ -e $d ]]; then
			# Files copied from the module cache are read-only.
			chmod -R u+w "$d" 2>/dev/null || true
			rm -rf "$d"
		fi
	done
}

# scratch_dir PREFIX: makes a temporary dir, removed on exit, and sets $scratch_path to
# it (a variable, not stdout: a $(...) subshell could not record it for removal).
scratch_dir() {
	scratch_path=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
	scratch+=("$scratch_path")
}

# go_mod_minimum DIR...: the highest `go` line of the go.mod files under DIRs.
go_mod_minimum() {
	find "$@" -name go.mod -exec sed -n 's/^go[[:space:]]\{1,\}\([0-9][0-9.]*\)[[:space:]]*$/\1/p' {} + |
		sort -V | tail -n 1
}

# version_at_least HAVE NEED (dotted numbers)
version_at_least() {
	[[ "$(printf '%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]
}

# check_go_version: with GOTOOLCHAIN=local, Go builds a module only if it is at least
# as new as the module's go line; say so before any build starts.
check_go_version() {
	local need have
	need=$(go_mod_minimum "${modules[@]/#/$toolchain/}")
	[[ -n $need ]] || die "no go line in the go.mod files of toolchain/{$(
		IFS=,
		echo "${modules[*]}"
	)}"
	have=${go_version#go}
	have=${have%%[!0-9.]*}
	if [[ -z $have ]]; then
		log "cannot tell the version of $go_version; the wrappers need Go >= $need"
	elif [[ $GOTOOLCHAIN == local ]] && ! version_at_least "$have" "$need"; then
		die "Go >= $need is needed (the go lines of toolchain/*/go.mod), $GO is $go_version; install a newer Go, point GO at it, or set GOTOOLCHAIN=auto to let Go fetch one"
	fi
}

# fingerprint DIR EXTRA...: hash of the wrapper module's files and of whatever
# else decides the build output (versions, flags).
fingerprint() {
	local src=$1
	shift
	{
		printf '%s\n' "$go_version" "${goflags[*]}" "$@"
		(cd "$src" && find . -type f ! -name '*.md' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
	} | sha256sum | cut -d' ' -f1
}

# up_to_date DIR TOOL FINGERPRINT BINARY...
up_to_date() {
	local dir=$1 tool=$2 fp=$3
	shift 3
	((force == 0)) || return 1
	[[ -f "$dir/.stamp-$tool" && "$(cat "$dir/.stamp-$tool")" == "$fp" ]] || return 1
	local b
	for b in "$@"; do [[ -x "$dir/bin/$b" ]] || return 1; done
}

# staging_dir DIR: sets $staging to a scratch dir on the same file system as DIR/bin,
# removed on exit unless finish_build installed its files.
staging_dir() {
	mkdir -p "$1/bin"
	# Under the lock no other run builds into DIR: a staging dir left there was left by
	# a run that was killed.
	if ((locked)); then
		rm -rf "$1"/.staging.*
	fi
	staging=$(mktemp -d "$1/.staging.XXXXXX")
	scratch+=("$staging")
}

# install_files DIR TOOL FINGERPRINT STAGING: move freshly built files into
# DIR/bin, then record the fingerprint.
install_files() {
	local dir=$1 tool=$2 fp=$3 staging=$4 f
	rm -f "$dir/.stamp-$tool"
	for f in "$staging"/*; do
		chmod 0755 "$f"
		mv -f "$f" "$dir/bin/"
	done
	rmdir "$staging"
	echo "$fp" >"$dir/.stamp-$tool"
}

# begin_build LABEL DIR TOOL FINGERPRINT BINARY...: returns 1 (after saying so) when
# DIR already holds this build; otherwise sets $staging to a fresh scratch dir for the
# built files, which finish_build DIR TOOL FINGERPRINT then installs.
begin_build() {
	build_label=$1 build_start=$SECONDS
	local dir=$2 tool=$3 fp=$4
	shift 4
	if up_to_date "$dir" "$tool" "$fp" "$@"; then
		log "$build_label already built"
		return 1
	fi
	log "building $build_label ..."
	staging_dir "$dir"
}

finish_build() {
	install_files "$1" "$2" "$3" "$staging"
	log "built $build_label in $((SECONDS - build_start))s"
}

# build_go LABEL DIR TOOL WRAPPER LDFLAGS PACKAGE...: one go build into DIR/bin: a single
# package as the binary TOOL, several under their packages' last path elements.
build_go() {
	local label=$1 dir=$2 tool=$3 wrapper=$4 ldflags=$5 fp output names
	shift 5
	if (($# == 1)); then
		output=$tool names=("$tool")
	else
		output="" names=("${@##*/}")
	fi
	fp=$(fingerprint "$toolchain/$wrapper" "CGO_ENABLED=$CGO_ENABLED" "$ldflags" "$@")
	begin_build "$label" "$dir" "$tool" "$fp" "${names[@]}" || return 0
	(cd "$toolchain/$wrapper" && "$GO" build "${goflags[@]}" -ldflags "$ldflags" -o "$staging/$output" "$@")
	finish_build "$dir" "$tool" "$fp"
}

# expect_version BINARY EXPECTED ARGS...: the built binary reports what was pinned (its whole
# output read first: a reader that stops early could kill it with SIGPIPE).
expect_version() {
	local binary=$1 expected=$2 reported
	shift 2
	reported=$("$binary" "$@" 2>&1) || true
	grep -qF -- "$expected" <<<"$reported" || die "$binary does not report $expected: $reported"
}

# module_dir MODULE@VERSION: download a module (pinned by the current dir's
# go.sum) and print its directory in the module cache.
module_dir() {
	"$GO" mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

go_tools_main() {
	local mode=install arg l
	for arg in "$@"; do
		case "$arg" in
		--print-bin) mode=print ;;
		--force) force=1 ;;
		-h | --help)
			usage
			exit 0
			;;
		*)
			echo "$script: unknown argument: $arg (see --help)" >&2
			exit 2
			;;
		esac
	done

	if [[ $mode == print ]]; then
		for l in "${links[@]}"; do
			[[ -x "$combined/${l%%:*}" ]] || die "${l%%:*} is not installed in $combined; run toolchain/$script"
		done
		echo "$combined"
		exit 0
	fi

	if [[ -z ${GO:-} ]]; then
		if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
	fi
	command -v "$GO" >/dev/null 2>&1 || die "go not found (set GO=/path/to/go)"
	export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
	export GOWORK=off
	go_version=$("$GO" env GOVERSION)
	check_go_version

	trap remove_scratch EXIT
	# An interrupted build exits through the EXIT trap too.
	trap 'exit 130' INT
	trap 'exit 143' TERM

	mkdir -p "$tools"
	# Two runs of the same script (parallel test runs) build once.
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$tools/$lock_name"
		flock 9
		locked=1
	fi

	build_all

	# The combined bin dir: relative symlinks into the per-tool dirs.
	mkdir -p "$combined"
	for l in "${links[@]}"; do
		ln -sfn "../$(basename "${l#*:}")/bin/${l%%:*}" "$combined/${l%%:*}"
	done
	echo "$combined"
}
