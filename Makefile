# The two commands of the README:
#   make run    solve the regional cohort and print the plan summary (the main job)
#   make test   run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench install

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: install
	$(BIN)/v2v solve fixtures/cohorts/regional.json --time-limit 10 --out out/regional-plan.json

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/v2v bench --markdown out/bench.md
