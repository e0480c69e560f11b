# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_HOME ?= $(CURDIR)/.modelport-demo

.PHONY: install run test bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,serve,dev]'
	touch $(STAMP)

run: install
	MODELPORT_HOME=$(DEMO_HOME) $(BIN)/python -m modelport.demo
	MODELPORT_HOME=$(DEMO_HOME) $(BIN)/modelport serve

test: install
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python bench/train.py

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf $(VENV) $(DEMO_HOME) .pytest_cache
