# The entry points: `make up` (the journal on this machine), `make test` and `make
# preview` for a user, `make unit` for the fast loop while changing the program.
# Everything else here is what they set up.

STACK ?= dev
PYTHON ?= python3
VENV := venv
PYTEST := $(VENV)/bin/python -m pytest

.PHONY: up down preview test unit mutants render bench images everything setup pulumi-tools kubernetes-tools scanners state-server image-tools load-tools cluster-images system-packages

# As root: builds what is missing (saying which step, how far), starts the local cluster
# unless one runs, deploys the dev stack, prints its URL and the CA to trust.
up:
	scripts/local-journal.sh up

# Destroys the dev stack and stops the cluster, the host as it was before.
down:
	scripts/local-journal.sh down

preview: setup pulumi-tools
	scripts/pulumi.sh $(STACK) preview

test: everything
	$(PYTEST)

# Settings, components, the whole program under mocks and the render-state edits: no
# outside program (PATH holds only the venv, so a test that reaches for one fails here).
unit: setup
	env PATH=$(CURDIR)/$(VENV)/bin $(PYTEST) -q tests/unit

# Each promise of tests/mutants.yaml broken in turn; the mock tests must catch every one.
mutants: setup system-packages
	$(VENV)/bin/python devtools/mutants.py

render: setup pulumi-tools
	scripts/render.sh $(STACK)

# As root, the cluster running: builds images/*/Containerfile with buildah, tags
# v<images/VERSION>-<commit>, pushes to the cluster's registry, writes SBOMs; prints each
# image's reference by digest. A rerun with nothing changed pushes nothing.
images: image-tools system-packages
	scripts/images.sh

bench: everything load-tools
	devtools/benchmark.sh
	devtools/benchmark-cluster.sh
	$(VENV)/bin/python devtools/benchmark-fleet.py
	devtools/benchmark-failover.sh
	$(VENV)/bin/python devtools/benchmark-load.py

# Two at a time: a Go build keeps both cores busy only part of the time, and the images
# mostly wait on downloads; cold, everything is ready in about 30 minutes instead of 45.
everything:
	$(MAKE) --no-print-directory -j2 setup pulumi-tools kubernetes-tools scanners state-server image-tools system-packages cluster-images

setup: $(VENV)/.installed

# Reinstalled only when a requirements or constraints file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

# Built once per machine, outside the clone (cold on 2 cores: about 14 minutes for the
# Pulumi toolchain, 25 for Kubernetes and the cluster's add-ons, 5 for the images),
# before any test needs them; a rerun takes well under a second.
pulumi-tools:
	toolchain/install-pulumi.sh >/dev/null

kubernetes-tools:
	toolchain/install-kubernetes.sh >/dev/null

# vegeta, the load generator of devtools/benchmark-load.py (cold: under a minute); only
# `make bench` needs it.
load-tools:
	toolchain/install-loadgen.sh >/dev/null

# kube-score from the Go module proxy and checkov in a virtualenv of its own, for
# tests/integration/test_scanners.py (cold: about 2 minutes).
scanners:
	toolchain/install-scanners.sh >/dev/null

# versitygw, the S3 server of scripts/state-server.sh and the shared-state tests (cold:
# about 70 seconds).
state-server:
	toolchain/install-state-server.sh >/dev/null

# syft, the SBOM writer of `make images` (cold: about 3 minutes).
image-tools:
	toolchain/install-image-tools.sh >/dev/null

cluster-images: kubernetes-tools system-packages
	scripts/cluster.sh images >/dev/null

# The Redis tests run the real redis-server and redis-cli, the launch script under dash;
# the API server tests make their certificates with openssl; every script is held to
# shellcheck; the file server test runs the real nginx; the local cluster runs containerd,
# runc and the CNI plugins, programs iptables, ipset and nftables, and builds its images
# with debootstrap and its pause binary with gcc; the browser test drives Chromium through
# chromedriver; the cluster's registry is Debian's docker-registry with an htpasswd file,
# and `make images` builds with buildah and pushes with skopeo. The journal API runs as in
# its image: Debian's python3 with python3-redis (a module, so checked by importing it).
SYSTEM_COMMANDS := redis-server redis-cli dash openssl shellcheck nginx containerd runc /usr/lib/cni/bridge \
	iptables ipset nft conntrack debootstrap gcc chromium chromedriver docker-registry htpasswd buildah skopeo
SYSTEM_PYTHON_MODULES := redis
SYSTEM_PACKAGES := redis-server redis-tools dash openssl shellcheck nginx containerd runc containernetworking-plugins \
	iptables ipset nftables conntrack debootstrap gcc libc6-dev chromium chromium-driver python3 python3-redis \
	docker-registry apache2-utils buildah skopeo

system-packages:
	@for command in $(SYSTEM_COMMANDS); do command -v $$command >/dev/null || missing=1; done; \
	for module in $(SYSTEM_PYTHON_MODULES); do /usr/bin/python3 -c "import $$module" 2>/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES); \
	fi
