"""Shared helpers of the security, limits and robustness tests.

Kept out of conftest on purpose: the test modules import what they use from here. The demo
database is created once per test process (keys are written into it, so it is ours, not the
session database of the other suites).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psycopg
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from core import db
from core.settings import Settings
from graphql_api.app import create_app
from graphql_api.auth import Scope, create_key, revoke_key
from graphql_api.embedded import EmbeddedPostgres
from tests.conftest import migrated_settings
from workers.demo import load_demo_data

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"

#: Tickers of the demo data: daily stocks and synthetic one-minute symbols.
DAILY_TICKERS = ("AAPL", "FB", "GOOG", "IBM", "MSFT")
INTRADAY_TICKERS = ("ACME", "GLOBX", "INITECH", "UMBRL", "COINX")
DEMO_TICKERS = DAILY_TICKERS + INTRADAY_TICKERS

_demo: dict[str, str] = {}


def demo_database(make_database: Callable[[], str]) -> str:
    """A migrated database with the demo data, created on first use in this process."""
    if "url" not in _demo:
        url = make_database()
        settings = migrated_settings(url)
        db.upgrade(settings)
        asyncio.run(_load_demo(settings))
        _demo["url"] = url
    return _demo["url"]


async def _load_demo(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await load_demo_data(conn)
    finally:
        await conn.close()


@contextmanager
def embedded_demo_postgres(data_dir: Path) -> Iterator[tuple[EmbeddedPostgres, str]]:
    """A PostgreSQL of the test's own (pgserver wheel), migrated, with the demo data.

    For tests that stop, restart or freeze the server itself; stopped at the end (the data
    directory is the caller's to remove).
    """
    server = EmbeddedPostgres(data_dir)
    url = server.start()
    try:
        settings = migrated_settings(url)
        db.upgrade(settings)
        asyncio.run(_load_demo(settings))
        yield server, url
    finally:
        server.stop()


def create_keys(url: str, **scopes: list[Scope]) -> dict[str, str]:
    """Create one API key per keyword (name=scopes); returns name -> bearer token."""

    async def run() -> dict[str, str]:
        engine = db.create_engine(migrated_settings(url), pool=False)
        try:
            return {
                name: (await create_key(engine, name, wanted)).token
                for name, wanted in scopes.items()
            }
        finally:
            await engine.dispose()

    return asyncio.run(run())


def revoke(url: str, token: str) -> bool:
    """Revoke the key of `token` (by its public prefix)."""

    async def run() -> bool:
        engine = db.create_engine(migrated_settings(url), pool=False)
        try:
            return await revoke_key(engine, token.split("_")[1])
        finally:
            await engine.dispose()

    return asyncio.run(run())


@contextmanager
def app_client(url: str, **overrides: Any) -> Iterator[TestClient]:
    """A TestClient (lifespan run) on a fresh app over `url` with settings overrides."""
    with TestClient(create_app(migrated_settings(url, **overrides))) as client:
        yield client


def post(
    client: TestClient | httpx.Client,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    accept: str | None = GRAPHQL_RESPONSE,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST one GraphQL request; returns the raw response (status not checked)."""
    sent = dict(headers or {})
    if accept is not None:
        sent["accept"] = accept
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    return client.post("/graphql", json=body, headers=sent)


def codes(body: dict[str, Any]) -> list[str]:
    """The `extensions.code` of every error in a response body."""
    return [e.get("extensions", {}).get("code") for e in body.get("errors") or []]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve `app` with real uvicorn in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn exited during start-up"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def database_name(url: str) -> str:
    """The database part of a URL."""
    return str(make_url(url).database)


def app_connections(admin_url: str, url: str) -> list[tuple[str, str]]:
    """(state, query) of the service's connections to the database of `url`."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT coalesce(state, ''), query FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = 'market-graphql'",
            (database_name(url),),
        ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
