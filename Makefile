# Lectern: `make run` starts the product, `make test` runs the tests. Both install what they need.
SHELL := /bin/bash
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
export UV_PYTHON ?= 3.11
# The browser test drives Debian's Chromium with playwright-core (pinned in
# tests/ui/package-lock.json; it never downloads a browser of its own).
CHROMIUM := $(or $(CHROMIUM_PATH),/usr/bin/chromium)
# tests/pooled put Debian's PgBouncer (transaction mode, as Neon's pooled URL) before PostgreSQL.
PGBOUNCER := /usr/sbin/pgbouncer
# Debian's Prometheus (with promtool) for tests/observability: it scrapes a test stack and runs
# every dashboard query and alert rule.
PROMETHEUS := /usr/bin/prometheus
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: install browser pgbouncer run test test-fast test-fuzz test-faults lint bench soak clean

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools && .tools/bin/pip install -q uv==$(UV_VERSION)

# Bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set (as on the CI machines) every
# process would otherwise compile all it imports, ~4 s of CPU per service start instead of ~2.
.venv/.installed: $(UV) uv.lock pyproject.toml */*/pyproject.toml
	$(UV) sync --frozen --compile-bytecode
	.venv/bin/python -m compileall -q -j 0 libs services tools > /dev/null
	@touch $@

services/auth/node_modules/.installed: services/auth/package-lock.json
	cd services/auth && npm ci --no-audit --no-fund
	@touch $@

tests/ui/node_modules/.installed: tests/ui/package-lock.json
	cd tests/ui && npm ci --no-audit --no-fund
	@touch $@

$(CHROMIUM):
	$(SUDO) apt-get update -q
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

$(PGBOUNCER):
	$(SUDO) apt-get update -q
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer

$(PROMETHEUS):
	$(SUDO) apt-get update -q
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus

browser: tests/ui/node_modules/.installed $(CHROMIUM) $(PROMETHEUS) ## what the browser and Prometheus tests need

pgbouncer: $(PGBOUNCER) ## what the pooled-connection tests need

install: .venv/.installed $(if $(wildcard services/auth/package-lock.json),services/auth/node_modules/.installed)

run: install ## start the whole product on 127.0.0.1:8080 (Ctrl-C stops it)
	$(UV) run --frozen lectern run

test: install browser pgbouncer ## the whole test suite against real PostgreSQL, Redis, Traefik and Better Auth
	$(UV) run --frozen pytest $(PYTEST_ARGS)

test-fast: install ## the in-process tests alone (no stack; seconds)
	$(UV) run --frozen pytest tests/unit $(PYTEST_ARGS)

test-fuzz: install ## every public route fuzzed from its OpenAPI description, through the gateway (~4 min)
	$(UV) run --frozen pytest -m fuzz $(PYTEST_ARGS)

test-faults: install ## the fault suite alone: kills, store restarts, a failing model, bad clients (~10 min)
	$(UV) run --frozen pytest -m faults $(PYTEST_ARGS)

lint: install ## ruff (lint and format) and mypy on libs/ and services/
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

bench: install ## a classroom's burst beside the shape's floor (both corpora; ~15 min)
	$(UV) run --frozen python bench/burst_bench.py --data-dir $(CURDIR)/.lectern/bench $(BENCH_ARGS)

soak: install ## a 10-minute soak: 200 readers asking in a loop, every process sampled (docs/reliability.md)
	$(UV) run --frozen python bench/soak.py $(SOAK_ARGS)

clean:
	rm -rf .venv .tools .lectern services/auth/node_modules tests/ui/node_modules
