# pumpd — every target builds .venv from nothing when it is missing.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The local PostgreSQL of this machine kind; CI=true makes its absence a failure.
export PUMPD_TEST_PG_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: venv demo test lint format bench mutation fuzz soak clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/python -m pumpd.demo

# Branch coverage of safety/ must stay at 100 %, reached by tests/safety alone: the run fails
# below it. Three passes:
#  1. tests/safety with branch coverage of safety/ (the only source, pyproject.toml), judged
#     there: below 100 % the run fails;
#  2. every other test but the pg_outage ones, without coverage: its tracer costs the
#     in-process tests a third to two thirds more CPU time (tests/controller, tests/session,
#     tests/drivers), for lines tests/safety already covers;
#  3. alone, the few tests that stop the shared PostgreSQL server (marker pg_outage), which
#     would fail a PostgreSQL test running beside them.
# Pass 1 runs two pytest-xdist workers (its tests are CPU-bound hypothesis runs: three
# workers on two cores took 78 s against 49 s), pass 2 three (its tests mostly wait on real
# processes and scaled clocks: 712 s with three workers against 851 s with two on this
# 2-core machine, 2026-12-07); TEST_WORKERS=0: one process. With
# PYTEST_ARGS (a path, -k ...) the picked tests run in passes 2 and 3 only, and coverage is
# not judged (of a part of the suite it means nothing); pass 3's exit status 5, "no test
# selected", is then fine.
# worksteal: a worker that runs out takes half of the other's queue (the long tests are
# collected first, tests/conftest.py), so both finish within a short test of each other.
TEST_WORKERS ?= 3
SAFETY_WORKERS ?= $(if $(filter 0,$(TEST_WORKERS)),0,2)
PYTEST_XDIST = -n $(TEST_WORKERS) --dist worksteal
test: venv
ifeq ($(strip $(PYTEST_ARGS)),)
	$(BIN)/python -m pytest -n $(SAFETY_WORKERS) --dist worksteal --cov --cov-report=term --cov-fail-under=100 tests/safety
	$(BIN)/python -m pytest $(PYTEST_XDIST) -m "not pg_outage" --ignore=tests/safety
	$(BIN)/python -m pytest -m pg_outage
else
	$(BIN)/python -m pytest $(PYTEST_XDIST) -m "not pg_outage" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m pg_outage $(PYTEST_ARGS) || test $$? -eq 5
endif

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy pumpd pumpd_board safety hardware-sim/pumpsim bench

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every benchmark; one markdown table on stdout and in bench/last-report.md (docs/bench.md).
bench: venv
	$(BIN)/python -m bench --out bench/last-report.md $(BENCH_ARGS)

# Mutation testing of safety/ with tests/safety only ([tool.mutmut] in pyproject.toml).
# Lists the mutants that were not killed, then the score per module and in total:
# killed (or timed out) / every mutant that was run, "no tests" counting as not killed.
define MUTATION_SCORE
import collections, sys
counts = collections.defaultdict(collections.Counter)
for line in sys.stdin:
    name, _, status = line.strip().partition(": ")
    if "__mutmut_" in name:
        counts[".".join(name.split(".")[:2])][status] += 1
total = collections.Counter()
def show(label, c):
    killed = c["killed"] + c["timeout"]
    ran = sum(c.values()) - c["skipped"] - c["not checked"]
    print(f"{label:<22} {killed:>5} / {ran:<5} killed  {100 * killed / max(ran, 1):5.1f} %"
          f"   survived {c['survived']}, no tests {c['no tests']}")
for module in sorted(counts):
    total.update(counts[module])
    show(module, counts[module])
show("all of safety/", total)
endef
export MUTATION_SCORE

mutation: venv
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2 || true
	$(BIN)/mutmut results
	$(BIN)/mutmut results --all true | $(BIN)/python -c "$$MUTATION_SCORE"

# The long fuzzing run (the same tests run briefly in `make test`): FUZZ_EXAMPLES per test.
# The suite's 120 s per-test timeout (pyproject) is for make test; a fuzz target at 20,000
# examples runs for minutes, so here a test is only stopped as hung after FUZZ_TIMEOUT s.
FUZZ_EXAMPLES ?= 20000
FUZZ_TIMEOUT ?= 3600
fuzz: venv
	HYPOTHESIS_PROFILE=fuzz PUMPD_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -p no:cacheprovider --timeout=$(FUZZ_TIMEOUT) --hypothesis-show-statistics -q tests/fuzz $(PYTEST_ARGS)

# The soak with chaos (docs/soak.md): complete sessions on the real simulator and daemon
# with wrong nurse actions, pump and wire faults and daemon kills, then the invariants checked
# from the audit log and the simulator's log; exit 1 on any violation. Defaults: 1000
# sessions on 10 pumps at x240 (an hour or more here); CI runs a short one, e.g.
# make soak SOAK_ARGS="--sessions 12 --seed 1 --pumps 6 --kill-every 30".
SOAK_ARGS ?=
soak: venv
	$(BIN)/python -m soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) mutants .pytest_cache .mypy_cache .ruff_cache .coverage
