# Thin wrappers over the virtualenv. `make run` and `make test` are the front door;
# `make help` lists the targets (the first `##` line above each is its summary).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.DEFAULT_GOAL := help
.PHONY: help run edge test lint typecheck hooks migrate revision bench clean

## List the targets, one line each.
help:
	@awk '/^## / { if (!summary) summary = substr($$0, 4); next } \
	     /^[a-z][a-z-]*:/ { if (summary) printf "  make %-10s %s\n", substr($$1, 1, length($$1) - 1), summary } \
	     { summary = "" }' $(MAKEFILE_LIST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

## Serve the API on http://127.0.0.1:8000 (embedded default unless DATABASE_URL/REDIS_URL are set).
run: $(VENV)/.runtime
	$(BIN)/uvicorn app.main:app --host $(HOST) --port $(PORT) --ws-per-message-deflate false --ws-max-size 65536 --ws app.live.protocol:LiveWebSocketProtocol

## The demo SPA (web/) and the API through Caddy, as deployed: https://localhost:8443.
## Needs caddy (apt-get install caddy) and `make run` in another terminal.
edge:
	SITE_ADDRESS=localhost:8443 HTTPS_PORT=8443 HTTP_PORT=8080 CADDY_ADMIN=localhost:2019 \
	BACKEND_HOST=$(HOST) BACKEND_PORT=$(PORT) SPA_ROOT=$(CURDIR)/web \
	XDG_DATA_HOME=$(CURDIR)/data/caddy XDG_CONFIG_HOME=$(CURDIR)/data/caddy \
	caddy run --config Caddyfile --adapter caddyfile

## The whole suite (PYTEST_ARGS="tests/items -k cursor" for part of it).
## PostgreSQL and Redis: the running ones when they answer, else throwaway servers started
## from the installed programs (tests/fixtures/backing.py). tests/deploy also runs Caddy
## and Chromium from Debian's packages when they are installed.
test: $(VENV)/.dev
	@command -v caddy >/dev/null || echo "make test: caddy is not installed: SKIPPING the edge, scale-out and browser tests (apt-get install caddy chromium)"
	@command -v chromium >/dev/null || echo "make test: chromium is not installed: SKIPPING the browser tests (apt-get install chromium)"
	@if command -v podman >/dev/null; then \
	  echo "make test: podman found: tests/containers build the image and run the compose stack in it (about 4 min, plus about 9 min once per machine for the stand-in base images; figures at the end)"; \
	else \
	  echo "make test: podman is not installed: SKIPPING the container tests (tests/containers; apt-get install podman runc netavark aardvark-dns iptables debootstrap)"; \
	fi
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## ruff check and ruff format --check, as the pre-commit hooks run them.
lint: $(VENV)/.dev
	$(BIN)/ruff check app alembic tests bench
	$(BIN)/ruff format --check app alembic tests bench

## mypy on app/, as the pre-commit hook runs it.
typecheck: $(VENV)/.dev
	$(BIN)/mypy app

## alembic upgrade head on DATABASE_URL.
migrate: $(VENV)/.runtime
	$(BIN)/alembic upgrade head

## A new Alembic revision from the models: make revision m="add a column".
revision: $(VENV)/.runtime
	$(BIN)/alembic revision --autogenerate -m "$(m)"

## The benchmarks, about six minutes (needs wrk; BENCH_ARGS="--help" lists the options).
## The benchmarks of bench/: users/me against /healthz, every request next to a bare
## FastAPI app, a login storm, the WebSocket fan-out, GET /items on 1k and 1M items.
## make bench BENCH_ARGS="--duration 5 --skip-fanout" (python -m bench --help lists them).
bench: $(VENV)/.dev
	$(BIN)/python -m bench $(BENCH_ARGS)

## Install the pre-commit hooks (.pre-commit-config.yaml) into this clone's .git.
hooks: $(VENV)/.dev
	$(BIN)/pre-commit install

## Remove the virtualenv, the embedded default's data and pytest's cache.
clean:
	rm -rf $(VENV) data .pytest_cache
