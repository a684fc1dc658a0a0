# Klaxon developer commands. `make help` lists them.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Where Postgres and RabbitMQ are (override on the command line or in the environment).
POSTGRES_URL   ?= postgresql+asyncpg://postgres@127.0.0.1:5432
ADMIN_URL      ?= $(POSTGRES_URL)/postgres
DATABASE       ?= klaxon
AMQP_URL       ?= amqp://guest:guest@127.0.0.1:5672/
ROLE_PASSWORD  ?= klaxon
PYTEST_ARGS    ?=

# uv from PATH, else the copy `python3 -m pip install uv` puts inside Python.
UV     ?= $(shell command -v uv >/dev/null 2>&1 && echo uv || echo python3 -m uv)
UV_RUN := $(UV) run --frozen
DEVRUN := $(UV_RUN) python scripts/devrun.py --admin-url '$(ADMIN_URL)' --database '$(DATABASE)' \
          --amqp-url '$(AMQP_URL)' --role-password '$(ROLE_PASSWORD)'

.PHONY: help install test lint fmt run stop bench asyncapi infra

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

# --compile-bytecode: installed packages come with their .pyc files, so a process starts
# in ~1.4 s rather than ~3.5 s where Python may not write them (PYTHONDONTWRITEBYTECODE).
install: ## install uv if missing, then every workspace package and the dev tools, and Chromium
	@$(UV) --version >/dev/null 2>&1 || { echo "uv not found; installing it with pip"; python3 -m pip install --quiet uv; }
	$(UV) sync --frozen --all-packages --compile-bytecode
	@# The status-page browser tests drive Debian's Chromium (Playwright downloads no browser).
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

infra: install ## check that Postgres and RabbitMQ answer (start them with Docker if it is there)
	$(DEVRUN) infra

# Tests that restart RabbitMQ or Postgres (marker `slow`) run after the rest, alone: a
# restart would fail whatever else runs beside it. The rest run in TEST_JOBS processes.
TEST_JOBS ?= 2
TEST_ENV := KLAXON_TEST_ADMIN_URL='$(ADMIN_URL)' KLAXON_TEST_AMQP_URL='$(AMQP_URL)'

test: install infra ## install, make sure Postgres and RabbitMQ answer, run the whole suite
	$(TEST_ENV) $(UV_RUN) pytest -n $(TEST_JOBS) -m 'not slow' $(PYTEST_ARGS)
	$(TEST_ENV) $(UV_RUN) pytest -m slow $(PYTEST_ARGS)

lint: ## ruff and mypy, as CI runs them
	$(UV_RUN) ruff check
	$(UV_RUN) ruff format --check
	$(UV_RUN) mypy $(wildcard libs services tests bench)

fmt: ## fix what ruff can fix, and format
	$(UV_RUN) ruff check --fix
	$(UV_RUN) ruff format

run: install ## run the four services here against the local Postgres and RabbitMQ (Ctrl-C stops)
	$(DEVRUN) run

stop: ## stop what `make run` started
	$(DEVRUN) stop

bench: ## the quick benchmarks (needs Postgres and RabbitMQ)
	@ran=0; \
	for bench in bench/pipeline.py bench/intake.py bench/deliveries.py bench/monitor.py \
	             bench/notifier.py bench/statuspage.py; do \
	  if [ -f "$$bench" ]; then $(UV_RUN) python "$$bench" --quick; ran=1; \
	  else echo "skipping $$bench (not there yet)"; fi; \
	done; \
	[ "$$ran" = 1 ] || echo "no benchmarks yet"

asyncapi: ## regenerate docs/asyncapi.yaml from libs/contracts
	$(UV_RUN) python -m contracts.asyncapi --output docs/asyncapi.yaml
