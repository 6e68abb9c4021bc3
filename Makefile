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

.PHONY: help setup train run test shell eval bench db clean check-python

help:
	@echo "make run    - install, train if needed, set up the database, serve the bot (REST on 127.0.0.1:5005)"
	@echo "make test   - install, train if needed, validate the data and run every test"
	@echo "make setup | train | shell | eval | bench | db | clean"

check-python:
	@if [ -z "$(PYTHON_SYS)" ]; then \
	  echo "Python 3.10 is required (Rasa 3.6 supports up to 3.10): put python3.10 on PATH or install it with pyenv (pyenv install 3.10)." >&2; \
	  exit 1; fi

$(VENV)/.installed: requirements.lock | check-python
	@test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel
	$(PY) -m pip install --quiet -r requirements.lock
	touch $@

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

test: train
	bash scripts/test.sh

eval: train
	$(PY) scripts/evaluate.py

bench: train
	$(PY) scripts/bench.py

clean:
	rm -rf models/*.tar.gz models/fingerprint.json results .pytest_cache
