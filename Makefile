# TransCODE: the two commands of the README, and the benchmarks.
#   make demo   - set up .venv and compile a zoo model onto a library design
#   make test   - set up .venv, run ruff check and mypy (core), then the whole test suite
#   make lint   - ruff check and mypy on the core only
#   make bench  - set up .venv and run the benchmarks (prints tables)
#   make fuzz   - set up .venv and run the input fuzzers long (FUZZ_EXAMPLES each;
#                 prints the count and time of each; make test runs them briefly)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

FUZZ_EXAMPLES ?= 1000

.PHONY: setup demo test lint bench fuzz clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: setup
	$(BIN)/tcc compile zoo:bert-tiny --hw acceltran-edge

# Lint first (ruff, rules in pyproject.toml, README "Development"; about half
# a second), then the suite.
# Two test workers on two cores: one BLAS/OpenMP/torch thread each (more
# oversubscribes the cores and made the suite twice as slow).
test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup tests

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

fuzz: setup
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
	$(BIN)/python -m tests.hardening.run_fuzz --examples $(FUZZ_EXAMPLES)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
