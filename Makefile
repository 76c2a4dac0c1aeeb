# The two commands of the README:
#   make run    the API on http://127.0.0.1:8000 with a fresh SQLite demo database (regional cohort planned)
#   make test   run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench bench-api bench-nightly install

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: install
	$(BIN)/v2v demo

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/v2v bench --markdown out/bench.md

bench-api: install
	$(BIN)/v2v bench --api both --markdown out/bench.md

bench-nightly: install
	$(BIN)/v2v bench --nightly --markdown out/bench.md
