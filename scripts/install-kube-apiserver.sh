#!/usr/bin/env bash
# Builds a Kubernetes API server and its etcd from the Go module proxy, with the
# versions pinned by the wrapper modules under toolchain/, and installs them
# outside the clone, keyed by version. tests/test_apiserver.py runs the built
# objects of both stacks against them (no nodes, no kubelet: the API server's
# validation, defaulting and admission, Pod Security included).
#
#   kube-apiserver   k8s.io/kubernetes v1.34.4 (toolchain/kube-apiserver: the
#                      staging modules k8s.io/* replaced by their published
#                      v0.34.4 releases)
#   etcd             go.etcd.io/etcd/server/v3 v3.6.5 (toolchain/etcd), the etcd
#                      that Kubernetes 1.34 is tested with
#
# Usage:
#   scripts/install-kube-apiserver.sh [--force]   build what is missing or out
#                                                 of date, then print the bin dir
#   scripts/install-kube-apiserver.sh --print-bin print the bin dir without
#                                                 building; exit 1 if something
#                                                 is not built yet
#   scripts/install-kube-apiserver.sh --help
#
# Output: stdout carries exactly one line, the absolute path of a bin dir that
# holds kube-apiserver and etcd (symlinks into the per-tool dirs). Progress goes
# to stderr:
#
#   kube_bin=$(scripts/install-kube-apiserver.sh)
#   "$kube_bin/kube-apiserver" --version
#
# Layout under ${JOURNAL_IAC_TOOLS:-$HOME/.cache/journal-iac/tools}:
#   kube-apiserver-v1.34.4/bin/kube-apiserver
#   etcd-v3.6.5/bin/etcd
#   bin-kube-apiserver-v1.34.4_etcd-v3.6.5/   the combined bin dir printed on stdout
# Each tool dir has a .stamp-<tool> file with a fingerprint of the wrapper
# module, Go version, versions and flags; a tool is rebuilt only when that
# fingerprint changes (or with --force).
#
# Environment:
#   JOURNAL_IAC_TOOLS   install root (default $HOME/.cache/journal-iac/tools)
#   GO                  go command (default: go on PATH, else /usr/local/go/bin/go)
#   GOMODCACHE, GOCACHE, GOPROXY, GOTOOLCHAIN are honoured (GOTOOLCHAIN defaults
#   to local: the wrappers need Go >= 1.24).
#
# Builds use -mod=readonly with the committed go.sum files, -trimpath, pinned
# versions only and CGO_ENABLED=0 (static binaries, as both projects release
# them). The version variables are set as upstream's release builds set them,
# so kube-apiserver reports v1.34.4 (its build date is the tag's time from the
# module proxy; the git commit is left empty: the module proxy does not carry
# it). The result is bit-for-bit the same from any Go cache. A cold build takes
# about 5 minutes on 2 cores from empty Go caches (about 3 GB of them
# afterwards; about 3 minutes with what install-pulumi.sh leaves there); a
# rerun with everything built takes well under a second.
set -euo pipefail

KUBERNETES_VERSION=v1.34.4
# The tag's commit time, as the module proxy reports it (go mod download -json
# k8s.io/kubernetes@v1.34.4, .info): the build date the server reports.
KUBERNETES_BUILD_DATE=2026-02-10T12:53:36Z
ETCD_VERSION=v3.6.5

# shellcheck source-path=SCRIPTDIR source=lib/go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-tools.sh"

script=install-kube-apiserver.sh
# A lock of its own: building these never waits for a Pulumi build.
lock_name=.lock-kube-apiserver
dir_apiserver="$tools/kube-apiserver-$KUBERNETES_VERSION"
dir_etcd="$tools/etcd-$ETCD_VERSION"
combined="$tools/bin-kube-apiserver-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}"
modules=(kube-apiserver etcd)
links=(
	"kube-apiserver:$dir_apiserver"
	"etcd:$dir_etcd"
)
# Static binaries, as upstream releases them; also keeps the build independent
# of the host's C toolchain.
export CGO_ENABLED=0

# The -X flags of hack/lib/version.sh (kube::version::ldflags): each variable is
# set in both k8s.io/client-go/pkg/version and k8s.io/component-base/version.
kubernetes_ldflags() {
	local minor=${KUBERNETES_VERSION#v1.}
	minor=${minor%%.*}
	local key val flags="-s -w"
	for kv in "gitVersion=$KUBERNETES_VERSION" gitMajor=1 "gitMinor=$minor" \
		gitCommit= gitTreeState=clean "buildDate=$KUBERNETES_BUILD_DATE"; do
		key=${kv%%=*}
		val=${kv#*=}
		flags+=" -X k8s.io/client-go/pkg/version.$key=$val -X k8s.io/component-base/version.$key=$val"
	done
	echo "$flags"
}

build_apiserver() {
	local fp ldflags
	ldflags=$(kubernetes_ldflags)
	fp=$(fingerprint "$toolchain/kube-apiserver" "CGO_ENABLED=$CGO_ENABLED" "$ldflags")
	begin_build "kube-apiserver $KUBERNETES_VERSION" "$dir_apiserver" kube-apiserver "$fp" kube-apiserver || return 0
	(cd "$toolchain/kube-apiserver" && "$GO" build "${goflags[@]}" -ldflags "$ldflags" \
		-o "$staging/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
	"$staging/kube-apiserver" --version | grep -qx "Kubernetes $KUBERNETES_VERSION" ||
		die "the built kube-apiserver does not report $KUBERNETES_VERSION: $("$staging/kube-apiserver" --version)"
	finish_build "$dir_apiserver" kube-apiserver "$fp"
}

build_etcd() {
	local fp
	# etcd's version is a constant of go.etcd.io/etcd/api/v3/version; its build
	# script only adds the git SHA, which the module proxy does not carry.
	local ldflags="-s -w"
	fp=$(fingerprint "$toolchain/etcd" "CGO_ENABLED=$CGO_ENABLED" "$ldflags")
	begin_build "etcd $ETCD_VERSION" "$dir_etcd" etcd "$fp" etcd || return 0
	(cd "$toolchain/etcd" && "$GO" build "${goflags[@]}" -ldflags "$ldflags" \
		-o "$staging/etcd" go.etcd.io/etcd/server/v3)
	"$staging/etcd" --version | grep -qx "etcd Version: ${ETCD_VERSION#v}" ||
		die "the built etcd does not report ${ETCD_VERSION#v}: $("$staging/etcd" --version)"
	finish_build "$dir_etcd" etcd "$fp"
}

# The versions above must be the ones the wrapper modules pin (the staging
# modules at v0.<minor>.<patch> of the same release).
check_pins() {
	local staging_version=v0.${KUBERNETES_VERSION#v1.} line
	grep -qE "^\s*k8s\.io/kubernetes $KUBERNETES_VERSION( |$)" "$toolchain/kube-apiserver/go.mod" ||
		die "toolchain/kube-apiserver/go.mod does not require k8s.io/kubernetes $KUBERNETES_VERSION"
	while read -r line; do
		[[ $line == *" $staging_version" ]] || die "toolchain/kube-apiserver/go.mod: '$line' is not $staging_version"
	done < <(grep -E '^\s*k8s\.io/[a-z-]+ => ' "$toolchain/kube-apiserver/go.mod")
	grep -qE "^\s*go\.etcd\.io/etcd/server/v3 $ETCD_VERSION( |$)" "$toolchain/etcd/go.mod" ||
		die "toolchain/etcd/go.mod does not require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
}

build_all() {
	check_pins
	build_etcd
	build_apiserver
}

go_tools_main "$@"
