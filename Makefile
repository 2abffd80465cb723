# Thin wrappers over the virtualenv. `make run` and `make test` are the front door.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck migrate revision bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

## Start on http://127.0.0.1:8000 (embedded default unless DATABASE_URL/REDIS_URL are set).
run: $(VENV)/.runtime
	$(BIN)/uvicorn app.main:app --host $(HOST) --port $(PORT)

## The whole suite against the local PostgreSQL and Redis (see tests/conftest.py).
test: $(VENV)/.dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check app alembic tests scripts
	$(BIN)/ruff format --check app alembic tests scripts

typecheck: $(VENV)/.dev
	$(BIN)/mypy app

migrate: $(VENV)/.runtime
	$(BIN)/alembic upgrade head

## make revision m="add a column"
revision: $(VENV)/.runtime
	$(BIN)/alembic revision --autogenerate -m "$(m)"

## Requests per second and latency of GET /api/v1/users/me against GET /healthz (needs wrk).
bench: $(VENV)/.dev
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) data .pytest_cache
