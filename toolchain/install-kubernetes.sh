#!/usr/bin/env bash
# Builds what a one-node Kubernetes needs from the Go module proxy, with the versions
# pinned by the wrapper modules under toolchain/, and installs it outside the clone,
# keyed by version. tests/integration/test_apiserver.py runs the stacks' objects against the API
# server alone; scripts/cluster.sh runs the whole cluster.
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy,
#   kubectl          k8s.io/kubernetes v1.34.4 (toolchain/k8s: the staging modules
#                      k8s.io/* replaced by their published v0.34.4 releases)
#   etcd             go.etcd.io/etcd/server/v3 v3.6.5 (toolchain/etcd), the etcd
#                      that Kubernetes 1.34 is tested with
#   coredns          github.com/coredns/coredns v1.12.1 (toolchain/coredns), the
#                      cluster DNS that Kubernetes 1.34 ships with
#   kube-router      github.com/cloudnativelabs/kube-router/v2 v2.1.0
#                      (toolchain/kube-router), NetworkPolicy enforcement only
#   traefik          github.com/traefik/traefik/v3 v3.6.12 (toolchain/traefik), the
#                      ingress controller
#   pause            build/pause/linux/pause.c of k8s.io/kubernetes v1.34.4, linked
#                      statically with the host's C compiler (gcc, libc6-dev)
#   cert-manager-crds  deploy/crds/*.yaml of github.com/cert-manager/cert-manager
#                      v1.21.2 (pinned by toolchain/cert-manager), copied from the module
#   cert-manager-controller, cert-manager-webhook, cert-manager-acmesolver
#                    our own small commands in toolchain/cert-manager on the library
#                      packages of that module (upstream's cmd/ modules are not served by
#                      the module proxy): the control loops for ACME issuers and
#                      certificates, the admission webhook, the HTTP-01 solver
#   pebble           github.com/letsencrypt/pebble/v2 v2.10.3 (toolchain/pebble), the
#                      ACME server of the local cluster
#   pebble-test-ca   test/certs/pebble.minica{,.key}.pem of the same module: Pebble's
#                      published test CA (its key is public by design), which signs the
#                      local ACME server's own HTTPS certificate
#   kwok, kwok-stages
#                    sigs.k8s.io/kwok v0.8.0 (toolchain/kwok), the simulated kubelets of the
#                      fleet tests, and the stages of its module's kustomize/stage it runs
#                      (node initialize and heartbeat with lease, pod ready and complete,
#                      volume provision, bind and delete: the "fast" set; the tests bring
#                      their own pod deletion, see tests/support/kwok_kubelet_stages.yaml)
#   gateway-api-crds config/crd/standard of sigs.k8s.io/gateway-api v1.4.0, the Gateway
#                      API release Traefik v3.6.12 implements (pinned by toolchain/traefik)
#
# Usage:
#   toolchain/install-kubernetes.sh [--force]   build what is missing or out of date,
#                                             then print the bin dir
#   toolchain/install-kubernetes.sh --print-bin print the bin dir without building;
#                                             exit 1 if something is not built yet
#   toolchain/install-kubernetes.sh --help
#
# Output: stdout carries exactly one line, the absolute path of a bin dir that holds
# every binary above and the cert-manager-crds dir (symlinks into the per-tool dirs).
# Progress goes to stderr:
#
#   kube_bin=$(toolchain/install-kubernetes.sh)
#   "$kube_bin/kube-apiserver" --version
#
# Layout under ${JOURNAL_IAC_TOOLS:-$HOME/.cache/journal-iac/tools}:
#   kubernetes-v1.34.4/bin/{kube-apiserver,kubelet,...}
#   etcd-v3.6.5/bin/etcd, coredns-v1.12.1/bin/coredns, ...
#   bin-kubernetes-v1.34.4/     the combined bin dir printed on stdout
# Each tool dir has a .stamp-<tool> file with a fingerprint of the wrapper module, Go
# version, versions and flags; a tool is rebuilt only when that fingerprint changes (or
# with --force).
#
# Environment:
#   JOURNAL_IAC_TOOLS   install root (default $HOME/.cache/journal-iac/tools)
#   GO                  go command (default: go on PATH, else /usr/local/go/bin/go)
#   GOMODCACHE, GOCACHE, GOPROXY, GOTOOLCHAIN are honoured (GOTOOLCHAIN defaults
#   to local: the wrappers need Go >= 1.25, Traefik's minimum).
#
# Builds use -mod=readonly with the committed go.sum files, -trimpath, pinned versions
# only and CGO_ENABLED=0 (static binaries, as the projects release them). Version
# variables are set as upstream's release builds set them (the git commit is left
# empty: the module proxy does not carry it). Cold, from empty Go caches on 2 cores:
# about 5 minutes for etcd and the API server, 6 more for the other Kubernetes
# binaries, 3 for CoreDNS, 2 for kube-router and 7 for Traefik (which peaks near 3 GB
# of memory); a rerun with everything built takes well under a second.
set -euo pipefail

