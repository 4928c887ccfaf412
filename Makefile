# Two commands for a new user on a fresh Debian machine (both idempotent, fast when set up):
#   make demo  - build the sandbox OpenWatch at its oldest release in $(INSTALL_DIR) and show it healthy
#   make test  - run the project's own tests (unit and end-to-end against real containers)
PYTHON ?= python3
VENV := .venv
INSTALL_DIR ?= /opt/openwatch
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

demo-down: venv
	$(VENV)/bin/python -m sandbox down --dir $(INSTALL_DIR)

test: setup
	$(VENV)/bin/python -m pytest tests $(PYTEST_ARGS)
