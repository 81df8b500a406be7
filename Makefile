# Two commands do all the set-up: `make run` (the study) and `make test` (the checks).
# Both create or refresh the project virtual environment first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
# Hugging Face stays offline unless params.yaml says `run.allow_hub: true`.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export DVC_NO_ANALYTICS := 1
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: run validate test venv bench site dry-run clean-venv help

help:
	@echo "make run    - set up, then rerun the whole study (dvc repro -> snakemake) and build the site"
	@echo "make validate - the study on the planted organisms too (params/planted.yaml), then the site"
	@echo "make test   - set up, then lint, type-check and run the test suite"
	@echo "make bench  - benchmarks (writes reports/bench/)"
	@echo "make site   - serve the built site locally"

# The environment is rebuilt when the pins change. torch is installed first, on its own, so that
# pip takes the local CPU build instead of resolving a CUDA build from the registry.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/mechatlas config check
	$(BIN)/dvc repro
	$(BIN)/mechatlas workflow sync all

# The validation study: lay params/planted.yaml over params.yaml (three planted organisms, each a model of
# its own), then run everything. It changes params.yaml; `git checkout params.yaml` returns to the default.
validate: $(STAMP)
	$(BIN)/mechatlas config apply params/planted.yaml
	$(MAKE) run

test: $(STAMP)
	$(BIN)/ruff check src tests workflow/scripts conftest.py
	$(BIN)/ruff format --check src tests workflow/scripts conftest.py
	$(BIN)/mypy
	$(BIN)/mechatlas config check
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: $(STAMP)
	$(BIN)/python -m mechatlas.bench $(BENCH_ARGS)

site: $(STAMP)
	$(BIN)/mechatlas site serve

dry-run: $(STAMP)
	$(BIN)/snakemake --profile workflow/profiles/default --dry-run all

clean-venv:
	rm -rf $(VENV)
