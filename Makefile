# Two commands for a new machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-output

.PHONY: venv lint test test-fast demo clean

venv: $(STAMP)

# Re-installs only when pyproject.toml changes, so `make venv` is cheap to repeat.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ganscapes needs Python 3.11 or newer; set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,studio]'
	touch $@

# Lint and format are checked first, so CI enforces them with the tests.
lint: venv
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

test: lint
	$(BIN)/python -m pytest

# The quick loop while working: everything but training runs, browsers and subprocesses.
test-fast: lint
	$(BIN)/python -m pytest -m "not slow"

demo: venv
	$(BIN)/ganscapes demo --out $(DEMO_DIR)

clean:
	rm -rf $(VENV) $(DEMO_DIR) build src/*.egg-info .pytest_cache
