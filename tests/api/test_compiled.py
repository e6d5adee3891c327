"""Compiled operations (graphql_api/compiled.py) answer exactly as the resolvers do.

Two apps on one database, one with compiled plans and one without; every query below goes
to both and the answers are compared as parsed JSON: equal data and errors, floats equal
(the plan's numbers are PostgreSQL's text, `2410` where orjson writes `2410.0`; number
formatting does not count). Where a plan applies (a 24/7 symbol, a stored timeframe, forward
paging), the answer must also say it came from the plan (Server-Timing) in one statement;
elsewhere the resolvers must have answered it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from graphql_api.cursors import symbol_cursor
from tests.api.helpers import (
    app_client,
    count_statements,
    ohlcv,
    scratch_database,
    store_bars,
    with_connection,
)
from workers.symbols import SymbolInfo

M1 = {
    "CPA": 260,  # ticker order: CPA < CPB < CPC ...
    "CPB": 180,
    "CPQ": 40,
}
D1_ONLY = "CPD"
BOTH = "CPE"  # M1 and D1 stored: D1 comes from M1 (resampled), which no plan covers
NYSE = "CPN"  # an exchange calendar: sessions, which no plan covers
ODD = "CPO"  # bars at fractional seconds
NAMES = {"CPQ": 'Quote "Q" \\ Ünïcode — Co.\n'}
#: Symbols of this module come after this cursor (the scratch database has other modules').
AFTER_CP = symbol_cursor("CP")


@pytest.fixture(scope="module")
def url(make_database: Callable[[], str]) -> str:
    url = scratch_database(make_database)
    start = pd.Timestamp("2024-03-01T10:00Z")
    infos = {
        t: SymbolInfo(t, NAMES.get(t, f"{t} Compiled Co."), "CPX", "crypto", "USD", "UTC", "24/7")
        for t in [*M1, D1_ONLY, BOTH, ODD]
    }
    infos[NYSE] = SymbolInfo(NYSE, "CPN Corp.", "NYSE", "equity", "USD", "", "XNYS")
    minute = {
        t: ohlcv(pd.date_range(start, periods=n, freq="min"), seed=i)
        for i, (t, n) in enumerate(M1.items())
    }
    minute[BOTH] = ohlcv(pd.date_range(start, periods=90, freq="min"), seed=7)
    minute[NYSE] = ohlcv(pd.date_range("2024-03-04T14:30Z", periods=120, freq="min"), seed=8)
    store_bars(url, minute, "M1", infos)
    daily = {
        D1_ONLY: ohlcv(pd.date_range("2023-01-02", periods=150, freq="D", tz="UTC"), seed=9),
        BOTH: ohlcv(pd.date_range("2023-01-02", periods=30, freq="D", tz="UTC"), seed=10),
    }
    store_bars(url, daily, "D1", infos)
    odd_times = [
        datetime(2024, 3, 1, 10, 0, tzinfo=UTC) + timedelta(minutes=i, microseconds=m)
        for i, m in enumerate([0, 100_000, 123_456, 1, 0, 999_999])
    ]
    store_bars(url, {ODD: ohlcv(odd_times, seed=11)}, "M1", infos)
    return url


@pytest.fixture(scope="module")
def clients(url: str) -> Iterator[tuple[TestClient, TestClient]]:
    off = {"cache_enabled": False, "verify_fast_path": False}
    with (
        app_client(url, **off, compiled_plans=True) as planned,
        app_client(url, **off, compiled_plans=False) as reference,
    ):
        yield planned, reference


def _post(client: TestClient, query: str, variables: dict[str, Any]) -> tuple[Any, str]:
    r = client.post("/graphql", json={"query": query, "variables": variables})
    assert r.status_code < 500, r.text
    return orjson.loads(r.content), r.headers.get("server-timing", "")


def _first_page_cursor(client: TestClient, ticker: str, interval: str, order: str, n: int) -> str:
    q = (
        "query($t: String!, $i: Interval!, $o: BarOrder!, $n: Int) { symbol(ticker: $t) { "
        "bars(interval: $i, order: $o, first: $n) { pageInfo { endCursor } } } }"
    )
    body, _ = _post(client, q, {"t": ticker, "i": interval, "o": order, "n": n})
    cursor: str = body["data"]["symbol"]["bars"]["pageInfo"]["endCursor"]
    return cursor


BAR = "time open high low close volume closed filled sessionOpen sessionClose __typename"
PAGE = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor __typename }"
SYMBOL = "id ticker name exchange assetClass currency timezone calendar active createdAt updatedAt"

#: (name, query, variables, planned): `planned` says whether the plan must answer it.
CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    (
        "symbols page, every scalar, edges and nodes",
        f"{{ symbols(first: 4) {{ {PAGE} edges {{ cursor __typename node {{ {SYMBOL} }} }} "
        f"nodes {{ ticker }} __typename }} }}",
        {},
        True,
    ),
    (
        "symbols default page size",
        "{ symbols { pageInfo { hasNextPage endCursor } nodes { ticker } } }",
        {},
        True,
    ),
    (
        "symbols after a cursor, via variables",
        "query($n: Int = 2, $a: String) { symbols(first: $n, after: $a) { "
        f"{PAGE} edges {{ cursor node {{ ticker }} }} }} }}",
        {"a": "djE6c3ltOkNQQg"},  # after CPB
        True,
    ),
    (
        "symbols past the end: empty page, null cursors",
        f"query($a: String) {{ symbols(first: 5, after: $a) {{ {PAGE} nodes {{ ticker }} }} }}",
        {"a": "djE6c3ltOnp6eno"},  # after "zzzz"
        True,
    ),
    (
        "symbol with bars, newest first, cursors",
        "query($t: String!) { symbol(ticker: $t) { id ticker "
        f"bars(interval: M1, first: 25) {{ {PAGE} edges {{ cursor node {{ {BAR} }} }} }} }} }}",
        {"t": "CPA"},
        True,
    ),
    (
        "symbol by lower-case ticker with spaces, oldest first, nodes",
        '{ symbol(ticker: "  cpb ") { ticker bars(interval: M1, first: 7, order: OLDEST_FIRST) '
        f"{{ {PAGE} nodes {{ {BAR} prices {{ open high low close }} }} }} }} }}",
        {},
        True,
    ),
    (
        "unknown symbol is null",
        '{ symbol(ticker: "NOPE") { ticker bars(interval: M1) { nodes { close } } } }',
        {},
        True,
    ),
    (
        "escaping in names",
        '{ symbol(ticker: "CPQ") { name ticker } }',
        {},
        True,
    ),
    (
        "daily bars stored as daily",
        f'{{ symbol(ticker: "{D1_ONLY}") {{ bars(first: 30) {{ {PAGE} nodes {{ {BAR} }} }} '
        "latestBar { time close } } }",
        {},
        True,
    ),
    (
        "fractional-second bar times and their cursors",
        f'{{ symbol(ticker: "{ODD}") {{ bars(interval: M1, first: 10, order: OLDEST_FIRST) '
        f"{{ {PAGE} edges {{ cursor node {{ time close }} }} }} }} }}",
        {},
        True,
    ),
    (
        "aliases, fragments, __typename, latestBar, two roots",
        "fragment S on Symbol { ticker last: latestBar(interval: M1) { ...B } } "
        "fragment B on Bar { time c: close } "
        'query Two($cp: String) { __typename a: symbol(ticker: "CPA") { ...S ... on Node { id } } '
        "b: symbols(first: 2, after: $cp) { edges { node { ...S m1: bars(interval: M1, "
        "first: 2) { nodes { ...B } } } } } }",
        {"cp": AFTER_CP},
        True,
    ),
    (
        "all 24/7 symbols with M1 bars (the kit's q1 shape)",
        "query($f: Int = 2, $b: Int = 5, $cp: String) { symbols(first: $f, after: $cp) { "
        "pageInfo { hasNextPage "
        "endCursor } edges { cursor node { id ticker name exchange bars(interval: M1, "
        f"first: $b, order: NEWEST_FIRST) {{ {PAGE} edges {{ cursor node {{ {BAR} }} }} }} "
        "} } } }",
        {"cp": AFTER_CP},
        True,
    ),
    (
        "symbol without bars at the interval is a decline (empty connection)",
        f'{{ symbol(ticker: "{D1_ONLY}") {{ bars(interval: M1, first: 3) {{ {PAGE} '
        "nodes { close } } } }",
        {},
        False,
    ),
    (
        "resampled interval: the resolvers",
        '{ symbol(ticker: "CPA") { bars(interval: M5, first: 4) { nodes { time open close '
        "volume closed } } } }",
        {},
        False,
    ),
    (
        "daily over stored minutes: the resolvers",
        f'{{ symbol(ticker: "{BOTH}") {{ bars(interval: D1, first: 4) {{ nodes {{ time '
        "close } } } }",
        {},
        False,
    ),
    (
        "exchange calendar: the resolvers",
        f'{{ symbol(ticker: "{NYSE}") {{ bars(interval: M1, first: 4) {{ nodes {{ time '
        "close sessionOpen } } } }",
        {},
        False,
    ),
    (
        "a symbols page holding an exchange-calendar symbol: the resolvers",
        "query($cp: String) { symbols(first: 20, after: $cp) { nodes { ticker "
        "latestBar(interval: M1) { time close } } } }",
        {"cp": AFTER_CP},
        False,
    ),
    (
        "backward paging: the resolvers",
        '{ symbol(ticker: "CPA") { bars(interval: M1, last: 3) { ' + PAGE + " nodes { time } } } }",
        {},
        False,
    ),
    (
        "from/to: the resolvers",
        '{ symbol(ticker: "CPA") { bars(interval: M1, from: "2024-03-01T10:05:00Z", '
        'to: "2024-03-01T10:09:00Z") { nodes { time } } } }',
        {},
        False,
    ),
    (
        "a field no plan covers: the resolvers",
        '{ symbol(ticker: "CPA") { storedTimeframes { interval } bars(interval: M1, first: 2) '
        "{ totalCount nodes { time } } } }",
        {},
        False,
    ),
    (
        "errors: page too large",
        '{ symbol(ticker: "CPA") { bars(interval: M1, first: 100000) { nodes { time } } } }',
        {},
        False,
    ),
    (
        "errors: malformed cursor",
        '{ symbol(ticker: "CPA") { bars(interval: M1, after: "nope") { nodes { time } } } }',
        {},
        False,
    ),
    (
        "errors: negative first on symbols",
        "{ symbols(first: -1) { nodes { ticker } } }",
        {},
        False,
    ),
    (
        "errors: variable of the wrong type",
        "query($n: Int) { symbols(first: $n) { nodes { ticker } } }",
        {"n": "three"},
        False,
    ),
    (
        "errors: validation",
        "{ symbols(first: 2) { nodes { tickr } } }",
        {},
        False,
    ),
    (
        "directives: the resolvers",
        "query($x: Boolean!) { symbols(first: 2) { nodes { ticker name @include(if: $x) } } }",
        {"x": False},
        False,
    ),
]


@pytest.mark.parametrize(
    ("name", "query", "variables", "planned"), CASES, ids=[c[0] for c in CASES]
)
def test_same_answer_as_the_resolvers(
    clients: tuple[TestClient, TestClient],
    name: str,
    query: str,
    variables: dict[str, Any],
    planned: bool,
) -> None:
    planned_client, reference = clients
    with count_statements(planned_client) as statements:
        got, timing = _post(planned_client, query, variables)
    want, _ = _post(reference, query, variables)
    assert got == want, name
    assert ('plan;desc="compiled"' in timing) == planned, (name, timing)
    if planned:
        assert len(statements) == 1, statements


@pytest.mark.parametrize("order", ["NEWEST_FIRST", "OLDEST_FIRST"])
@pytest.mark.parametrize("depth", [1, 17, 100, 179, 180])
def test_pages_after_a_cursor(
    clients: tuple[TestClient, TestClient], order: str, depth: int
) -> None:
    """Deep pages (the kit's q4 shape) in both orders, up to and past the last bar."""
    planned_client, reference = clients
    after = _first_page_cursor(reference, "CPB", "M1", order, depth)
    query = (
        "query($t: String!, $a: String!, $o: BarOrder!) { symbol(ticker: $t) { id ticker "
        f"bars(interval: M1, first: 30, after: $a, order: $o) {{ {PAGE} edges {{ cursor "
        f"node {{ {BAR} }} }} }} }} }}"
    )
    variables = {"t": "CPB", "a": after, "o": order}
    got, timing = _post(planned_client, query, variables)
    want, _ = _post(reference, query, variables)
    assert got == want
    assert 'plan;desc="compiled"' in timing
    edges = got["data"]["symbol"]["bars"]["edges"]
    assert len(edges) == min(30, 180 - depth)


def test_cursors_walk_the_whole_list(clients: tuple[TestClient, TestClient]) -> None:
    """Following the plan's own cursors visits every bar once, as the resolvers' do."""
    planned_client, reference = clients
    query = (
        'query($a: String) { symbol(ticker: "CPA") { bars(interval: M1, first: 37, after: $a) '
        "{ pageInfo { hasNextPage endCursor } nodes { time } } } }"
    )
    seen: list[list[str]] = []
    for client in (planned_client, reference):
        after, times = None, []
        while True:
            body, _ = _post(client, query, {"a": after})
            bars = body["data"]["symbol"]["bars"]
            times += [n["time"] for n in bars["nodes"]]
            if not bars["pageInfo"]["hasNextPage"]:
                break
            after = bars["pageInfo"]["endCursor"]
        seen.append(times)
    assert seen[0] == seen[1]
    assert len(seen[0]) == len(set(seen[0])) == M1["CPA"]


def test_another_symbols_cursor_is_the_resolvers_error(
    clients: tuple[TestClient, TestClient],
) -> None:
    planned_client, reference = clients
    foreign = _first_page_cursor(reference, "CPA", "M1", "NEWEST_FIRST", 3)
    query = (
        'query($a: String!) { symbol(ticker: "CPB") { bars(interval: M1, first: 2, after: $a) '
        "{ nodes { time } } } }"
    )
    got, timing = _post(planned_client, query, {"a": foreign})
    want, _ = _post(reference, query, {"a": foreign})
    assert got == want
    assert got["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "compiled" not in timing


def test_a_declined_request_is_not_planned_again(
    clients: tuple[TestClient, TestClient],
) -> None:
    """A plan whose statement found an uncovered symbol steps aside for the same request
    afterwards: one statement wasted, then only the resolvers' own."""
    planned_client, _ = clients
    query = f'{{ symbol(ticker: "{NYSE}") {{ latestBar(interval: M1) {{ close }} }} }}'
    with count_statements(planned_client) as first:
        _post(planned_client, query, {})
    with count_statements(planned_client) as second:
        _post(planned_client, query, {})
    assert len(second) == len(first) - 1


def test_a_dropped_connection_is_retried_on_a_new_one(
    url: str, clients: tuple[TestClient, TestClient]
) -> None:
    """Pooled connections are not pinged before use: when the server has dropped them (a
    restart, an idle timeout), the plan's statement runs again on a new connection, and the
    answer still comes from the plan."""
    planned_client, reference = clients
    query = '{ symbol(ticker: "CPA") { bars(interval: M1, first: 3) { nodes { time close } } } }'
    _post(planned_client, query, {})  # the pool holds a connection now

    async def drop(conn: Any) -> int:
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'market-graphql'"
            )
        )

    assert with_connection(url, drop) >= 1
    got, timing = _post(planned_client, query, {})
    want, _ = _post(reference, query, {})
    assert got == want
    assert 'plan;desc="compiled"' in timing
