# The two commands of the README:
#   make run [PORT=8000]   the API on http://127.0.0.1:$(PORT) with a fresh SQLite demo database (regional cohort planned)
#   make test              install and start what the tests need (scripts/test-services.sh), then the whole test suite
PYTHON ?= python3
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench bench-api bench-nightly bench-load install

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: install
	$(BIN)/v2v demo --port $(PORT)

test: install
	scripts/test-services.sh
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/v2v-bench --markdown out/bench.md

bench-api: install
	$(BIN)/v2v-bench --api both --markdown out/bench.md

bench-nightly: install
	$(BIN)/v2v-bench --nightly --markdown out/bench.md

bench-load: install
	$(BIN)/v2v-bench --load both --workers 2 --markdown out/bench.md
