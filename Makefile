# Thin wrappers over the virtualenv. `make run` and `make test` are the front door.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run edge test lint typecheck migrate revision bench clean

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
	$(BIN)/uvicorn app.main:app --host $(HOST) --port $(PORT) --ws-per-message-deflate false --ws-max-size 65536 --ws app.live.protocol:LiveWebSocketProtocol

## The demo SPA (web/) and the API through Caddy, as deployed: https://localhost:8443.
## Needs caddy (apt-get install caddy) and `make run` in another terminal.
edge:
	SITE_ADDRESS=localhost:8443 HTTPS_PORT=8443 HTTP_PORT=8080 CADDY_ADMIN=localhost:2019 \
	BACKEND_HOST=$(HOST) BACKEND_PORT=$(PORT) SPA_ROOT=$(CURDIR)/web \
	XDG_DATA_HOME=$(CURDIR)/data/caddy XDG_CONFIG_HOME=$(CURDIR)/data/caddy \
	caddy run --config Caddyfile --adapter caddyfile

## The whole suite against the local PostgreSQL and Redis (see tests/conftest.py).
## tests/deploy also runs Caddy and Chromium from Debian's packages when they are installed.
test: $(VENV)/.dev
	@command -v caddy >/dev/null || echo "make test: caddy is not installed: SKIPPING the edge, scale-out and browser tests (apt-get install caddy chromium)"
	@command -v chromium >/dev/null || echo "make test: chromium is not installed: SKIPPING the browser tests (apt-get install chromium)"
	@if command -v podman >/dev/null; then \
	  echo "make test: podman found: tests/containers build the image and run the compose stack in it (about 4 min, plus about 9 min once per machine for the stand-in base images; figures at the end)"; \
	else \
	  echo "make test: podman is not installed: SKIPPING the container tests (tests/containers; apt-get install podman runc netavark aardvark-dns debootstrap)"; \
	fi
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check app alembic tests bench
	$(BIN)/ruff format --check app alembic tests bench

typecheck: $(VENV)/.dev
	$(BIN)/mypy app

migrate: $(VENV)/.runtime
	$(BIN)/alembic upgrade head

## make revision m="add a column"
revision: $(VENV)/.runtime
	$(BIN)/alembic revision --autogenerate -m "$(m)"

## The benchmarks of bench/ (needs wrk): users/me against /healthz, every request next to a bare
## FastAPI app, a login storm, the WebSocket fan-out, GET /items on 1k and 1M items.
## make bench BENCH_ARGS="--duration 5 --skip-fanout" (python -m bench --help lists them).
bench: $(VENV)/.dev
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache
