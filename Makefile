# Everything a user needs installs from this repository: `make run`, `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_HOME ?= $(CURDIR)/.synapse-demo

.PHONY: setup run test lint bench bench-peers clean

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
	$(BIN)/python benchmarks/peers.py
	$(BIN)/python benchmarks/parallel.py

# Datumaro and globox in a venv of their own, so their pins never touch the project's .venv.
PEERS_VENV := .bench/peers-venv
bench-peers: setup
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet 'datumaro>=1.10' 'globox>=2.4' 'orjson>=3.10'

clean:
	rm -rf $(VENV) $(DEMO_HOME) .pytest_cache .mypy_cache .ruff_cache
