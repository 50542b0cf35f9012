#!/usr/bin/env bash
# Builds the load generator of devtools/benchmark-load.py (`make bench`), pinned, outside
# the clone, keyed by version:
#
#   vegeta       github.com/tsenart/vegeta/v12 v12.13.0 (toolchain/vegeta): requests at
#                  a constant rate, each one's latency and status recorded, so a rate
#                  the server cannot hold shows as latency and errors, not as a lower rate
#
# Usage:
#   toolchain/install-loadgen.sh [--force]   build what is missing or out of date, then
#                                          print the bin dir
#   toolchain/install-loadgen.sh --print-bin print the bin dir without building; exit 1
#                                          if something is not built yet
#   toolchain/install-loadgen.sh --help
#
# Output: stdout carries exactly one line, the absolute path of a bin dir holding vegeta
# (a symlink into its tool dir). Progress goes to stderr.
#
# Layout under ${JOURNAL_IAC_TOOLS:-$HOME/.cache/journal-iac/tools}:
#   vegeta-v12.13.0/bin/vegeta
#   bin-loadgen-vegeta-v12.13.0/      the combined bin dir
# The tool dir has a .stamp-vegeta file with a fingerprint of the wrapper module, Go
# version and flags; it is rebuilt only when that changes (or with --force).
#
# Environment:
#   JOURNAL_IAC_TOOLS   install root (default $HOME/.cache/journal-iac/tools)
#   GO                  go command (default: go on PATH, else /usr/local/go/bin/go)
#   GOMODCACHE, GOCACHE, GOPROXY, GOTOOLCHAIN are honoured.
#
# Cold on 2 cores: about 40 seconds from empty Go caches; a rerun takes well under a
# second.
set -euo pipefail

VEGETA_VERSION=v12.13.0

# shellcheck source-path=SCRIPTDIR source=go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-tools.sh"

script=install-loadgen.sh
# A lock of its own: building it never waits for another tool's build.
lock_name=.lock-loadgen
dir_vegeta="$tools/vegeta-$VEGETA_VERSION"
combined="$tools/bin-loadgen-vegeta-$VEGETA_VERSION"
modules=(vegeta)
links=("vegeta:$dir_vegeta")
export CGO_ENABLED=0

build_vegeta() {
	# The variables upstream's release build sets (its Makefile); the commit and date are
	# left empty: the module proxy does not carry them.
	build_go "vegeta $VEGETA_VERSION" "$dir_vegeta" vegeta vegeta \
		"-s -w -X main.Version=$VEGETA_VERSION" github.com/tsenart/vegeta/v12
	"$dir_vegeta/bin/vegeta" -version | grep -qxF "Version: $VEGETA_VERSION" ||
		die "vegeta does not report $VEGETA_VERSION"
}

build_all() {
	grep -qE "^\s*github\.com/tsenart/vegeta/v12 ${VEGETA_VERSION//./\\.}( |$)" "$toolchain/vegeta/go.mod" ||
		die "toolchain/vegeta/go.mod does not require github.com/tsenart/vegeta/v12 $VEGETA_VERSION"
	build_vegeta
}

go_tools_main "$@"