KUBERNETES_VERSION=v1.34.4
# The tag's commit time, as the module proxy reports it (go mod download -json
# k8s.io/kubernetes@v1.34.4, .info): the build date the binaries report.
KUBERNETES_BUILD_DATE=2026-02-10T12:53:36Z
ETCD_VERSION=v3.6.5
COREDNS_VERSION=v1.12.1
KUBE_ROUTER_VERSION=v2.1.0
KUBE_ROUTER_BUILD_DATE=2024-03-03T05:25:26Z
TRAEFIK_VERSION=v3.6.12
TRAEFIK_BUILD_DATE=2026-03-26T09:54:04Z
# build/pause/Makefile's TAG in k8s.io/kubernetes v1.34.4 (kubeadm's PauseVersion).
PAUSE_VERSION=3.10.1
CERT_MANAGER_VERSION=v1.21.2
PEBBLE_VERSION=v2.10.3
GATEWAY_API_VERSION=v1.4.0
KWOK_VERSION=v0.8.0

# shellcheck source-path=SCRIPTDIR source=go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-tools.sh"

script=install-kubernetes.sh
# A lock of its own: building these never waits for a Pulumi build.
lock_name=.lock-kubernetes
dir_kubernetes="$tools/kubernetes-$KUBERNETES_VERSION"
dir_etcd="$tools/etcd-$ETCD_VERSION"
dir_coredns="$tools/coredns-$COREDNS_VERSION"
dir_kube_router="$tools/kube-router-$KUBE_ROUTER_VERSION"
dir_traefik="$tools/traefik-$TRAEFIK_VERSION"
dir_pause="$tools/pause-$PAUSE_VERSION"
dir_cert_manager="$tools/cert-manager-$CERT_MANAGER_VERSION"
dir_pebble="$tools/pebble-$PEBBLE_VERSION"
dir_gateway_api="$tools/gateway-api-$GATEWAY_API_VERSION"
dir_kwok="$tools/kwok-$KWOK_VERSION"
combined="$tools/bin-kubernetes-$KUBERNETES_VERSION"
modules=(k8s etcd coredns kube-router traefik cert-manager pebble kwok)
cert_manager_commands=(controller webhook acmesolver)
kubernetes_commands=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
links=(
	"etcd:$dir_etcd"
	"coredns:$dir_coredns"
	"kube-router:$dir_kube_router"
	"traefik:$dir_traefik"
	"pause:$dir_pause"
	"cert-manager-crds:$dir_cert_manager"
	"pebble:$dir_pebble"
	"pebble-test-ca:$dir_pebble"
	"gateway-api-crds:$dir_gateway_api"
	"kwok:$dir_kwok"
	"kwok-stages:$dir_kwok"
)
for command in "${cert_manager_commands[@]}"; do links+=("cert-manager-$command:$dir_cert_manager"); done
for command in "${kubernetes_commands[@]}"; do links+=("$command:$dir_kubernetes"); done
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

build_etcd() {
	# etcd's version is a constant of go.etcd.io/etcd/api/v3/version; its build
	# script only adds the git SHA, which the module proxy does not carry.
	build_go "etcd $ETCD_VERSION" "$dir_etcd" etcd etcd "-s -w" go.etcd.io/etcd/server/v3
	expect_version "$dir_etcd/bin/etcd" "etcd Version: ${ETCD_VERSION#v}" --version
}

build_kubernetes() {
	build_go "Kubernetes $KUBERNETES_VERSION" "$dir_kubernetes" kubernetes k8s "$(kubernetes_ldflags)" \
		"${kubernetes_commands[@]/#/k8s.io/kubernetes/cmd/}"
	local command
	for command in "${kubernetes_commands[@]}"; do
		case $command in
		kubectl) expect_version "$dir_kubernetes/bin/$command" "Client Version: $KUBERNETES_VERSION" version --client ;;
		*) expect_version "$dir_kubernetes/bin/$command" "Kubernetes $KUBERNETES_VERSION" --version ;;
		esac
	done
}

