# syntax=docker/dockerfile:1
# The API and the worker in one image: `market-graphql serve` by default; compose.yaml runs
# `market-graphql worker` and a one-shot `market-graphql migrate` from the same image.
#   docker build -t market-graphql .
#   docker run -e DATABASE_URL=postgresql://… -e REDIS_URL=redis://… -p 8000:8000 market-graphql

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Every dependency ships manylinux wheels: no compiler needed.
COPY pyproject.toml README.md LICENSE ./
COPY core ./core
COPY indicators ./indicators
COPY graphql_api ./graphql_api
COPY loaders ./loaders
COPY workers ./workers
COPY migrations ./migrations
# The indicator kernels compiled once here, into numba's cache: a new container's first
# indicator requests then skip the compile (about 9 s over all kernels).
RUN /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/market-graphql --help >/dev/null \
 && cd / && NUMBA_CACHE_DIR=/opt/numba-cache /opt/venv/bin/python -m indicators.warm

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    NUMBA_CACHE_DIR=/opt/numba-cache
COPY --from=build /opt/venv /opt/venv
# Writable by the app user: numba recompiles into it when the host's CPU differs.
COPY --from=build --chown=10001:10001 /opt/numba-cache /opt/numba-cache
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --create-home --shell /usr/sbin/nologin app
WORKDIR /app
USER app:app
EXPOSE 8000
# /healthz answers while the process serves; /readyz also checks PostgreSQL, Redis and the
# schema revision (use it for the load balancer's readiness).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=2)"]
# Without DATABASE_URL `serve` would start an embedded PostgreSQL: always set it in a container.
CMD ["market-graphql", "serve", "--host", "0.0.0.0", "--port", "8000"]
