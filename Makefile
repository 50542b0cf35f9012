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

# The Redis tests run the real redis-server and redis-cli; the launch script is run by dash.
system-packages:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v dash >/dev/null || \
		{ SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends redis-server redis-tools dash; }
