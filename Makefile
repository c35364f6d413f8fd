# The two commands: `make up` (start everything on the embedded default) and `make test`.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
# Compiled bytecode goes to a cache folder: with PYTHONDONTWRITEBYTECODE every Prefect process
# would recompile Prefect (seconds per process).
export PYTHONPYCACHEPREFIX ?= $(HOME)/.cache/eotasks-pycache
unexport PYTHONDONTWRITEBYTECODE
# Nothing leaves loopback: no Prefect telemetry, from servers or from in-process ephemeral APIs.
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: up test install bootstrap

bootstrap:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

install: bootstrap
	$(UV) sync --frozen

up: install
	$(UV) run --frozen eotasks up

# Lint, formatting and types first: a failure there fails CI like a failing test.
test: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy
	$(UV) run --frozen pytest
