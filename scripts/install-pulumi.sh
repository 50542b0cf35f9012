#!/usr/bin/env bash
# Builds the Pulumi toolchain that journal-iac needs from the Go module proxy,
# with the versions pinned by the wrapper modules under toolchain/, and installs
# it outside the clone, keyed by version:
#
#   pulumi                        CLI, github.com/pulumi/pulumi/pkg/v3 v3.274.1
#   pulumi-language-python        Python language host (toolchain/language-python,
#   pulumi-language-python-exec     built against sdk/v3 v3.274.1; the exec script
#                                   is the one shipped in sdk/v3 v3.274.1)
#   pulumi-resource-kubernetes    provider 4.25.0 (pulumi-kubernetes/provider/v4 at
#                                   the v4.25.0 commit)
#   pulumi-resource-random        provider for the pulumi-random 4.21.4 SDK
#                                   (toolchain/random: terraform-provider-random
#                                   3.9.0 through pulumi-terraform-bridge v3.137.0)
#
# Usage:
#   scripts/install-pulumi.sh [--force]   build what is missing or out of date,
#                                         then print the bin dir
#   scripts/install-pulumi.sh --print-bin print the bin dir without building;
#                                         exit 1 if something is not built yet
#   scripts/install-pulumi.sh --help
#
# Output: stdout carries exactly one line, the absolute path of a bin dir that
# holds all five executables (symlinks into the per-tool dirs). Progress goes
# to stderr. Typical use (the separate assignment keeps a failure visible to
# set -e, which `export PATH="$(...):$PATH"` would hide):
#
#   pulumi_bin=$(scripts/install-pulumi.sh)
#   export PATH="$pulumi_bin:$PATH"
#
# Layout under ${JOURNAL_IAC_TOOLS:-$HOME/.cache/journal-iac/tools}:
#   pulumi-v3.274.1/bin/                      pulumi and the Python language host
#                                             (next to the CLI, where it looks for
#                                             bundled language plugins)
#   pulumi-resource-kubernetes-v4.25.0/bin/
#   pulumi-resource-random-v4.21.4/bin/
#   bin-pulumi-v3.274.1_kubernetes-v4.25.0_random-v4.21.4/
#                                             the combined bin dir printed on stdout
# Each tool dir has a .stamp-<tool> file with a fingerprint of the wrapper
# module, Go version, versions and flags; a tool is rebuilt only when that
# fingerprint changes (or with --force).
#
# Environment:
#   JOURNAL_IAC_TOOLS   install root (default $HOME/.cache/journal-iac/tools)
#   GO                  go command (default: go on PATH, else /usr/local/go/bin/go)
#   GOMODCACHE, GOCACHE, GOPROXY, GOTOOLCHAIN are honoured (GOTOOLCHAIN defaults
#   to local: the wrappers need Go >= 1.26.6).
#
# Builds use -mod=readonly with the committed go.sum files, -trimpath and
# pinned versions only. Cold builds take several minutes each on 2 cores
# (the Go build cache is shared, so later builds are faster); a rerun with
# everything built takes about a second.
set -euo pipefail

PULUMI_VERSION=v3.274.1
LANGUAGE_PYTHON_VERSION=v3.274.1
KUBERNETES_VERSION=4.25.0
KUBERNETES_MODULE=github.com/pulumi/pulumi-kubernetes/provider/v4
KUBERNETES_MODULE_VERSION=v4.0.0-20260115033456-f47bc2d6f199
RANDOM_VERSION=4.21.4

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

mode=install
force=0
for arg in "$@"; do
	case "$arg" in
	--print-bin) mode=print ;;
	--force) force=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "install-pulumi.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
	esac
done

