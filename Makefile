# `make demo` and `make test` bootstrap .venv from pyproject.toml on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit bench bench-small bench-ab profile clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/syncd demo

lint: $(STAMP)
	$(BIN)/ruff check syncd tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q -n 2 -p no:cacheprovider -m "not soak"

# The soak runs on its own, unparallelised and with -s, so its seed and figures reach the log.
test: $(STAMP)
	$(BIN)/ruff check syncd tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -n 2 -p no:cacheprovider -m "not soak"
	$(BIN)/pytest -q -s -p no:cacheprovider -m soak

BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

# Not part of `make test`: timings are measured here, never asserted in tests.
bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py

bench-small: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --small --out bench/BENCHMARKS-small.md

# This tree's CPU per lead against a commit's (default: syncd before issue 15), initial syncs in turns.
bench-ab: $(BENCH_STAMP)
	$(BIN)/python bench/ab.py

# One initial sync of 100,000 simulated leads under pyinstrument: bench/results/profile.{txt,html}.
profile: $(BENCH_STAMP)
	$(BIN)/python bench/profile.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
