# Everything a user needs installs from this repository: `make run`, `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_HOME ?= $(CURDIR)/.synapse-demo

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	rm -rf $(DEMO_HOME)
	SYNAPSE_HOME=$(DEMO_HOME) $(BIN)/synapse demo --images 50
	SYNAPSE_HOME=$(DEMO_HOME) $(BIN)/synapse export coco --target task --project 1 --storage 1 \
		--path exports --name demo-coco --split train=0.8,val=0.2
	@echo "Export written under $(DEMO_HOME)/storage/exports/demo-coco"

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(DEMO_HOME) .pytest_cache .mypy_cache .ruff_cache
