# Two commands for a new user on a fresh Debian machine (both idempotent, fast when set up):
#   make demo  - build the sandbox OpenWatch at its oldest release in $(INSTALL_DIR), then upgrade it
#                to $(TARGET) with the upgrade suite (HTML report in reports/)
#   make test  - run the project's own tests (unit and end-to-end against real containers)
PYTHON ?= python3
VENV := .venv
INSTALL_DIR ?= /opt/openwatch
TARGET ?= v0.2.0
PYTEST_ARGS ?=

.PHONY: demo demo-down test setup docker venv

setup: venv docker

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

docker:
	bash sandbox/bootstrap-docker.sh

demo: setup
	$(VENV)/bin/python -m sandbox up --replace --release v0.1.0 --dir $(INSTALL_DIR)
	$(VENV)/bin/python -m sandbox prepare --dir $(INSTALL_DIR) --target $(TARGET)
	$(VENV)/bin/python -m pytest suites/upgrade --install-dir $(INSTALL_DIR) --target $(TARGET) \
		--ticket DEMO --html reports/upgrade-demo.html --self-contained-html

demo-down: venv
	$(VENV)/bin/python -m sandbox down --dir $(INSTALL_DIR)

test: setup
	$(VENV)/bin/python -m pytest tests $(PYTEST_ARGS)