log() { echo "install-pulumi.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
toolchain="$repo/toolchain"
tools=${JOURNAL_IAC_TOOLS:-$HOME/.cache/journal-iac/tools}

dir_pulumi="$tools/pulumi-$PULUMI_VERSION"
dir_python=$dir_pulumi # bundled with the CLI, see build_language_python
dir_kubernetes="$tools/pulumi-resource-kubernetes-v$KUBERNETES_VERSION"
dir_random="$tools/pulumi-resource-random-v$RANDOM_VERSION"
combined="$tools/bin-pulumi-${PULUMI_VERSION}_kubernetes-v${KUBERNETES_VERSION}_random-v${RANDOM_VERSION}"

# tool name -> dir holding bin/<name>
links=(
	"pulumi:$dir_pulumi"
	"pulumi-language-python:$dir_python"
	"pulumi-language-python-exec:$dir_python"
	"pulumi-resource-kubernetes:$dir_kubernetes"
	"pulumi-resource-random:$dir_random"
)

if [[ $mode == print ]]; then
	for l in "${links[@]}"; do
		[[ -x "$combined/${l%%:*}" ]] || die "${l%%:*} is not installed in $combined; run scripts/install-pulumi.sh"
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
# Flags for every go build/run below; GOFLAGS from the environment still applies.
goflags=(-mod=readonly -trimpath -buildvcs=false)
go_version=$("$GO" env GOVERSION)

mkdir -p "$tools"
if command -v flock >/dev/null 2>&1; then
	exec 9>"$tools/.lock"
	flock 9
fi

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

# staging_dir DIR: a scratch dir on the same file system as DIR/bin.
staging_dir() {
	mkdir -p "$1/bin"
	mktemp -d "$1/.staging.XXXXXX"
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

# module_dir MODULE@VERSION: download a module (pinned by the current dir's
# go.sum) and print its directory in the module cache.
module_dir() {
	"$GO" mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

build_pulumi() {
	local name="pulumi $PULUMI_VERSION" fp staging start=$SECONDS
	local ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION"
	fp=$(fingerprint "$toolchain/pulumi" "$ldflags")
	if up_to_date "$dir_pulumi" pulumi "$fp" pulumi; then
		log "$name already built"
		return
	fi
	log "building $name ..."
	staging=$(staging_dir "$dir_pulumi")
	(cd "$toolchain/pulumi" && "$GO" build "${goflags[@]}" -ldflags "$ldflags" \
		-o "$staging/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
	install_files "$dir_pulumi" pulumi "$fp" "$staging"
	log "built $name in $((SECONDS - start))s"
}

# The language host goes next to the CLI, where the CLI looks for bundled
# language plugins (elsewhere on PATH it works too, with a warning on every run).
build_language_python() {
	local name="pulumi-language-python $LANGUAGE_PYTHON_VERSION" fp staging sdk start=$SECONDS
	local ldflags="-s -w -X main.Version=$LANGUAGE_PYTHON_VERSION"
	fp=$(fingerprint "$toolchain/language-python" "$ldflags")
	if up_to_date "$dir_python" language-python "$fp" pulumi-language-python pulumi-language-python-exec; then
		log "$name already built"
		return
	fi
	log "building $name ..."
	staging=$(staging_dir "$dir_python")
	(cd "$toolchain/language-python" && "$GO" build "${goflags[@]}" -ldflags "$ldflags" \
		-o "$staging/pulumi-language-python" .)
	# The exec script ships in the sdk/v3 module the host is built against.
	sdk=$(cd "$toolchain/language-python" && module_dir "github.com/pulumi/pulumi/sdk/v3@$LANGUAGE_PYTHON_VERSION")
	[[ -f "$sdk/python/cmd/pulumi-language-python-exec" ]] ||
		die "pulumi-language-python-exec not found in $sdk/python/cmd"
	cp "$sdk/python/cmd/pulumi-language-python-exec" "$staging/"
	install_files "$dir_python" language-python "$fp" "$staging"
	log "built $name in $((SECONDS - start))s"
}

build_kubernetes() {
	local name="pulumi-resource-kubernetes v$KUBERNETES_VERSION" fp staging work src cmd start=$SECONDS
	local ldflags="-s -w -X $KUBERNETES_MODULE/pkg/version.Version=$KUBERNETES_VERSION"
	fp=$(fingerprint "$toolchain/kubernetes" "$KUBERNETES_MODULE@$KUBERNETES_MODULE_VERSION" "$ldflags")
	if up_to_date "$dir_kubernetes" kubernetes "$fp" pulumi-resource-kubernetes; then
		log "$name already built"
		return
	fi
	log "building $name ..."
	staging=$(staging_dir "$dir_kubernetes")
	work=$(mktemp -d "${TMPDIR:-/tmp}/journal-iac-kubernetes.XXXXXX")
	# The provider's main package embeds schema-embed.json and
	# terraform-mapping-embed.json, which upstream generates (go:generate runs
	# generate.go) from the committed schema.json and terraform-mapping.json and
	# does not ship. Copy the package into a copy of the wrapper module, run the
	# generator there with the release version, and build it there.
	src=$(cd "$toolchain/kubernetes" && module_dir "$KUBERNETES_MODULE@$KUBERNETES_MODULE_VERSION")
	[[ -d "$src/cmd/pulumi-resource-kubernetes" ]] || die "provider module not found in the module cache"
	cp "$toolchain/kubernetes/go.mod" "$toolchain/kubernetes/go.sum" "$work/"
	cmd="$work/cmd/pulumi-resource-kubernetes"
	mkdir -p "$cmd"
	cp "$src"/cmd/pulumi-resource-kubernetes/*.go "$src"/cmd/pulumi-resource-kubernetes/*.json "$cmd/"
	chmod -R u+w "$work"
	(cd "$cmd" && VERSION=$KUBERNETES_VERSION "$GO" run "${goflags[@]}" ./generate.go)
	rm "$cmd/generate.go"
	(cd "$work" && "$GO" build "${goflags[@]}" -ldflags "$ldflags" \
		-o "$staging/pulumi-resource-kubernetes" ./cmd/pulumi-resource-kubernetes)
	rm -rf "$work"
	install_files "$dir_kubernetes" kubernetes "$fp" "$staging"
	log "built $name in $((SECONDS - start))s"
}

build_random() {
	local name="pulumi-resource-random v$RANDOM_VERSION" fp staging work start=$SECONDS
	local ldflags="-s -w -X journal-iac/toolchain/random/provider.Version=$RANDOM_VERSION"
	fp=$(fingerprint "$toolchain/random" "$ldflags")
	if up_to_date "$dir_random" random "$fp" pulumi-resource-random; then
		log "$name already built"
		return
	fi
	log "building $name ..."
	staging=$(staging_dir "$dir_random")
	work=$(mktemp -d "${TMPDIR:-/tmp}/journal-iac-random.XXXXXX")
	# schema.json and bridge-metadata.json, which the provider embeds, are
	# generated by the bridge's tfgen from the same provider description.
	cp -R "$toolchain/random/." "$work/"
	(cd "$work" && "$GO" build "${goflags[@]}" -ldflags "$ldflags" \
		-o "$work/pulumi-tfgen-random" ./cmd/pulumi-tfgen-random)
	(cd "$work" && ./pulumi-tfgen-random schema --skip-docs --skip-examples \
		--out "$work/cmd/pulumi-resource-random" >/dev/null)
	(cd "$work" && "$GO" build "${goflags[@]}" -ldflags "$ldflags" \
		-o "$staging/pulumi-resource-random" ./cmd/pulumi-resource-random)
	rm -rf "$work"
	install_files "$dir_random" random "$fp" "$staging"
	log "built $name in $((SECONDS - start))s"
}

build_pulumi
build_language_python
build_kubernetes
build_random

# The combined bin dir: relative symlinks into the per-tool dirs.
mkdir -p "$combined"
for l in "${links[@]}"; do
	tool=${l%%:*}
	ln -sfn "../$(basename "${l#*:}")/bin/$tool" "$combined/$tool"
done
"$combined/pulumi" version >/dev/null || die "$combined/pulumi does not run"
echo "$combined"
