# Quick start: `make demo` then `make test`. Both create .venv and install into it when needed.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# pip's own chatter (index warnings) is noise here; errors still show.
PIP    := $(BIN)/python -m pip --quiet --quiet

.PHONY: help venv demo test test-fast serve mlflow-ui lock bench docs clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing the locked dependency set into $(VENV) (first time takes a few minutes)..."
	$(PIP) install -r requirements.lock
	$(PIP) install --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)  ## Create .venv and install tiercast with its locked dependencies

demo: $(STAMP)  ## Run the main job on the bundled CDNOW data
	$(BIN)/tiercast demo

test: $(STAMP)  ## Run the test suite
	$(BIN)/python -m pytest

serve: $(STAMP)  ## Start the prediction service on 127.0.0.1:3000
	$(BIN)/tiercast serve

mlflow-ui: $(STAMP)  ## Open the MLflow UI on the demo's store
	$(BIN)/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}

docs: $(STAMP)  ## Regenerate docs/features.md from the feature registry
	$(BIN)/python -m tiercast.features.docs

bench: $(STAMP)  ## Run the benchmarks (slow: ten-million-row worlds)
	$(BIN)/python benchmarks/bench_simulate.py
	$(BIN)/python benchmarks/bench_batch.py --runs 2
	$(BIN)/python benchmarks/bench_service.py
	$(BIN)/python benchmarks/bench_database.py

lock:  ## Re-resolve the dependency ranges in pyproject.toml into requirements.lock
	rm -rf /tmp/tiercast-lock && $(PYTHON) -m venv /tmp/tiercast-lock
	/tmp/tiercast-lock/bin/python -m pip --quiet --quiet install "setuptools>=69" wheel -e ".[dev,spark]"
	(echo "# Resolved set for tiercast + dev and spark extras on Python 3.11 (regenerate: make lock)."; \
	 /tmp/tiercast-lock/bin/python -m pip freeze --all | grep -v -E '^(pip|tiercast)[= ]' | grep -v '^-e') > requirements.lock

clean:  ## Remove the virtual environment and local outputs
	rm -rf $(VENV) outputs mlflow.db mlartifacts
