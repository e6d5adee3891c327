"""Fixtures for the ingest tests: one migrated database, emptied before each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from core import db
from core.settings import Settings
from tests.conftest import migrated_settings
from tests.providers.conftest import replay_server  # noqa: F401  (the session's replay server)

# Dropping a database costs a checkpoint, so the ingest tests share one and empty it instead.
_EMPTY = (
    "TRUNCATE symbols, bars, bar_changes, corporate_actions, ingest_runs, procrastinate_events, "
    "procrastinate_periodic_defers, procrastinate_jobs, procrastinate_workers "
    "RESTART IDENTITY CASCADE"
)


@pytest.fixture(scope="session")
def ingest_database(make_database: Callable[[], str]) -> Settings:
    """A database for the ingest tests, migrated to head once."""
    settings = migrated_settings(make_database())
    db.upgrade(settings)
    return settings


@pytest.fixture
async def fresh(ingest_database: Settings) -> Settings:
    """Settings for the ingest database, emptied of data and jobs (no demo data)."""
    connection = await asyncpg.connect(ingest_database.asyncpg_dsn)
    try:
        await connection.execute(_EMPTY)
    finally:
        await connection.close()
    return ingest_database


@pytest.fixture
async def conn(fresh: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the emptied database."""
    connection = await asyncpg.connect(fresh.asyncpg_dsn)
    try:
        yield connection
    finally:
        await connection.close()
