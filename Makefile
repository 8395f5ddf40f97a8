# Countersign: every target installs what it needs first, so a fresh clone works.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PORT ?= 8000
PY := $(VENV)/bin/python

# A Python >= 3.12: honour $(PYTHON), else look on PATH, else ask pyenv.
PYTHON ?= $(shell scripts/find-python.sh)

.PHONY: help install lock run test lint format bench

help:
	@echo "make run    start the demo (SQLite, sandbox venues, seeded users)"
	@echo "make test   install what is needed and run the whole suite"
	@echo "make lint   ruff check and format check"
	@echo "make lock   recompile requirements.lock from pyproject.toml (LOCK_FLAGS=--upgrade to refresh all)"
	@echo "make bench  seed PostgreSQL at scale (BENCH_SCALE, default 1) and measure; writes docs/bench.md"

# Installs exactly requirements.lock (every package, build tools included, checked against its
# hashes), then the project itself without resolving anything further.
$(VENV)/.installed: pyproject.toml requirements.lock
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.12 found. Install one, or set PYTHON=/path/to/python3.12" >&2; exit 1; }
	@"$(PYTHON)" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' || { echo "error: $(PYTHON) is older than 3.12; set PYTHON to a Python >= 3.12" >&2; exit 1; }
	test -x $(PY) || "$(PYTHON)" -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

PIP_TOOLS := pip-tools==7.6.2
LOCK_FLAGS ?=
# Pins transitive versions for the app and dev extras with hashes; keeps existing pins unless
# LOCK_FLAGS=--upgrade (or --upgrade-package NAME). Commit requirements.lock with pyproject.toml.
lock:
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.12 found. Set PYTHON=/path/to/python3.12" >&2; exit 1; }
	test -x $(PY) || "$(PYTHON)" -m venv $(VENV)
	$(PY) -m pip install --quiet $(PIP_TOOLS)
	$(PY) -m piptools compile --quiet --extra dev --generate-hashes --allow-unsafe \
		--all-build-deps --strip-extras --no-emit-index-url --no-emit-find-links \
		$(LOCK_FLAGS) --output-file requirements.lock pyproject.toml

run: install
	PORT=$(PORT) scripts/run-demo.sh

test: install
	scripts/run-tests.sh

bench: install
	scripts/bench.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
