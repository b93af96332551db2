# Everything a user needs installs from this repository: `make run`, `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_HOME ?= $(CURDIR)/.synapse-demo

.PHONY: setup browser run test lint bench bench-peers clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	rm -rf $(DEMO_HOME)
	SYNAPSE_HOME=$(DEMO_HOME) $(BIN)/synapse demo --images 50
	SYNAPSE_HOME=$(DEMO_HOME) $(BIN)/synapse export coco --target task --project 1 \
		--output $(DEMO_HOME)/demo-coco --split train=0.8,val=0.2
	SYNAPSE_HOME=$(DEMO_HOME) $(BIN)/synapse preview $(DEMO_HOME)/demo-coco \
		--output $(DEMO_HOME)/demo-coco-preview
	@echo "Export written to $(DEMO_HOME)/demo-coco; open $(DEMO_HOME)/demo-coco-preview/report.html"

# `synapse preview`'s report.html is tested in a real headless Chromium (Debian's package);
# installed here when missing and this runs as root, else that one test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo 'Installing chromium (Debian package) for the preview report test'; \
		{ apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium fonts-dejavu-core >/dev/null; } || \
		echo 'chromium could not be installed: its preview test will be skipped'; \
	else \
		echo 'chromium not found and not installable here: its preview test will be skipped'; \
	fi

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# Two pytest-xdist workers (the machines have 2 cores); the tests that start or join Ray run
# on one of them (xdist_group 'ray'). A plain `pytest` runs serially.
test: lint browser
	$(BIN)/pytest -n 2 --dist loadgroup

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
