"""DataLoader batching: per-symbol fields cost a fixed number of SQL statements per request,
whatever the number of symbols; aliases with different arguments batch apart, correctly.

Statements are counted with a SQLAlchemy `before_cursor_execute` listener on apps built with
caching off, so every request really reads PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from tests.api.helpers import (
    COUNTING,
    app_client,
    count_statements,
    frame_of_series,
    ohlcv,
    resample,
    run,
    scratch_database,
    store_bars,
    stored_bars,
)
from workers.symbols import SymbolInfo

ISSUE_QUERY = """query($n: Int!, $f: SymbolFilter) { symbols(first: $n, filter: $f) { edges { node {
    ticker latestBar { close } bars(first: 100) { edges { node { close } } } } } } }"""

DAILY = [f"S{i:02d}" for i in range(50)]
MINUTE = [f"T{i:02d}" for i in range(10)]


@pytest.fixture(scope="module")
def many_url(make_database: Callable[[], str]) -> str:
    """50 symbols with daily bars (different lengths and ends) and 10 with one-minute bars."""
    url = scratch_database(make_database)
    infos = {t: SymbolInfo(t, f"{t} Batch Co.", "MANY") for t in DAILY + MINUTE}
    daily = {
        t: ohlcv(pd.date_range("2023-01-02", periods=120 + 3 * i, freq="D", tz="UTC"), seed=i)
        for i, t in enumerate(DAILY)
    }
    store_bars(url, daily, "D1", infos)
    minute = {
        t: ohlcv(pd.date_range("2024-05-06T13:00Z", periods=150 + 7 * i, freq="min"), seed=100 + i)
        for i, t in enumerate(MINUTE)
    }
    store_bars(url, minute, "M1", infos)
    return url


@pytest.fixture(scope="module")
def many(many_url: str) -> Iterator[TestClient]:
    with app_client(many_url, **COUNTING) as client:
        yield client


@pytest.fixture(scope="module")
def demo(settings: Settings) -> Iterator[TestClient]:
    assert settings.database_url
    with app_client(settings.database_url, **COUNTING) as client:
        yield client


def statements_for(client: TestClient, query: str, variables: dict[str, Any]) -> tuple[int, Any]:
    with count_statements(client) as statements:
        data = run(client, query, variables)
    return len(statements), data


def check_issue_query_result(url: str, data: dict[str, Any], base: dict[str, str]) -> None:
    """Each symbol got its own newest bar and its own newest 100 bars."""
    for edge in data["symbols"]["edges"]:
        node = edge["node"]
        stored = stored_bars(url, node["ticker"], base[node["ticker"]])
        daily = resample(stored, "D1", base[node["ticker"]])
        assert node["latestBar"]["close"] == daily["close"].iloc[-1], node["ticker"]
        closes = [e["node"]["close"] for e in node["bars"]["edges"]]
        assert closes == list(daily["close"].iloc[::-1][:100]), node["ticker"]


def test_issue_statement_count_same_for_1_5_and_50_symbols(many: TestClient, many_url: str) -> None:
    counts = {}
    for n in (1, 5, 50):
        counts[n], data = statements_for(many, ISSUE_QUERY, {"n": n, "f": {"exchange": "MANY"}})
        assert [e["node"]["ticker"] for e in data["symbols"]["edges"]] == DAILY[:n]
        if n == 50:
            check_issue_query_result(many_url, data, dict.fromkeys(DAILY, "D1"))
    assert counts[1] == counts[5] == counts[50] <= 3, counts


def test_statement_count_does_not_grow_with_mixed_base_timeframes(
    many: TestClient, many_url: str
) -> None:
    """Daily and one-minute symbols together (D1 bars resampled from M1 for the latter):
    the count may depend on which base timeframes are present, never on how many symbols."""
    counts = {}
    for n in (2, 10, 20):
        tickers = DAILY[: n // 2] + MINUTE[: n // 2]
        counts[n], data = statements_for(many, ISSUE_QUERY, {"n": n, "f": {"tickers": tickers}})
        assert {e["node"]["ticker"] for e in data["symbols"]["edges"]} == set(tickers)
        base = {**dict.fromkeys(DAILY, "D1"), **dict.fromkeys(MINUTE, "M1")}
        check_issue_query_result(many_url, data, base)
    assert counts[2] == counts[10] == counts[20] <= 3, counts


def test_issue_statement_count_on_demo_data(demo: TestClient, settings: Settings) -> None:
    """The demo has 8 symbols; the first is daily, the second one-minute. One symbol may cost
    a statement less (a single base timeframe), no more; then the count stays put."""
    counts = {}
    for n in (1, 2, 5, 8):
        counts[n], data = statements_for(demo, ISSUE_QUERY, {"n": n})
        assert len(data["symbols"]["edges"]) == n
    assert counts[1] <= counts[2] == counts[5] == counts[8] <= 3, counts
    intraday = ("ACME", "COINX", "GLOBX", "INITECH", "UMBRL")
    base = {t: "M1" if t in intraday else "D1" for t in _demo_tickers()}
    check_issue_query_result(settings.database_url or "", data, base)


def _demo_tickers() -> list[str]:
    return ["AAPL", "ACME", "COINX", "FB", "GLOBX", "GOOG", "IBM", "INITECH", "MSFT", "UMBRL"]


ALIASES = """query($n: Int!) { symbols(first: $n) { nodes {
    ticker
    a: bars(first: 3) { nodes { time close } }
    b: bars(interval: W1, first: 2, order: OLDEST_FIRST) { nodes { time open volume } }
    c: bars(first: 2, from: "2013-01-01T00:00:00Z", to: "2013-01-10T00:00:00Z",
            order: OLDEST_FIRST) { nodes { time close } }
    d: bars(first: 3) { nodes { time close } }
    e: bars(interval: MN1, last: 1) { nodes { time close } }
    l1: latestBar { time close }
    l2: latestBar(interval: MN1) { time close closed }
    s1: series(interval: W1, maxPoints: 2000) {
        interval time open high low close volume closed }
    s2: series(interval: MN1, from: "2012-06-01T00:00:00Z", maxPoints: 2000) {
        interval time open high low close volume closed }
} } }"""


def expected_aliases(url: str, ticker: str) -> dict[str, Any]:
    """What each alias must hold for one demo symbol, from pandas over the stored bars."""
    base = "M1" if ticker in ("ACME", "COINX", "GLOBX", "INITECH") else "D1"
    stored = stored_bars(url, ticker, base)
    days, weeks, months = (resample(stored, i, base) for i in ("D1", "W1", "MN1"))

    def bars(frame: pd.DataFrame, *cols: str) -> list[tuple[Any, ...]]:
        return [(t, *(float(r[c]) for c in cols)) for t, r in frame.iterrows()]

    jan = days[(days.index >= "2013-01-01T00:00Z") & (days.index < "2013-01-10T00:00Z")]
    return {
        "a": bars(days.iloc[::-1][:3], "close"),
        "b": bars(weeks[:2], "open", "volume"),
        "c": bars(jan[:2], "close"),
        "d": bars(days.iloc[::-1][:3], "close"),
        "e": bars(months[:1], "close"),
        "l1": bars(days[-1:], "close"),
        "l2": bars(months[-1:], "close"),
        "s1": weeks,
        "s2": months[months.index >= "2012-06-01T00:00Z"],
    }


def test_aliases_with_different_arguments_each_get_their_own_result(
    demo: TestClient, settings: Settings
) -> None:
    url = settings.database_url or ""
    counts = {}
    # The first nine symbols (UMBRL, last, is on an exchange calendar: its session buckets
    # are another statement shape, and tests/api/test_sessions_reference.py checks them).
    for n in (2, 9):
        counts[n], data = statements_for(demo, ALIASES, {"n": n})
    assert counts[2] == counts[9], counts
    nodes = data["symbols"]["nodes"]
    assert [s["ticker"] for s in nodes] == _demo_tickers()[:9]
    for sym in nodes:
        want = expected_aliases(url, sym["ticker"])

        def got(alias: str, *cols: str, sym: dict[str, Any] = sym) -> list[tuple[Any, ...]]:
            value = sym[alias]
            items = value["nodes"] if isinstance(value, dict) and "nodes" in value else [value]
            return [(pd.Timestamp(b["time"]), *(float(b[c]) for c in cols)) for b in items]

        what = sym["ticker"]
        assert got("a", "close") == want["a"], what
        assert got("b", "open", "volume") == want["b"], what
        assert got("c", "close") == want["c"], what
        assert got("d", "close") == want["d"], what
        assert got("e", "close") == want["e"], what
        assert got("l1", "close") == want["l1"], what
        assert got("l2", "close") == want["l2"], what
        assert sym["l2"]["closed"] is False, what  # every demo symbol's newest month is open
        for alias, interval in (("s1", "W1"), ("s2", "MN1")):
            assert sym[alias]["interval"] == interval
            series = frame_of_series(sym[alias])
            pd.testing.assert_frame_equal(
                series, want[alias], check_names=False, check_freq=False, obj=f"{what} {alias}"
            )


def test_same_field_in_many_symbols_is_one_statement_per_argument_set(
    many: TestClient,
) -> None:
    """Adding a differently-argued alias adds statements; adding symbols does not."""
    one_arg = """query($f: SymbolFilter) { symbols(first: 50, filter: $f) { nodes {
        x: bars(first: 4) { nodes { close } } } } }"""
    two_args = """query($f: SymbolFilter) { symbols(first: 50, filter: $f) { nodes {
        x: bars(first: 4) { nodes { close } }
        y: bars(interval: W1, first: 2) { nodes { close } } } } }"""
    few = {"f": {"tickers": DAILY[:2]}}
    lots = {"f": {"tickers": DAILY}}
    one_few, _ = statements_for(many, one_arg, few)
    one_lots, _ = statements_for(many, one_arg, lots)
    two_few, _ = statements_for(many, two_args, few)
    two_lots, data = statements_for(many, two_args, lots)
    assert one_few == one_lots and two_few == two_lots, (one_few, one_lots, two_few, two_lots)
    assert two_lots <= one_lots + 1
    for node in data["symbols"]["nodes"]:
        assert len(node["x"]["nodes"]) == 4 and len(node["y"]["nodes"]) == 2


def test_total_count_is_batched(many: TestClient, many_url: str) -> None:
    query = """query($f: SymbolFilter) { symbols(first: 50, filter: $f) { nodes {
        ticker bars(first: 1) { totalCount } } } }"""
    few, _ = statements_for(many, query, {"f": {"tickers": DAILY[:1]}})
    lots, data = statements_for(many, query, {"f": {"tickers": DAILY}})
    assert few == lots, (few, lots)
    for i, node in enumerate(data["symbols"]["nodes"]):
        assert node["bars"]["totalCount"] == 120 + 3 * i, node["ticker"]


def test_symbol_lookups_by_ticker_are_batched(many: TestClient) -> None:
    fields = " ".join(f'{t}: symbol(ticker: "{t}") {{ ticker }}' for t in DAILY[:20])
    count, data = statements_for(many, f"{{ {fields} }}", {})
    assert count == 1
    assert {v["ticker"] for v in data.values()} == set(DAILY[:20])
