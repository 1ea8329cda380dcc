# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## the daemon against the built-in simulators, with scripted changes flowing through
demo: $(STAMP)
	$(BIN)/syncd demo

## the whole test suite (what CI runs)
test: $(STAMP)
	$(BIN)/ruff check syncd tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -n 4 --dist worksteal

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check syncd tests bench
	$(BIN)/mypy

## quick benchmarks (see bench/README.md for the long ones)
bench: $(STAMP)
	$(BIN)/python -m bench.sim_bench --runs 3
	$(BIN)/python -m bench.mirror_bench --runs 2

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
