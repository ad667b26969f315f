# Custos: `make check` is the gate before every commit, and what CI runs: ruff format --check, ruff check,
# lint-imports (the import contracts in pyproject.toml), mypy --strict, and every test. `make test-fast`
# runs the tests that start no orchestrator or gateway process; `make demo` runs the demo, on a minimal
# install: Custos alone, without the dev tools and without PyTorch (the demo's models need neither).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
# pytest-xdist workers (one per core); each test file runs whole in one worker, the files that start
# processes first (in the order of tests/conftest.py's pytest_collection_modifyitems, not xdist's).
WORKERS ?= auto
PYTEST := $(PY) -m pytest -q -n $(WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: demo test test-fast check lint format typecheck system-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,torch]"
	touch $@

# The demo's own stamp: `pip install -e .` only. `make test` (and the other targets) add the dev and
# torch extras to the same venv through $(VENV)/.installed.
$(VENV)/.demo-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

system-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q bubblewrap; \
	  else echo "bubblewrap is missing: install the Debian package 'bubblewrap' (sudo apt-get install bubblewrap)" >&2; exit 1; fi; }
	@# The browser tests (tests/e2e/) drive Debian's Chromium; without it they skip, saying so.
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then { apt-get update -q && apt-get install -y -q chromium; } || echo "chromium could not be installed: the browser tests will skip" >&2; \
	  else echo "chromium is missing (sudo apt-get install chromium): the browser tests will skip" >&2; fi; }

demo: $(VENV)/.demo-installed system-deps
	$(VENV)/bin/custos demo

test: $(VENV)/.installed system-deps
	$(PYTEST)

test-fast: $(VENV)/.installed system-deps
	$(PYTEST) -m "not integration"

format: $(VENV)/.installed
	$(VENV)/bin/ruff format src tests benchmarks

lint: $(VENV)/.installed
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

check: lint typecheck test
