# Two commands for a new user on a fresh Debian machine (both idempotent, fast when set up):
#   make demo  - build the sandbox OpenWatch at its oldest release in $(INSTALL_DIR) on the host's
#                Docker engine, then upgrade it to $(TARGET) with the upgrade suite (HTML report in reports/)
#   make test  - run the project's own tests (unit and end-to-end) in a private Docker engine of their
#                own, which never sees or touches an installation on the host's engine
# Prerequisites: root, make and git (`apt-get install make git`); the rest is installed here, and only
# as new packages (sandbox/apt-guarded.sh refuses anything that would upgrade the host).
PYTHON ?= python3
VENV := .venv
INSTALL_DIR ?= /opt/openwatch
TARGET ?= v0.2.0
PYTEST_ARGS ?=
# Parallel test workers (pytest-xdist), each with a private engine of its own; a module stays on one worker,
# and the modules are handed out slowest first (tests/module_costs.py), not in xdist's most-tests-first order.
TEST_WORKERS ?= 2

.PHONY: demo demo-down test venv docker docker-binaries

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt fleet/requirements.txt
	bash sandbox/setup-host.sh
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt -r fleet/requirements.txt
	touch $@

# The engine binaries only (the tests start their own daemon).
docker-binaries:
	bash sandbox/bootstrap-docker.sh --install-only

# The binaries and the host's engine running (the demo installs there, as an operator's OpenWatch is).
docker:
	bash sandbox/bootstrap-docker.sh

demo: venv docker
	$(VENV)/bin/python -m sandbox up --replace --release v0.1.0 --dir $(INSTALL_DIR)
	$(VENV)/bin/python -m sandbox prepare --dir $(INSTALL_DIR) --target $(TARGET)
	$(VENV)/bin/python -m pytest suites/upgrade --install-dir $(INSTALL_DIR) --target $(TARGET) \
		--ticket DEMO --html reports/upgrade-demo.html --self-contained-html

demo-down: venv
	$(VENV)/bin/python -m sandbox down --dir $(INSTALL_DIR)

test: venv docker-binaries
	$(VENV)/bin/python -m pytest tests -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		--durations=30 $(PYTEST_ARGS)
