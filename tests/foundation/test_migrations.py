"""Migrations: up, down, up again on an empty database, and the code's tables match them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine as create_sync_engine

from core import db
from core.tables import include_name, metadata
from tests.conftest import migrated_settings


def _diff(url: str) -> list[object]:
    engine = create_sync_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"include_name": include_name, "compare_type": True}
            )
            return list(compare_metadata(ctx, metadata))
    finally:
        engine.dispose()


def test_up_down_up_and_metadata_matches(make_database: Callable[[], str]) -> None:
    url = make_database()
    settings = migrated_settings(url)
    db.upgrade(settings)
    assert _diff(url) == []
    db.downgrade(settings, "base")
    remaining = asyncio.run(_tables(settings.asyncpg_dsn))
    assert remaining <= {"alembic_version"}, remaining
    db.upgrade(settings)
    assert _diff(url) == []


async def _tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in rows}
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def migrated_dsn(make_database: Callable[[], str]) -> str:
    settings = migrated_settings(make_database())
    db.upgrade(settings)
    return settings.asyncpg_dsn


def _bar(**overrides: object) -> tuple[object, ...]:
    bar: dict[str, object] = {
        "symbol_id": 1,
        "timeframe": "D1",
        "ts": datetime(2020, 1, 2, tzinfo=UTC),
        "open": 10.0,
        "high": 12.0,
        "low": 9.0,
        "close": 11.0,
        "volume": 100.0,
    }
    bar.update(overrides)
    return tuple(bar.values())


@pytest.mark.parametrize(
    ("overrides", "constraint"),
    [
        ({"high": 10.5}, "bars_high_is_max"),
        ({"low": 10.5}, "bars_low_is_min"),
        ({"volume": -1.0}, "bars_volume_non_negative"),
        ({"open": -1.0, "low": -2.0}, "bars_prices_positive"),
        ({"timeframe": "X7"}, "bars_timeframe_known"),
    ],
)
def test_check_constraints_reject_impossible_bars(
    migrated_dsn: str, overrides: dict[str, object], constraint: str
) -> None:
    async def insert() -> None:
        conn = await asyncpg.connect(migrated_dsn)
        try:
            await conn.execute(
                "INSERT INTO bars VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", *_bar(**overrides)
            )
        finally:
            await conn.close()

    with pytest.raises(asyncpg.CheckViolationError) as err:
        asyncio.run(insert())
    assert err.value.constraint_name == constraint


def test_partitions_are_created_ahead_on_demand(migrated_dsn: str) -> None:
    async def run() -> tuple[int, int, str]:
        conn = await asyncpg.connect(migrated_dsn)
        try:
            created = await conn.fetchval(
                "SELECT ensure_bar_partitions('2040-06-01Z', '2041-02-01Z')"
            )
            again = await conn.fetchval(
                "SELECT ensure_bar_partitions('2040-06-01Z', '2041-02-01Z')"
            )
            await conn.execute(
                "INSERT INTO bars VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                *_bar(ts=datetime(2041, 1, 5, tzinfo=UTC)),
            )
            part = await conn.fetchval(
                "SELECT tableoid::regclass::text FROM bars WHERE ts = '2041-01-05Z'"
            )
            return created, again, part
        finally:
            await conn.close()

    created, again, part = asyncio.run(run())
    assert (created, again, part) == (2, 0, "bars_y2041")
