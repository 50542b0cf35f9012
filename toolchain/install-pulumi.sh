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
#                                   the v4.25.0 commit), with upstream's fix of its
#                                   StatefulSet wait applied (toolchain/kubernetes/
#                                   statefulset-observed-generation.patch)
#   pulumi-resource-random        provider for the pulumi-random 4.21.4 SDK
#                                   (toolchain/random: terraform-provider-random
#                                   3.9.0 through pulumi-terraform-bridge v3.137.0)
#
# Usage:
#   toolchain/install-pulumi.sh [--force]   build what is missing or out of date,
#                                         then print the bin dir
#   toolchain/install-pulumi.sh --print-bin print the bin dir without building;
#                                         exit 1 if something is not built yet
#   toolchain/install-pulumi.sh --help
#
# Output: stdout carries exactly one line, the absolute path of a bin dir that
# holds all five executables (symlinks into the per-tool dirs). Progress goes
# to stderr. Typical use (the separate assignment keeps a failure visible to
# set -e, which `export PATH="$(...):$PATH"` would hide):
#
#   pulumi_bin=$(toolchain/install-pulumi.sh)
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

# shellcheck source-path=SCRIPTDIR source=go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-tools.sh"

script=install-pulumi.sh
lock_name=.lock
dir_pulumi="$tools/pulumi-$PULUMI_VERSION"
dir_python=$dir_pulumi # bundled with the CLI, see build_language_python
dir_kubernetes="$tools/pulumi-resource-kubernetes-v$KUBERNETES_VERSION"
dir_random="$tools/pulumi-resource-random-v$RANDOM_VERSION"
combined="$tools/bin-pulumi-${PULUMI_VERSION}_kubernetes-v${KUBERNETES_VERSION}_random-v${RANDOM_VERSION}"
modules=(pulumi language-python kubernetes random)
links=(
	"pulumi:$dir_pulumi"
	"pulumi-language-python:$dir_python"
	"pulumi-language-python-exec:$dir_python"
	"pulumi-resource-kubernetes:$dir_kubernetes"
	"pulumi-resource-random:$dir_random"
)

build_pulumi() {
	local fp
	local ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION"
	fp=$(fingerprint "$toolchain/pulumi" "$ldflags")
	begin_build "pulumi $PULUMI_VERSION" "$dir_pulumi" pulumi "$fp" pulumi || return 0
	(cd "$toolchain/pulumi" && "$GO" build "${goflags[@]}" -ldflags "$ldflags" \
		-o "$staging/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
	[[ "$("$staging/pulumi" version)" == "$PULUMI_VERSION" ]] ||
		die "the built pulumi does not report $PULUMI_VERSION: $("$staging/pulumi" version)"
	finish_build "$dir_pulumi" pulumi "$fp"
}

# The language host goes next to the CLI, where the CLI looks for bundled
# language plugins (elsewhere on PATH it works too, with a warning on every run).
build_language_python() {
	local fp sdk
	local ldflags="-s -w -X main.Version=$LANGUAGE_PYTHON_VERSION"
	fp=$(fingerprint "$toolchain/language-python" "$ldflags")
	begin_build "pulumi-language-python $LANGUAGE_PYTHON_VERSION" "$dir_python" language-python "$fp" pulumi-language-python pulumi-language-python-exec || return 0
	(cd "$toolchain/language-python" && "$GO" build "${goflags[@]}" -ldflags "$ldflags" \
		-o "$staging/pulumi-language-python" .)
	# The exec script ships in the sdk/v3 module the host is built against.
	sdk=$(cd "$toolchain/language-python" && module_dir "github.com/pulumi/pulumi/sdk/v3@$LANGUAGE_PYTHON_VERSION")
	[[ -f "$sdk/python/cmd/pulumi-language-python-exec" ]] ||
		die "pulumi-language-python-exec not found in $sdk/python/cmd"
	cp "$sdk/python/cmd/pulumi-language-python-exec" "$staging/"
	finish_build "$dir_python" language-python "$fp"
}

build_kubernetes() {
	local fp work src cmd
	local ldflags="-s -w -X $KUBERNETES_MODULE/pkg/version.Version=$KUBERNETES_VERSION"
	fp=$(fingerprint "$toolchain/kubernetes" "$KUBERNETES_MODULE@$KUBERNETES_MODULE_VERSION" "$ldflags")
	begin_build "pulumi-resource-kubernetes v$KUBERNETES_VERSION" "$dir_kubernetes" kubernetes "$fp" pulumi-resource-kubernetes || return 0
	scratch_dir journal-iac-kubernetes
	work=$scratch_path
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
	# The StatefulSet wait of 4.25 can report an update complete before the controller
	# has seen it (upstream issue 3329); upstream's fix (pull request 4094, in 4.26, which
	# the module proxy does not serve) is applied to a copy of the module, verified by
	# go.sum when it was downloaded.
	cp -R "$src" "$work/provider"
	chmod -R u+w "$work"
	patch --quiet -p1 -d "$work/provider" <"$toolchain/kubernetes/statefulset-observed-generation.patch"
	(cd "$work" && "$GO" mod edit -replace "$KUBERNETES_MODULE=./provider")
	(cd "$cmd" && VERSION=$KUBERNETES_VERSION "$GO" run "${goflags[@]}" ./generate.go)
	rm "$cmd/generate.go"
	(cd "$work" && "$GO" build "${goflags[@]}" -ldflags "$ldflags" \
		-o "$staging/pulumi-resource-kubernetes" ./cmd/pulumi-resource-kubernetes)
	rm -rf "$work"
	finish_build "$dir_kubernetes" kubernetes "$fp"
}

build_random() {
	local fp work
	local ldflags="-s -w -X journal-iac/toolchain/random/provider.Version=$RANDOM_VERSION"
	fp=$(fingerprint "$toolchain/random" "$ldflags")
	begin_build "pulumi-resource-random v$RANDOM_VERSION" "$dir_random" random "$fp" pulumi-resource-random || return 0
	scratch_dir journal-iac-random
	work=$scratch_path
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
	finish_build "$dir_random" random "$fp"
}

build_all() {
	build_pulumi
	build_language_python
	build_kubernetes
	build_random
}

go_tools_main "$@"
