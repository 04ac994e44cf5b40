# Two entry points for a fresh machine: `make demo` and `make test`.
# The virtual environment is created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint sim bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kraft demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict controller broker_demo
	$(BIN)/python -m pytest

sim: $(STAMP)
	$(BIN)/python -m controller.sim $(or $(SEED_START),0) $(or $(SEEDS),5000)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.raft_bench

clean:
	rm -rf $(VENV) kraft-data
