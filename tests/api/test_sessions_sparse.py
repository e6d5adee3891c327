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
        # GAP2: three traded minutes, seven silent ones, one more at 09:40 New York.
        info2 = SymbolInfo("GAP2", "Gap Synthetic 2", "NYSE", "equity", "USD", "", "XNYS")
        sid2 = (await upsert_symbols(conn, [info2]))["GAP2"]
        minutes = [*NEW, NEW[0] + timedelta(minutes=10)]
        await upsert_bars(
            conn,
            [(sid2, "M1", t, 10.0, 11.0, 9.0, 10.5, 100.0) for t in minutes],
            source="test",
        )

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


FILLED = """query($fill: Fill!) { symbol(ticker: "GAP2") {
  bars(interval: M1, fill: $fill, order: OLDEST_FIRST, first: 20,
       from: "2024-01-08T14:30:00Z", to: "2024-01-08T14:40:00Z") {
    totalCount nodes { time open close volume filled prices { open high low close } } }
  series(interval: M1, fill: $fill, from: "2024-01-08T14:30:00Z", to: "2024-01-08T14:40:00Z") {
    time close volume filled prices { open close } } } }"""


def test_null_fill_leaves_the_prices_of_empty_slots_null(gap_url: str) -> None:
    slots = [(NEW[0] + timedelta(minutes=i)).isoformat() for i in range(10)]
    with app_client(gap_url) as api:
        got = {}
        for fill in ("NULL", "PREVIOUS"):
            body = api.post("/graphql", json={"query": FILLED, "variables": {"fill": fill}}).json()
            assert "errors" not in body, body
            got[fill] = body["data"]["symbol"]
    for sym in got.values():
        bars, series = sym["bars"], sym["series"]
        # Every regular minute of 09:30-09:39 New York: three traded, seven filled.
        assert [n["time"] for n in bars["nodes"]] == slots == series["time"]
        assert bars["totalCount"] == 10
        assert [n["filled"] for n in bars["nodes"]] == [False] * 3 + [True] * 7
        assert series["filled"] == [False] * 3 + [True] * 7
        for n in bars["nodes"][3:]:
            # The released non-null fields repeat the previous close, volume 0.
            assert (n["open"], n["close"], n["volume"]) == (10.5, 10.5, 0.0)
        traded = bars["nodes"][0]
        assert traded["prices"] == {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5}
    null_bars = [n["prices"] for n in got["NULL"]["bars"]["nodes"]]
    assert null_bars[3:] == [None] * 7
    assert got["NULL"]["series"]["prices"]["close"] == [10.5] * 3 + [None] * 7
    previous = [n["prices"] for n in got["PREVIOUS"]["bars"]["nodes"]]
    assert previous[3:] == [{"open": 10.5, "high": 10.5, "low": 10.5, "close": 10.5}] * 7
    assert got["PREVIOUS"]["series"]["prices"]["close"] == [10.5] * 10
