# Every target creates .venv on first use and (re)installs when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run cluster test test-fast lint bench load load-cluster screenshots clean vendor-docs-ui

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/chatflow serve --data-dir ./data

# 2 API processes and 2 workers behind HAProxy on http://127.0.0.1:8080, against PostgreSQL and
# Redis (CHATFLOW_DATABASE_URL, CHATFLOW_REDIS_URL; deploy/README.md); Ctrl-C stops it all.
cluster: $(STAMP)
	$(BIN)/python deploy/cluster.py --data-dir ./data-cluster

# Test files are spread over TEST_WORKERS processes (pytest-xdist), a whole file to one
# process, so a module's shared server and fixtures are made once; TEST_WORKERS=0: serially.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

test: $(STAMP) lint
	$(PYTEST)

# Everything but the tests marked slow (fuzzing, zip bombs, kills, LibreOffice).
test-fast: $(STAMP) lint
	$(PYTEST) -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests alembic benchmarks scripts
	$(BIN)/ruff format --check src tests alembic benchmarks scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

# The chat page's main states as docs/page-*.png (needs Chromium at /usr/bin/chromium).
screenshots: $(STAMP)
	$(BIN)/python -m tests.browser.screens docs

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

# The README's performance figures: this tree against the plain libraries (docs/benchmarks.md,
# ~14 min; its cluster phase needs the local PostgreSQL and Redis).
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks

# 60 s of 50 chats uploading and running against one server (docs/load.md).
load: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.load

# The same load through HAProxy to deploy/cluster.py's 2 API processes and 2 workers, on a fresh
# database of the local PostgreSQL and the local Redis (docs/load.md).
load-cluster: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.load --cluster

# Re-vendors the docs UI (/docs, /redoc) from the npm registry with npm (docs/docs-ui.md):
# `make vendor-docs-ui`, or pin: `make vendor-docs-ui SWAGGER_UI=5.35.0 REDOC=3.0.1`.
SWAGGER_UI ?= latest
REDOC ?= latest

vendor-docs-ui: $(BIN)/python
	$(BIN)/python scripts/vendor_docs_ui.py --swagger-ui $(SWAGGER_UI) --redoc $(REDOC)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
