# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench bench-full dictionary clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/amlcohort demo

# The suite without the tests marked `slow` (Spark and registry-scale engine comparisons): the
# edit loop. CI (.ci/run) runs `make test` and then `make test-slow`.
test: $(STAMP)
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts bench

bench: $(STAMP)
	$(BIN)/python bench/run.py --out bench/results.json

bench-full: $(STAMP)
	$(BIN)/python bench/run.py --full --out bench/results.json

dictionary: $(STAMP)
	$(BIN)/amlcohort dictionary --out docs/data_dictionary.md

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
