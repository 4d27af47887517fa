# pumpd — every target builds .venv from nothing when it is missing.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The local PostgreSQL of this machine kind; CI=true makes its absence a failure.
export PUMPD_TEST_PG_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: venv demo test lint format bench mutation clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/python -m pumpd.demo

# Branch coverage of safety/ must stay at 100 %: the run fails below it.
test: venv
	$(BIN)/python -m pytest --cov --cov-report=term --cov-fail-under=100 $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy pumpd safety hardware-sim/pumpsim

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv
	$(BIN)/python -m bench $(BENCH_ARGS)

mutation: venv
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2 || true
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) mutants .pytest_cache .mypy_cache .ruff_cache .coverage
