"""Fixtures of the live-update tests: one demo database, two API processes, real Redis."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from core import db
from core.settings import Settings
from graphql_api.auth import Scope, create_key
from tests.conftest import migrated_settings
from tests.live.support import ApiProcess
from workers.demo import load_demo_data

#: Small limits, so the tests reach them quickly.
LIMITS = {
    "LIVE_QUEUE_SIZE": "8",
    "LIVE_MAX_SYMBOLS_PER_SUBSCRIPTION": "5",
    "LIVE_MAX_SUBSCRIPTIONS_PER_CONNECTION": "3",
    "LIVE_MAX_REPLAY_BARS": "500",
    "LIVE_MAX_BARS_PER_CHANGE": "2000",
    "LIVE_ALLOWED_ORIGINS": "https://charts.example.com",
    "LIVE_SOCKET_SEND_BUFFER": "16384",
}


@dataclass(frozen=True)
class LiveEnv:
    """The database, Redis, API keys and symbol ids the live tests share."""

    settings: Settings
    dsn: str
    redis_url: str
    ids: dict[str, int]
    read_key: str
    admin_key: str


@pytest.fixture(scope="session")
def live_env(make_database: Callable[[], str], redis_url: str) -> LiveEnv:
    """A database of our own with the demo data and two keys (read, admin)."""
    settings = migrated_settings(make_database(), redis_url=redis_url)
    db.upgrade(settings)

    async def prepare() -> tuple[dict[str, int], str, str]:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            await load_demo_data(conn)
            ids = {r["ticker"]: r["id"] for r in await conn.fetch("SELECT id, ticker FROM symbols")}
        finally:
            await conn.close()
        engine = db.create_engine(settings)
        try:
            read = await create_key(engine, "live reader", [Scope.READ])
            admin = await create_key(engine, "live admin", [Scope.ADMIN])
        finally:
            await engine.dispose()
        return ids, read.token, admin.token

    ids, read_key, admin_key = asyncio.run(prepare())
    return LiveEnv(settings, settings.asyncpg_dsn, redis_url, ids, read_key, admin_key)


@pytest.fixture(scope="session")
def api_pair(live_env: LiveEnv) -> Iterator[tuple[ApiProcess, ApiProcess]]:
    """Two API processes on the same database and Redis (started together)."""
    assert live_env.settings.database_url is not None
    env = {
        "DATABASE_URL": live_env.settings.database_url,
        "REDIS_URL": live_env.redis_url,
        **LIMITS,
    }
    log_dir = Path(tempfile.mkdtemp(prefix="mg-live-"))
    servers = (ApiProcess(env, log_dir, "api-a"), ApiProcess(env, log_dir, "api-b"))
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()
