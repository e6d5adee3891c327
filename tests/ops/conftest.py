"""Fixtures of the operability tests: a small database of their own, apps, log capture.

The database is migrated but holds only a few series written here (no demo load: seconds
saved), so values such as ingest lag are known exactly.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from core import db
from core.logging_setup import JsonFormatter, RequestIdFilter
from core.settings import Settings
from graphql_api.app import create_app
from tests.conftest import migrated_settings
from workers.symbols import SymbolInfo, upsert_symbols
from workers.upsert import upsert_bars

#: The ticker whose newest M1 bar starts LAG_MINUTES before the fixture ran.
LAG_TICKER = "OPSLAG"
LAG_MINUTES = 3
#: A ticker with data but not in METRICS_LAG_TICKERS (must not become a label).
OTHER_TICKER = "OPSOTHER"
DAILY_BARS = 40


@dataclass(frozen=True)
class OpsData:
    """The database and what was written to it."""

    url: str
    newest_lag_bar: datetime


def _bars(symbol_id: int, timeframe: str, times: list[datetime]) -> list[tuple[object, ...]]:
    return [
        (symbol_id, timeframe, ts, 10.0 + i, 11.0 + i, 9.0 + i, 10.5 + i, 1000.0 + i)
        for i, ts in enumerate(times)
    ]


@pytest.fixture(scope="session")
def ops_data(make_database: Callable[[], str]) -> OpsData:
    """A migrated database with a few series: M1 bars up to a known time, D1 bars."""
    url = make_database()
    settings = migrated_settings(url)
    db.upgrade(settings)
    newest = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=LAG_MINUTES)

    async def load() -> None:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            ids = await upsert_symbols(
                conn, [SymbolInfo(LAG_TICKER, "Ops lag"), SymbolInfo(OTHER_TICKER, "Ops other")]
            )
            minutes = [newest - timedelta(minutes=m) for m in range(30, -1, -1)]
            days = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=d) for d in range(40)]
            await upsert_bars(conn, _bars(ids[LAG_TICKER], "M1", minutes))
            await upsert_bars(conn, _bars(ids[LAG_TICKER], "D1", days))
            await upsert_bars(conn, _bars(ids[OTHER_TICKER], "M1", minutes))
        finally:
            await conn.close()

    asyncio.run(load())
    return OpsData(url, newest)


def ops_settings(data: OpsData, **overrides: object) -> Settings:
    """Settings for the ops database: no Redis, lag exported for LAG_TICKER, fresh readings."""
    base: dict[str, object] = {
        "metrics_lag_tickers": LAG_TICKER,
        "metrics_db_refresh_seconds": 0,
        "rate_limit_cost_per_minute": 0,
        # One execution per request, as in production (the suite's default runs each twice).
        "verify_fast_path": False,
    }
    return migrated_settings(data.url, **{**base, **overrides})


@pytest.fixture
def app_client(ops_data: OpsData) -> Iterator[Callable[..., TestClient]]:
    """Opens apps on the ops database with setting overrides; closes them after the test."""
    opened: list[TestClient] = []

    def open_app(**overrides: object) -> TestClient:
        client = TestClient(create_app(ops_settings(ops_data, **overrides)))
        client.__enter__()
        opened.append(client)
        return client

    yield open_app
    for client in opened:
        client.__exit__(None, None, None)


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The /metrics exposition as {(sample name, sorted labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float | None:
    """One sample's value (None when absent)."""
    return metrics.get((name, tuple(sorted(labels.items()))))


class LogLines:
    """JSON lines written by the service's loggers during a test."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def records(self, logger: str | None = None) -> list[dict[str, Any]]:
        """Every line, decoded; only those of `logger` when given."""
        import json

        lines = [json.loads(line) for line in self.stream.getvalue().splitlines() if line]
        return [r for r in lines if logger is None or r["logger"] == logger]


@pytest.fixture
def json_logs() -> Iterator[LogLines]:
    """Captures `market_graphql.*` records as the JSON formatter writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("market_graphql")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield LogLines(stream)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
