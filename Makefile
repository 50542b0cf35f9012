# The two entry points a user needs: `make preview` and `make test`.
# Everything else here is what they set up.

STACK ?= dev
PYTHON ?= python3
VENV := venv
PYTEST := $(VENV)/bin/python -m pytest

.PHONY: preview test render bench setup system-packages

preview: setup
	scripts/pulumi.sh $(STACK) preview

test: setup system-packages
	$(PYTEST)

render: setup
	scripts/render.sh $(STACK)

bench: setup system-packages
	scripts/benchmark.sh

setup: $(VENV)/.installed

# Reinstalled only when a requirements or constraints file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

# The Redis tests run the real redis-server and redis-cli, the launch script under dash;
# the API server tests make their certificates with openssl; every script is held to
# shellcheck.
SYSTEM_COMMANDS := redis-server redis-cli dash openssl shellcheck
SYSTEM_PACKAGES := redis-server redis-tools dash openssl shellcheck

system-packages:
	@for command in $(SYSTEM_COMMANDS); do command -v $$command >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES); \
	fi
