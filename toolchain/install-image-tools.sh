#!/usr/bin/env bash
# Builds what `make images` needs beside Debian's buildah and skopeo (localcluster/release.py),
# pinned, outside the clone, keyed by version:
#
#   syft    github.com/anchore/syft v1.57.2 (toolchain/syft): the SBOM (SPDX JSON) of
#             each image pushed, read from the OCI layout that is pushed
#
# Usage:
#   toolchain/install-image-tools.sh [--force]   build what is missing or out of date,
#                                              then print the bin dir
#   toolchain/install-image-tools.sh --print-bin print the bin dir without building;
#                                              exit 1 if something is not built yet
#   toolchain/install-image-tools.sh --help
#
# Output: stdout carries exactly one line, the absolute path of a bin dir holding syft
# (a symlink into its tool dir). Progress goes to stderr.
#
# Layout under ${JOURNAL_IAC_TOOLS:-$HOME/.cache/journal-iac/tools}:
#   syft-v1.57.2/bin/syft
#   bin-image-tools-syft-v1.57.2/  the combined bin dir
# The tool dir has a .stamp-syft file with a fingerprint of the wrapper module, Go
# version and flags; it is rebuilt only when that changes (or with --force).
#
# Environment:
#   JOURNAL_IAC_TOOLS   install root (default $HOME/.cache/journal-iac/tools)
#   GO                  go command (default: go on PATH, else /usr/local/go/bin/go)
#   GOMODCACHE, GOCACHE, GOPROXY, GOTOOLCHAIN are honoured.
#
# Cold on 2 cores: about 3 minutes from empty Go caches; a rerun takes well under a
# second.
set -euo pipefail

SYFT_VERSION=v1.57.2

# shellcheck source-path=SCRIPTDIR source=go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-tools.sh"

script=install-image-tools.sh
# A lock of its own: building it never waits for another tool's build.
lock_name=.lock-image-tools
dir_syft="$tools/syft-$SYFT_VERSION"
combined="$tools/bin-image-tools-syft-$SYFT_VERSION"
modules=(syft)
links=("syft:$dir_syft")
export CGO_ENABLED=0

build_syft() {
	# The variable upstream's release build sets; its build date and commit are left
	# empty: the module proxy does not carry them.
	build_go "syft $SYFT_VERSION" "$dir_syft" syft syft \
		"-s -w -X main.version=${SYFT_VERSION#v}" github.com/anchore/syft/cmd/syft
	expect_version "$dir_syft/bin/syft" "Version:       ${SYFT_VERSION#v}" version
}

build_all() {
	grep -qE "^\s*github\.com/anchore/syft ${SYFT_VERSION//./\\.}( |$)" "$toolchain/syft/go.mod" ||
		die "toolchain/syft/go.mod does not require github.com/anchore/syft $SYFT_VERSION"
	build_syft
}

go_tools_main "$@"
