#!/usr/bin/env bash
# Installs the two independent scanners that tests/integration/test_scanners.py runs on both stacks'
# rendered manifests, pinned, outside the clone, keyed by version:
#
#   kube-score   github.com/zegl/kube-score v1.20.0 (toolchain/kube-score), built from
#                  the Go module proxy like every other Go tool of the project
#   checkov      checkov 3.3.30 from PyPI, in a virtualenv of its own: its ~95
#                  dependencies are pinned by toolchain/checkov/constraints.txt and never
#                  meet the project's pins in constraints.txt
#
# Usage:
#   toolchain/install-scanners.sh [--force]   install what is missing or out of date,
#                                           then print the bin dir
#   toolchain/install-scanners.sh --print-bin print the bin dir without installing;
#                                           exit 1 if something is not installed yet
#   toolchain/install-scanners.sh --help
#
# Output: stdout carries exactly one line, the absolute path of a bin dir holding
# kube-score and checkov (symlinks into the per-tool dirs). Progress goes to stderr.
#
# Layout under ${JOURNAL_IAC_TOOLS:-$HOME/.cache/journal-iac/tools}:
#   kube-score-v1.20.0/bin/kube-score
#   checkov-3.3.30/venv/              the virtualenv; bin/checkov links into it
#   bin-scanners-kube-score-v1.20.0_checkov-3.3.30/   the combined bin dir
# Each tool dir has a .stamp-<tool> file with a fingerprint of what decides it (the
# wrapper module or the constraints, Go or Python version, flags); a tool is installed
# again only when that fingerprint changes (or with --force).
#
# Environment:
#   JOURNAL_IAC_TOOLS   install root (default $HOME/.cache/journal-iac/tools)
#   GO                  go command (default: go on PATH, else /usr/local/go/bin/go)
#   PYTHON              Python for checkov's virtualenv (default python3)
#   GOMODCACHE, GOCACHE, GOPROXY, GOTOOLCHAIN are honoured, and pip's own variables.
#
# Cold on 2 cores: kube-score in about 75 seconds from empty Go caches (mostly
# downloading), checkov in about 50 with pip's cache warm; a rerun with both installed
# takes 0.4 seconds.
set -euo pipefail

KUBE_SCORE_VERSION=v1.20.0
CHECKOV_VERSION=3.3.30

# shellcheck source-path=SCRIPTDIR source=go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-tools.sh"

script=install-scanners.sh
# A lock of its own: installing the scanners never waits for a Kubernetes or Pulumi build.
lock_name=.lock-scanners
dir_kube_score="$tools/kube-score-$KUBE_SCORE_VERSION"
dir_checkov="$tools/checkov-$CHECKOV_VERSION"
combined="$tools/bin-scanners-kube-score-${KUBE_SCORE_VERSION}_checkov-$CHECKOV_VERSION"
modules=(kube-score)
links=(
	"kube-score:$dir_kube_score"
	"checkov:$dir_checkov"
)
export CGO_ENABLED=0

build_kube_score() {
	# The variables upstream's release build sets (its .goreleaser.yml); the commit and
	# date are left as the source has them: the module proxy does not carry them.
	build_go "kube-score $KUBE_SCORE_VERSION" "$dir_kube_score" kube-score kube-score \
		"-s -w -X main.version=${KUBE_SCORE_VERSION#v}" github.com/zegl/kube-score/cmd/kube-score
	"$dir_kube_score/bin/kube-score" version | grep -qF "${KUBE_SCORE_VERSION#v}" ||
		die "kube-score does not report ${KUBE_SCORE_VERSION#v}"
}

# A virtualenv records its own absolute path, so it is made where it stays: the old
# one goes first, and the stamp is written only once the new one works.
install_checkov() {
	local python=${PYTHON:-python3} fp
	fp=$( {
		"$python" --version
		echo "$CHECKOV_VERSION"
		cat "$toolchain/checkov/constraints.txt"
	} | sha256sum | cut -d' ' -f1)
	begin_build "checkov $CHECKOV_VERSION" "$dir_checkov" checkov "$fp" checkov || return 0
	rm -rf "$dir_checkov/venv"
	"$python" -m venv "$dir_checkov/venv"
	"$dir_checkov/venv/bin/pip" install --quiet --disable-pip-version-check \
		"checkov==$CHECKOV_VERSION" -c "$toolchain/checkov/constraints.txt"
	ln -s ../venv/bin/checkov "$staging/checkov"
	finish_build "$dir_checkov" checkov "$fp"
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true "$dir_checkov/bin/checkov" --version | grep -qxF "$CHECKOV_VERSION" ||
		die "checkov does not report $CHECKOV_VERSION"
}

build_all() {
	grep -qE "^\s*github\.com/zegl/kube-score ${KUBE_SCORE_VERSION//./\\.}( |$)" "$toolchain/kube-score/go.mod" ||
		die "toolchain/kube-score/go.mod does not require github.com/zegl/kube-score $KUBE_SCORE_VERSION"
	build_kube_score
	install_checkov
}

go_tools_main "$@"
