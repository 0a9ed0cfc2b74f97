# Fealty — every target creates .venv and installs the project on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help install serve worker migrate demo test test-fast fuzz lint format bench postgres redis-server pgbouncer docs docs-serve lock prod-like clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP) ## Create .venv and install Fealty with its development tools

serve: $(STAMP) ## Serve the API on SQLite (fealty.db), migrations applied, worker in-process
	$(BIN)/fealty serve

worker: $(STAMP) ## Run the background worker (release, expiry, deliveries)
	$(BIN)/fealty worker

migrate: $(STAMP) ## Apply migrations to FEALTY_DATABASE_URL
	$(BIN)/fealty migrate

demo: $(STAMP) ## Seed demo tenants and print what to try
	$(BIN)/fealty demo

postgres: ## Start the local PostgreSQL cluster if it is installed and stopped
	@infra/ensure-postgres

redis-server: ## Install redis-server if it is missing (tests start their own on a loopback port)
	@command -v redis-server >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; } || \
	  { echo "The tests need redis-server (Debian: apt-get install redis-server)." >&2; exit 1; }

pgbouncer: ## Install PgBouncer if it is missing (a test starts its own on a loopback port)
	@command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -q >/dev/null && apt-get install -y -q pgbouncer >/dev/null; } || \
	  { echo "The tests need pgbouncer (Debian: apt-get install pgbouncer)." >&2; exit 1; }

test: $(STAMP) postgres redis-server pgbouncer ## Run the whole test suite (SQLite and PostgreSQL, localstripe)
	$(BIN)/pytest -n 2 --dist loadfile

test-fast: $(STAMP) redis-server ## The suite on SQLite only, no PostgreSQL needed
	FEALTY_TEST_BACKENDS=sqlite $(BIN)/pytest -n 2 --dist loadfile -m "not postgres_only"

fuzz: $(STAMP) ## The full fuzz: schemathesis, every route, all checks, many examples (FUZZ_EXAMPLES=200, random seed)
	FEALTY_TEST_BACKENDS=sqlite FEALTY_TEST_FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-100} FEALTY_TEST_FUZZ_SEED=random \
	  $(BIN)/pytest tests/contract/test_fuzz.py -p no:xdist -q

lint: $(STAMP) ## ruff (format and check), mypy, import-linter
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP) ## Apply ruff formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) postgres ## Run the benchmark (figures in bench/results/latest.md, discussed in bench/README.md)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q wrk >/dev/null; } || \
	  { echo "The benchmark needs wrk (Debian: apt-get install wrk)." >&2; exit 1; }
	$(BIN)/python -m bench.run $(ARGS)

prod-like: $(STAMP) ## The production layout here: PostgreSQL, Redis, two API processes (8001, 8002), a worker
	infra/prod-like $(ARGS)

lock: $(STAMP) ## Pin the production dependencies with hashes into infra/requirements.lock (the image installs them)
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --quiet -o infra/requirements.lock

# Never -q: mkdocs's strict mode counts the warnings it logs, and -q silences them.
docs: $(STAMP) ## Build the documentation site into site/ (strict: a broken link or a page missing from the nav fails)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(STAMP) ## Serve the documentation with live reload at http://127.0.0.1:8010
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:8010

clean: ## Remove the virtualenv, caches and the local SQLite database
	rm -rf $(VENV) site .mypy_cache .ruff_cache .pytest_cache fealty.db fealty.db-wal fealty.db-shm
