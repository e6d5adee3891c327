"""Session reads over sparse history: a page whose calendar span was narrowed to the days it
can plausibly need is read again over the whole span when the data is thinner than that."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.api.helpers import app_client, fresh_database, with_connection
from workers.symbols import SymbolInfo, upsert_symbols
from workers.upsert import upsert_bars

# Regular NYSE minutes (14:30 UTC = 09:30 New York in winter) four years apart.
OLD = [datetime(2020, 1, 6, 14, 30, tzinfo=UTC) + timedelta(minutes=i) for i in range(5)]
NEW = [datetime(2024, 1, 8, 14, 30, tzinfo=UTC) + timedelta(minutes=i) for i in range(3)]
PAGE = """query($first: Int, $after: String, $order: BarOrder!, $i: Interval!) {
  symbol(ticker: "GAP") { bars(interval: $i, first: $first, after: $after, order: $order) {
    edges { cursor node { time volume } } pageInfo { hasNextPage endCursor } } } }"""


@pytest.fixture(scope="module")
def gap_url(make_database: Callable[[], str]) -> str:
    url = fresh_database(make_database)

    async def load(conn: asyncpg.Connection) -> None:
        info = SymbolInfo("GAP", "Gap Synthetic", "NYSE", "equity", "USD", "", "XNYS")
        sid = (await upsert_symbols(conn, [info]))["GAP"]
        records = [
            (sid, "M1", t, 10.0, 11.0, 9.0, 10.5, float(100 + n)) for n, t in enumerate(OLD + NEW)
        ]
        await upsert_bars(conn, records, source="test")

    with_connection(url, load)
    return url


def page(api: Any, **variables: Any) -> dict[str, Any]:
    body = api.post("/graphql", json={"query": PAGE, "variables": variables}).json()
    assert "errors" not in body, body
    bars: dict[str, Any] = body["data"]["symbol"]["bars"]
    return bars


def times(bars: dict[str, Any]) -> list[str]:
    return [e["node"]["time"] for e in bars["edges"]]


def test_pages_across_a_four_year_gap_hold_every_bar(gap_url: str) -> None:
    iso = [t.isoformat() for t in OLD + NEW]
    with app_client(gap_url) as api:
        newest = page(api, first=6, order="NEWEST_FIRST", i="M1")
        assert times(newest) == iso[::-1][:6] and newest["pageInfo"]["hasNextPage"]
        rest = page(
            api, first=6, after=newest["pageInfo"]["endCursor"], order="NEWEST_FIRST", i="M1"
        )
        assert times(rest) == iso[::-1][6:] and not rest["pageInfo"]["hasNextPage"]
        oldest = page(api, first=4, order="OLDEST_FIRST", i="M1")
        assert times(oldest) == iso[:4]
        after = page(
            api, first=3, after=oldest["pageInfo"]["endCursor"], order="OLDEST_FIRST", i="M1"
        )
        assert times(after) == iso[4:7] and after["pageInfo"]["hasNextPage"]
        hourly = page(api, first=5, order="NEWEST_FIRST", i="H1")
        # One 09:30 bucket each day, four years apart.
        assert times(hourly) == [NEW[0].isoformat(), OLD[0].isoformat()]
        assert [e["node"]["volume"] for e in hourly["edges"]] == [
            sum(100.0 + n for n in range(5, 8)),
            sum(100.0 + n for n in range(5)),
        ]
