# After-sales service assistant. `make run` serves the bot; `make test` runs every test. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.10: python3.10 on PATH (a pyenv shim counts only if it really runs 3.10), else a pyenv install.
PYTHON_SYS := $(shell for c in $$(command -v python3.10 2>/dev/null) $$(ls -1d $(HOME)/.pyenv/versions/3.10*/bin/python3.10 2>/dev/null | sort -r); do \
  "$$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1 && { echo "$$c"; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
RASA := $(VENV)/bin/rasa
export RASA_TELEMETRY_ENABLED := false
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help setup train run test shell eval bench db clean check-python tools audit hostile fuzz-console

help:
	@echo "make run    - install, train if needed, set up the database, serve the bot (REST on 127.0.0.1:5005)"
	@echo "make test   - install, train if needed, validate the data and run every test"
	@echo "make setup | train | shell | eval | bench | db | clean"
	@echo "make audit (pip-audit) | hostile (hostile inputs, every channel) | fuzz-console (schemathesis) | tools"

check-python:
	@if [ -z "$(PYTHON_SYS)" ]; then \
	  echo "Python 3.10 is required (Rasa 3.6 supports up to 3.10): put python3.10 on PATH or install it with pyenv (pyenv install 3.10)." >&2; \
	  exit 1; fi

# Every package with the sha256 of every file PyPI publishes for its version (scripts/lock_hashes.py; docs/SECURITY.md).
$(VENV)/.installed: requirements.lock | check-python
	@test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	touch $@

# pip-audit and schemathesis in a venv of their own: their dependencies would move Rasa's pins.
TOOLS := .venv-tools
$(TOOLS)/.installed: requirements-tools.lock | check-python
	@test -x $(TOOLS)/bin/python || $(PYTHON_SYS) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --require-hashes -r requirements-tools.lock
	touch $@

tools: $(TOOLS)/.installed

# Known vulnerabilities in requirements.lock, against PyPI's advisory data (docs/SECURITY.md lists the accepted ones).
audit: setup tools
	BOT_AUDIT_UNREACHABLE= $(PY) scripts/audit.py

# The hostile-input corpus through every channel, all of it (the suite sends all of it over REST, a sample elsewhere).
hostile: train db
	BOT_HOSTILE_FULL=1 $(PY) -m pytest tests/test_hostile_input.py -q

# schemathesis over the agent console's OpenAPI on a running stack: no 5xx.
fuzz-console: train tools
	$(PY) scripts/fuzz_console.py

setup: check-python $(VENV)/.installed

# Trains only when the config, domain, training data or custom components changed since the last model.
train: setup
	@$(PY) scripts/train_if_changed.py

db: setup
	$(PY) -m bot db upgrade
	$(PY) -m bot db seed --if-empty

run: train db
	@bash scripts/run.sh

shell: train db
	@bash scripts/run.sh --shell

test: train tools
	bash scripts/test.sh

eval: train
	$(PY) scripts/evaluate.py

bench: train
	$(PY) scripts/bench.py

clean:
	rm -rf models/*.tar.gz models/fingerprint.json results .pytest_cache

# Several instances on one machine (issue 17): nginx on 127.0.0.1:8080 in front of two Rasa servers and two action
# servers, two outbox runners, PostgreSQL (BOT_DATABASE_URL if PostgreSQL, else database `test`) and Redis
# (BOT_REDIS_URL). Config, logs and pid files in var/cluster/; cluster-down stops exactly what cluster started.
.PHONY: cluster cluster-down cluster-load
cluster: train
	$(PY) scripts/cluster.py up

cluster-down:
	$(PY) scripts/cluster.py down

# 200 simulated customers for 3 minutes through a cluster of its own (scripts/cluster_load.py --help for the modes).
cluster-load: train
	$(PY) scripts/cluster_load.py $(CLUSTER_LOAD_ARGS)
