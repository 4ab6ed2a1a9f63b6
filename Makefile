# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench dictionary clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/amlcohort demo

test: $(STAMP)
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts bench

bench: $(STAMP)
	$(BIN)/python bench/run.py --out bench/results.json

dictionary: $(STAMP)
	$(BIN)/amlcohort dictionary --out docs/data_dictionary.md

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
