"""Test fixtures: a real PostgreSQL (the local server, or an embedded one) and real Redis."""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from core import db
from core.settings import Settings, load_settings
from workers.demo import load_demo_data

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# Every query the suite sends runs on both execution paths (fast list completion and
# graphql-core's own) and any difference fails the request: the fast path's equivalence test.
# Subprocess servers started by tests inherit it.
os.environ.setdefault("VERIFY_FAST_PATH", "1")


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A superuser URL: TEST_DATABASE_URL, the local server, or an embedded server started here."""
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_ADMIN_URL)
    if _reachable(url):
        yield url
        return
    from graphql_api.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="mg-test-")) / "pg", delete_on_stop=True)
    try:
        yield server.start()
    finally:
        server.stop()


def _with_database(admin_url: str, name: str) -> str:
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def make_database(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Creates empty databases on demand (dropped at the end of the session); returns URLs."""
    created: list[str] = []

    def make() -> str:
        name = f"mg_test_{os.getpid()}_{secrets.token_hex(4)}"
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return _with_database(pg_admin_url, name)

    yield make
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrated_settings(url: str, **overrides: object) -> Settings:
    """Settings for `url` (migrated to head by the caller or here)."""
    return load_settings(**{"database_url": url, "redis_url": None, **overrides})


@pytest.fixture(scope="session")
def database_url(make_database: Callable[[], str]) -> str:
    """One database for the session, migrated to head, with the demo data loaded."""
    url = make_database()
    settings = migrated_settings(url)
    db.upgrade(settings)

    async def load() -> None:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            await load_demo_data(conn)
        finally:
            await conn.close()

    asyncio.run(load())
    return url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    """Settings for the session's demo database (no Redis)."""
    return migrated_settings(database_url)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The local Redis (started by .ci/run when down); a test database number of our own."""
    return os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    """An HTTP client on the app (lifespan run), over the session's demo database."""
    from graphql_api.app import create_app

    with TestClient(create_app(settings)) as test_client:
        yield test_client


GraphQL = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def gql(client: TestClient) -> GraphQL:
    """POST a GraphQL query; returns the decoded JSON body (asserting HTTP 200)."""

    def run(query: str, variables: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        response = client.post("/graphql", json=body, **kw)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    return run
