# fpml: every target sets up .venv (created, or reinstalled when pyproject.toml changes) first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= fraud
ARGS   ?=

.PHONY: setup setup-gpu train data report test test-real bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup-gpu: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[cuda]'

train: $(STAMP)
	$(BIN)/fpml train $(CONFIG) $(ARGS)

data: $(STAMP)
	$(BIN)/fpml data

report: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,report]'
	$(BIN)/python -m pipelines.report $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not real_data" --durations=15 fpml tests

test-real: $(STAMP)
	$(BIN)/fpml data
	$(BIN)/python -m pytest -m real_data tests

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet 'torch==2.13.0' || $(BIN)/python -m pip install --quiet torch
	$(BIN)/python bench/train_speed.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check fpml pipelines tests bench
	$(BIN)/ruff format --check fpml pipelines tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache  # data/ is kept: it holds the fetched Kaggle file
