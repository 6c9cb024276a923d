# Brigade: `make run` serves the demo kitchen; `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export FLASK_APP := app

.PHONY: run test setup translations bench clean-demo

$(BIN)/python:
	@.ci/ensure-venv-support
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	@touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install -q -r requirements-dev.txt
	@touch $@

translations: $(VENV)/.runtime
	$(BIN)/pybabel compile -d translations 2>&1 | grep -v "^compiling" || true

setup: $(VENV)/.runtime translations
	$(BIN)/python -m app.instance init-secrets
	$(BIN)/flask db upgrade
	$(BIN)/flask checklists load
	$(BIN)/flask seed-demo

# The demo: embedded broker, ingest and simulated fridges in one process (no Mosquitto needed).
run: setup
	BRIGADE_SIMULATE=$${BRIGADE_SIMULATE:-true} exec $(BIN)/flask serve

test: $(VENV)/.dev translations
	.ci/system-deps
	$(BIN)/pytest

bench: $(VENV)/.dev translations
	$(BIN)/python bench/tablet_tickoff.py
