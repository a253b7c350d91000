# Siyu — make targets. `make run` and `make test` bootstrap .venv themselves.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint fmt bootstrap clean

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "Siyu needs Python 3.11 or newer (python3.11+ on PATH)"; exit 1; fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

bootstrap: $(STAMP)

## run: Siyu on the embedded SQLite database (var/siyu.db) with demo data
run: $(STAMP)
	@$(BIN)/siyu demo
	@$(BIN)/siyu serve --host $(HOST) --port $(PORT)

## test: the whole suite (SQLite always; PostgreSQL/Redis when SIYU_TEST_DATABASE_URL / SIYU_TEST_REDIS_URL are set)
test: $(STAMP)
	@$(BIN)/pytest

lint: $(STAMP)
	@$(BIN)/ruff check src tests bench scripts
	@$(BIN)/mypy

fmt: $(STAMP)
	@$(BIN)/ruff check --fix src tests bench scripts

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
