#!/usr/bin/env bash
# Builds the S3 server a team's Pulumi state can live on (scripts/state-server.sh runs it;
# the shared-state tests use it), pinned, outside the clone, keyed by version:
#
#   versitygw    github.com/versity/versitygw v1.8.0 (toolchain/versitygw): an S3 API
#                  over a plain directory (its posix backend), each bucket a directory
#
# Usage:
#   toolchain/install-state-server.sh [--force]   build what is missing or out of date,
#                                               then print the bin dir
#   toolchain/install-state-server.sh --print-bin print the bin dir without building;
#                                               exit 1 if something is not built yet
#   toolchain/install-state-server.sh --help
#
# Output: stdout carries exactly one line, the absolute path of a bin dir holding
# versitygw (a symlink into its tool dir). Progress goes to stderr.
#
# Layout under ${JOURNAL_IAC_TOOLS:-$HOME/.cache/journal-iac/tools}:
#   versitygw-v1.8.0/bin/versitygw
#   bin-state-server-versitygw-v1.8.0/  the combined bin dir
# The tool dir has a .stamp-versitygw file with a fingerprint of the wrapper module, Go
# version and flags; it is rebuilt only when that changes (or with --force).
#
# Environment:
#   JOURNAL_IAC_TOOLS   install root (default $HOME/.cache/journal-iac/tools)
#   GO                  go command (default: go on PATH, else /usr/local/go/bin/go)
#   GOMODCACHE, GOCACHE, GOPROXY, GOTOOLCHAIN are honoured.
#
# Cold on 2 cores: about 70 seconds from empty Go caches; a rerun takes well under a
# second.
set -euo pipefail

VERSITYGW_VERSION=v1.8.0

# shellcheck source-path=SCRIPTDIR source=go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-tools.sh"

script=install-state-server.sh
# A lock of its own: building it never waits for another tool's build.
lock_name=.lock-state-server
dir_versitygw="$tools/versitygw-$VERSITYGW_VERSION"
combined="$tools/bin-state-server-versitygw-$VERSITYGW_VERSION"
modules=(versitygw)
links=("versitygw:$dir_versitygw")
export CGO_ENABLED=0

build_versitygw() {
	# The variable upstream's release build sets (its Makefile's VERSION); the build time
	# and commit are left empty: the module proxy does not carry them.
	build_go "versitygw $VERSITYGW_VERSION" "$dir_versitygw" versitygw versitygw \
		"-s -w -X main.Version=$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw
	expect_version "$dir_versitygw/bin/versitygw" "Version  : $VERSITYGW_VERSION" --version
}

build_all() {
	grep -qE "^\s*github\.com/versity/versitygw ${VERSITYGW_VERSION//./\\.}( |$)" "$toolchain/versitygw/go.mod" ||
		die "toolchain/versitygw/go.mod does not require github.com/versity/versitygw $VERSITYGW_VERSION"
	build_versitygw
}

go_tools_main "$@"
