# Jobsite: `make run` starts the platform, `make test` runs the suites. Both install first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help install run test test-embedded chaos fuzz bench bench-watchers bench-documents bench-web lint format

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install the project with its dev extras

$(STAMP): pyproject.toml client/pyproject.toml
	@# Tesseract OCRs scanned PDF pages; installed where we may (root with apt), else skipped.
	@command -v tesseract >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get install -y -q tesseract-ocr tesseract-ocr-eng tesseract-ocr-deu >/dev/null \
		|| (apt-get update -q >/dev/null && apt-get install -y -q tesseract-ocr \
		tesseract-ocr-eng tesseract-ocr-deu >/dev/null)) \
		|| echo "tesseract-ocr not installed: scanned pages will not be OCRed"; }
	@# Debian's Chromium renders pages for web extraction's render_js; likewise optional.
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
		|| (apt-get update -q >/dev/null \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null)) \
		|| echo "chromium not installed: web extraction's render_js will fail clearly"; }
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# The Python client (client/): its tests run against a live server.
	$(PY) -m pip install --quiet -e ./client
	touch $(STAMP)

run: install ## Run web, worker, beat, Flower, Valkey (PORT=8000), restarting what dies; Ctrl-C stops all
	$(PY) -m jobsite.embedded

test: install ## Run the tests on the embedded default, then on PostgreSQL + Redis
	$(PY) -m tests.suites $(ARGS)

test-embedded: install ## Run the tests on the embedded default only
	$(PY) -m pytest $(ARGS)

chaos: install ## Fault injection only (kills, broker and database restarts), both setups
	$(PY) -m tests.suites tests/chaos $(ARGS)

fuzz: install ## Fuzz the API from its OpenAPI schema, 500 cases per operation (make test: 15)
	JOBSITE_FUZZ_EXAMPLES=500 $(PY) -m pytest tests/fuzz $(ARGS)

bench: install ## All benchmarks on PostgreSQL + Redis, beside their baselines: docs/benchmarks.md
	$(PY) -m bench $(ARGS)

bench-watchers: install ## Live updates: 10,000 SSE + 1,000 long-polls on one web process
	$(PY) -m bench.watchers $(ARGS)

bench-documents: install ## Documents: extraction quality, upload to searchable, search on 1M memories
	$(PY) -m bench.documents $(ARGS)

bench-web: install ## Web pages: main-content extraction on the corpus beside trafilatura; render_js
	$(PY) -m bench.web $(ARGS)

lint: install ## ruff: lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## ruff: fix what can be fixed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
