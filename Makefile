# Custos: `make demo` runs the demo, `make test` runs the tests, `make check` is the gate before a commit.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: demo test check lint format typecheck system-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,torch]"
	touch $@

system-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q bubblewrap; \
	  else echo "bubblewrap is missing: install the Debian package 'bubblewrap' (sudo apt-get install bubblewrap)" >&2; exit 1; fi; }

demo: $(VENV)/.installed system-deps
	$(VENV)/bin/custos demo

test: $(VENV)/.installed system-deps
	$(PY) -m pytest -q

format: $(VENV)/.installed
	$(VENV)/bin/ruff format src tests benchmarks

lint: $(VENV)/.installed
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

check: lint typecheck test
