"""Dockerfile, compose.yaml and .dockerignore, checked without a container engine: services and
their wiring, settings that load, CLI commands that exist, the connection budget against
PostgreSQL's max_connections, and the image's health check run against a real server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
import yaml
from typer.testing import CliRunner

from core.settings import Settings, load_settings
from graphql_api.cli import app as cli_app
from workers.queue import create_app as create_queue_app

REPO = Path(__file__).resolve().parents[2]
APP_SERVICES = ("migrate", "api", "worker")
#: superuser_reserved_connections (PostgreSQL's default) plus room for psql, a migration and
#: the short-lived connection of a requestIngest mutation.
RESERVED_CONNECTIONS = 3 + 10


def _defaults(value: str) -> str:
    """Compose's `${NAME:-default}` with NAME unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = compose["services"]
    return result


def env_of(service: dict[str, Any]) -> dict[str, str]:
    return {k: _defaults(str(v)) for k, v in service["environment"].items()}


def settings_of(service: dict[str, Any]) -> Settings:
    return load_settings(**{k.lower(): v for k, v in env_of(service).items()})


def option(command: list[str], name: str, default: str) -> str:
    return command[command.index(name) + 1] if name in command else default


def test_services_and_images(services: dict[str, Any]) -> None:
    assert set(services) == {"postgres", "postgres-replica", "redis", *APP_SERVICES}
    assert services["postgres"]["image"] == "postgres:16"
    assert services["postgres-replica"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1, "API, worker and migrate run one image"
    assert all(services[name]["build"] == "." for name in APP_SERVICES)


def test_app_services_reach_postgres_and_redis(services: dict[str, Any]) -> None:
    pg_env = {k: _defaults(str(v)) for k, v in services["postgres"]["environment"].items()}
    for name in APP_SERVICES:
        env = env_of(services[name])
        db = urlsplit(env["DATABASE_URL"])
        assert (db.scheme, db.hostname, db.port) == ("postgresql", "postgres", 5432), name
        assert (db.username, db.password) == (pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"])
        assert db.path == f"/{pg_env['POSTGRES_DB']}"
        redis = urlsplit(env["REDIS_URL"])
        assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379), name
        settings = settings_of(services[name])  # every variable is valid for the service
        assert settings.database_url == env["DATABASE_URL"]
        assert settings.redis_url == env["REDIS_URL"]


def test_the_api_reads_from_a_streaming_replica_of_the_primary(services: dict[str, Any]) -> None:
    primary, replica = services["postgres"], services["postgres-replica"]
    assert "wal_level=replica" in primary["command"]
    init = REPO / "deploy/postgres/allow-replication.sh"
    assert (
        f"./{init.relative_to(REPO)}:/docker-entrypoint-initdb.d/allow-replication.sh:ro"
        in (primary["volumes"])
    )
    assert "host replication all all scram-sha-256" in init.read_text()
    script = replica["command"][-1]
    assert "pg_basebackup -h postgres -U market" in script and " -R " in script
    assert "exec postgres" in script
    assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in APP_SERVICES:
        settings = settings_of(services[name])
        (url,) = settings.read_urls
        assert (url.host, url.port, url.database) == ("postgres-replica", 5432, "market"), name
    # The replica serves the API's pools and each process's Min-Version probe connection
    # (core/replicas.py): they must fit its max_connections too.
    api = services["api"]
    processes = api["deploy"]["replicas"] * int(option(api["command"], "--workers", "1"))
    api_settings = settings_of(api)
    used = processes * (api_settings.pool_size + api_settings.max_overflow + 1)
    allowed = int(script.split("max_connections=")[1].split()[0]) - RESERVED_CONNECTIONS
    assert (used, allowed) == (44, 87)


def test_migrate_runs_once_before_api_and_worker(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["market-graphql", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert services[name]["restart"] == "unless-stopped"
    assert services["api"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["worker"]["command"] == ["market-graphql", "worker"]
    assert services["worker"]["healthcheck"] == {"disable": True}  # no HTTP port to probe


def test_api_serves_on_all_interfaces_in_replicas(services: dict[str, Any]) -> None:
    api = services["api"]
    command = api["command"]
    assert command[:2] == ["market-graphql", "serve"]
    assert option(command, "--host", "") == "0.0.0.0"
    assert option(command, "--port", "") == "8000"
    assert api["deploy"]["replicas"] == 2
    assert api["ports"] == ["8000-8001:8000"]  # one host port per replica


def test_every_compose_command_exists_in_the_cli(services: dict[str, Any]) -> None:
    runner = CliRunner()
    for name in APP_SERVICES:
        command = services[name]["command"]
        assert command[0] == "market-graphql"
        result = runner.invoke(cli_app, [command[1], "--help"])
        assert result.exit_code == 0, (name, result.output)
        for flag in (part for part in command[2:] if part.startswith("--")):
            assert flag in result.output, (name, flag)


def connection_budget(services: dict[str, Any]) -> tuple[int, int]:
    """(connections the services may open at most, what PostgreSQL allows them)."""
    api = services["api"]
    processes = api["deploy"]["replicas"] * int(option(api["command"], "--workers", "1"))
    api_settings = settings_of(api)
    # Per API process: the SQLAlchemy pool, plus one connection held by the live-updates
    # listener (graphql_api.live).
    per_process = api_settings.pool_size + api_settings.max_overflow + 1
    worker_settings = settings_of(services["worker"])
    queue = create_queue_app(worker_settings)
    # procrastinate's pool, plus one asyncpg connection per running job (workers.tasks).
    per_worker = queue.connector._pool_args["max_size"] + worker_settings.worker_concurrency  # type: ignore[attr-defined]
    workers = services["worker"].get("deploy", {}).get("replicas", 1)
    pg_command = services["postgres"]["command"]
    max_connections = int(
        next(arg.split("=", 1)[1] for arg in pg_command if arg.startswith("max_connections="))
    )
    return processes * per_process + workers * per_worker, max_connections - RESERVED_CONNECTIONS


def test_connection_budget_fits_max_connections(services: dict[str, Any]) -> None:
    used, allowed = connection_budget(services)
    assert (used, allowed) == (2 * 2 * (5 + 5 + 1) + (2 * 2 + 4), 100 - 13)
    assert used <= allowed
    # The check bites: the default pool (10 + 20) in the same processes would not fit.
    bigger = json.loads(json.dumps(services))
    bigger["api"]["environment"] |= {"POOL_SIZE": "10", "MAX_OVERFLOW": "20"}
    used, allowed = connection_budget(bigger)
    assert used > allowed


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", dockerfile)
    rows = [line.strip() for line in joined.splitlines()]
    return [
        (row.split(None, 1)[0].upper(), row.split(None, 1)[1] if " " in row else "")
        for row in rows
        if row and not row.startswith("#")
    ]


def test_dockerfile_slim_non_root_and_serves_on_all_interfaces(dockerfile: str) -> None:
    steps = instructions(dockerfile)
    froms = [arg for op, arg in steps if op == "FROM"]
    assert froms and all(arg.startswith("python:3.11-slim") for arg in froms)
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    final_stage = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    assert any(op == "USER" for op, _ in final_stage), "the runtime stage must drop root"
    [cmd] = [json.loads(arg) for op, arg in steps if op == "CMD"]
    assert cmd[:2] == ["market-graphql", "serve"]
    assert option(cmd, "--host", "") == "0.0.0.0"
    [expose] = [arg for op, arg in steps if op == "EXPOSE"]
    assert expose == option(cmd, "--port", "")


def test_dockerfile_copies_every_package_and_what_pyproject_needs(dockerfile: str) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    copied = {
        src.rstrip("/")
        for op, arg in instructions(dockerfile)
        if op == "COPY" and not arg.startswith("--from")
        for src in arg.split()[:-1]
    }
    needed = {*packages, "pyproject.toml", pyproject["project"]["readme"]}
    assert needed <= copied, needed - copied
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert not (copied & ignored), "the Dockerfile copies an ignored path"
    assert {".git", ".venv", ".env", "clients", "tests"} <= ignored


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[int]:
    """The app on a real uvicorn in a thread; yields its port."""
    from graphql_api.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="error")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not instance.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        instance.should_exit = True
        thread.join(timeout=15)


def test_image_healthcheck_probes_healthz(dockerfile: str, server: int) -> None:
    [healthcheck] = [arg for op, arg in instructions(dockerfile) if op == "HEALTHCHECK"]
    probe = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    assert probe[0] == "python" and "/healthz" in probe[-1]
    probe[0] = sys.executable
    assert httpx.get(f"http://127.0.0.1:{server}/healthz").json() == {"status": "ok"}
    ok = subprocess.run(probe, env={"PORT": str(server)}, capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    down = subprocess.run(probe, env={"PORT": str(closed)}, capture_output=True, timeout=30)
    assert down.returncode != 0


def test_the_image_compiles_the_indicator_kernels_into_numbas_cache(tmp_path: Path) -> None:
    """The build step the Dockerfile runs fills a cache the runtime stage points numba at."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "NUMBA_CACHE_DIR=/opt/numba-cache" in dockerfile
    assert "python -m indicators.warm" in dockerfile
    assert "COPY --from=build --chown=10001:10001 /opt/numba-cache /opt/numba-cache" in dockerfile
    cache = tmp_path / "numba"
    done = subprocess.run(
        [sys.executable, "-m", "indicators.warm"],
        cwd=tmp_path,
        env={**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert any(cache.rglob("*.nbi")), "no numba cache index written"
