# syntax=docker/dockerfile:1
# Two stages: the build stage has pip's caches and any compiler a wheel might need;
# the runtime stage gets only the finished virtualenv and the code.
# The base image is a build argument so that machines without registry access can build
# on a stand-in (docker/local-images.sh); everywhere else it is the official image.
# Both stages must use the same one: the virtualenv links to the base's python.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
# requirements.txt only: the test tools of requirements-dev.txt have no place in production.
COPY requirements.txt /tmp/requirements.txt
# Behind a TLS-intercepting proxy (a company network), pass a CA bundle that includes its
# CA as the optional secret `ca` (`--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt`):
# pip trusts it for this step only, and it is in no layer of either stage.
RUN --mount=type=secret,id=ca,target=/run/secrets/ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt


FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8000

# A fixed uid, so that volume permissions and Kubernetes runAsNonRoot can rely on it.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# Owned by root, not by the app user: a compromised process cannot rewrite its own code.
COPY alembic.ini ./
COPY alembic ./alembic
COPY app ./app
COPY docker/entrypoint.sh /usr/local/bin/entrypoint.sh

# Numeric, so that the runtime can check it is not root without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000

# /healthz does not touch PostgreSQL or Redis: a dependency outage must not make the
# orchestrator restart every replica (it answers 503 per request instead, see README).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"]

# Exec form, and the script ends in `exec uvicorn`: uvicorn is PID 1 and gets SIGTERM itself.
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