build_coredns() {
	# CoreDNS's version is a constant (coremain.CoreVersion); its Makefile only adds the
	# git commit.
	build_go "CoreDNS $COREDNS_VERSION" "$dir_coredns" coredns coredns "-s -w" github.com/coredns/coredns
	expect_version "$dir_coredns/bin/coredns" "CoreDNS-${COREDNS_VERSION#v}" -version
}

build_kube_router() {
	local v=github.com/cloudnativelabs/kube-router/v2/pkg/version
	build_go "kube-router $KUBE_ROUTER_VERSION" "$dir_kube_router" kube-router kube-router \
		"-s -w -X $v.Version=$KUBE_ROUTER_VERSION -X $v.BuildDate=$KUBE_ROUTER_BUILD_DATE" \
		github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
	expect_version "$dir_kube_router/bin/kube-router" "$KUBE_ROUTER_VERSION" --version
}

build_traefik() {
	local v=github.com/traefik/traefik/v3/pkg/version
	build_go "Traefik $TRAEFIK_VERSION" "$dir_traefik" traefik traefik \
		"-s -w -X $v.Version=$TRAEFIK_VERSION -X $v.BuildDate=$TRAEFIK_BUILD_DATE" \
		github.com/traefik/traefik/v3/cmd/traefik
	expect_version "$dir_traefik/bin/traefik" "${TRAEFIK_VERSION#v}" version
}

# The pod sandbox's one process: the C source shipped in the Kubernetes module, built
# as upstream's build/pause/Makefile builds it.
build_pause() {
	local fp source
	command -v "${CC:-gcc}" >/dev/null || die "${CC:-gcc} not found: the pause binary needs a C compiler (apt-get install gcc libc6-dev)"
	fp=$(fingerprint "$toolchain/k8s" "$PAUSE_VERSION" "$("${CC:-gcc}" --version | head -n 1)")
	begin_build "pause $PAUSE_VERSION" "$dir_pause" pause "$fp" pause || return 0
	source=$(cd "$toolchain/k8s" && module_dir "k8s.io/kubernetes@$KUBERNETES_VERSION")/build/pause/linux/pause.c
	"${CC:-gcc}" -Os -Wall -Werror -static "-DVERSION=v$PAUSE_VERSION-$KUBERNETES_VERSION" -o "$staging/pause" "$source"
	finish_build "$dir_pause" pause "$fp"
	expect_version "$dir_pause/bin/pause" "v$PAUSE_VERSION" -v
}

build_cert_manager_crds() {
	local fp source
	fp=$(fingerprint "$toolchain/cert-manager" "$CERT_MANAGER_VERSION")
	begin_build "cert-manager CRDs $CERT_MANAGER_VERSION" "$dir_cert_manager" cert-manager-crds "$fp" cert-manager-crds || return 0
	source=$(cd "$toolchain/cert-manager" && module_dir "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION")/deploy/crds
	mkdir "$staging/cert-manager-crds"
	install -m 0644 "$source"/*.yaml "$staging/cert-manager-crds/"
	rm -rf "$dir_cert_manager/bin/cert-manager-crds"
	finish_build "$dir_cert_manager" cert-manager-crds "$fp"
}

# cert-manager's commands: one main package each in toolchain/cert-manager (see its
# go.mod), named as the binaries are.
build_cert_manager() {
	local command
	build_go "cert-manager $CERT_MANAGER_VERSION" "$dir_cert_manager" cert-manager cert-manager \
		"-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$CERT_MANAGER_VERSION" \
		"${cert_manager_commands[@]/#/./cert-manager-}"
	# They have no version flag (the controller sends its version in its user agent): each
	# must have been built from the pinned module.
	for command in "${cert_manager_commands[@]}"; do
		"$GO" version -m "$dir_cert_manager/bin/cert-manager-$command" |
			grep -qE "^\s+dep\s+github\.com/cert-manager/cert-manager\s+${CERT_MANAGER_VERSION//./\\.}\s" ||
			die "cert-manager-$command was not built from github.com/cert-manager/cert-manager $CERT_MANAGER_VERSION"
	done
}

build_pebble() {
	build_go "Pebble $PEBBLE_VERSION" "$dir_pebble" pebble pebble \
		"-s -w -X main.version=$PEBBLE_VERSION" github.com/letsencrypt/pebble/v2/cmd/pebble
	expect_version "$dir_pebble/bin/pebble" "Pebble version: $PEBBLE_VERSION" -version
	local fp source
	fp=$(fingerprint "$toolchain/pebble" "$PEBBLE_VERSION")
	begin_build "Pebble test CA $PEBBLE_VERSION" "$dir_pebble" pebble-test-ca "$fp" pebble-test-ca || return 0
	source=$(cd "$toolchain/pebble" && module_dir "github.com/letsencrypt/pebble/v2@$PEBBLE_VERSION")/test/certs
	mkdir "$staging/pebble-test-ca"
	install -m 0644 "$source/pebble.minica.pem" "$staging/pebble-test-ca/ca.crt"
	install -m 0644 "$source/pebble.minica.key.pem" "$staging/pebble-test-ca/ca.key"
	rm -rf "$dir_pebble/bin/pebble-test-ca"
	finish_build "$dir_pebble" pebble-test-ca "$fp"
}

kwok_stages=(
	node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
	pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml
	volume/fast/pvc-provision.yaml volume/fast/pv-bind.yaml volume/fast/pvc-delete.yaml volume/fast/pv-delete.yaml
	volume/fast/storage-class.yaml
)

build_kwok() {
	build_go "kwok $KWOK_VERSION" "$dir_kwok" kwok kwok "-s -w" sigs.k8s.io/kwok/cmd/kwok
	expect_version "$dir_kwok/bin/kwok" "kwok version $KWOK_VERSION" --version
	local fp source stage
	fp=$(fingerprint "$toolchain/kwok" "$KWOK_VERSION" "${kwok_stages[@]}")
	begin_build "kwok stages $KWOK_VERSION" "$dir_kwok" kwok-stages "$fp" kwok-stages || return 0
	source=$(cd "$toolchain/kwok" && module_dir "sigs.k8s.io/kwok@$KWOK_VERSION")/kustomize/stage
	mkdir "$staging/kwok-stages"
	for stage in "${kwok_stages[@]}"; do
		install -m 0644 "$source/$stage" "$staging/kwok-stages/${stage//\//-}"
	done
	rm -rf "$dir_kwok/bin/kwok-stages"
	finish_build "$dir_kwok" kwok-stages "$fp"
}

build_gateway_api_crds() {
	local fp source
	fp=$(fingerprint "$toolchain/traefik" "$GATEWAY_API_VERSION")
	begin_build "Gateway API CRDs $GATEWAY_API_VERSION" "$dir_gateway_api" gateway-api-crds "$fp" gateway-api-crds || return 0
	source=$(cd "$toolchain/traefik" && module_dir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")/config/crd/standard
	mkdir "$staging/gateway-api-crds"
	install -m 0644 "$source"/*.yaml "$staging/gateway-api-crds/"
	rm -rf "$dir_gateway_api/bin/gateway-api-crds"
	finish_build "$dir_gateway_api" gateway-api-crds "$fp"
}

# The versions above must be the ones the wrapper modules pin (the staging modules at
# v0.<minor>.<patch> of the same release).
check_pins() {
	local staging_version=v0.${KUBERNETES_VERSION#v1.} line
	grep -qE "^\s*k8s\.io/kubernetes $KUBERNETES_VERSION( |$)" "$toolchain/k8s/go.mod" ||
		die "toolchain/k8s/go.mod does not require k8s.io/kubernetes $KUBERNETES_VERSION"
	while read -r line; do
		[[ $line == *" $staging_version" ]] || die "toolchain/k8s/go.mod: '$line' is not $staging_version"
	done < <(grep -E '^\s*k8s\.io/[a-z-]+ => ' "$toolchain/k8s/go.mod")
	local pin
	for pin in "etcd go.etcd.io/etcd/server/v3 $ETCD_VERSION" \
		"coredns github.com/coredns/coredns $COREDNS_VERSION" \
		"kube-router github.com/cloudnativelabs/kube-router/v2 $KUBE_ROUTER_VERSION" \
		"traefik github.com/traefik/traefik/v3 $TRAEFIK_VERSION" \
		"cert-manager github.com/cert-manager/cert-manager $CERT_MANAGER_VERSION" \
		"pebble github.com/letsencrypt/pebble/v2 $PEBBLE_VERSION" \
		"traefik sigs.k8s.io/gateway-api $GATEWAY_API_VERSION" \
		"kwok sigs.k8s.io/kwok $KWOK_VERSION"; do
		read -r wrapper module version <<<"$pin"
		grep -qE "^(require)?\s*${module//./\\.} ${version//./\\.}( |$)" "$toolchain/$wrapper/go.mod" ||
			die "toolchain/$wrapper/go.mod does not require $module $version"
	done
}

build_all() {
	check_pins
	build_etcd
	build_kubernetes
	build_pause
	build_cert_manager_crds
	build_gateway_api_crds
	build_cert_manager
	build_pebble
	build_kwok
	build_coredns
	build_kube_router
	build_traefik
}

go_tools_main "$@"
