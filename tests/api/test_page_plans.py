"""Bar pages read about `limit` rows per symbol, whatever the symbol's history holds.

PostgreSQL estimates two parameter bounds on `ts` at 0.5% of a symbol's rows; with many
symbols that estimate is tiny, and the planner then reads every row of each symbol and
sorts them rather than walking the index from one end (`loaders.bars._bounds`). This test
runs the statements the loaders issue, with their parameters, under EXPLAIN ANALYZE on a
database shaped to provoke that (200 symbols x 600 bars, analyzed), and counts the rows
the plan reads from the bar partitions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from tests.api.helpers import COUNTING, app_client, fresh_database, post, with_connection
from tests.conftest import migrated_settings
from workers.symbols import SymbolInfo, upsert_symbols
from workers.upsert import frame_records, upsert_bars

SYMBOLS, BARS = 200, 600
FIRST = pd.Timestamp("2024-03-04 00:00", tz="UTC")


@pytest.fixture(scope="module")
def env(make_database: Callable[[], str]) -> Iterator[tuple[TestClient, str]]:
    url = fresh_database(make_database)

    async def load(conn: asyncpg.Connection) -> None:
        infos = [SymbolInfo(f"P{i:03d}", f"Plan {i} Co.", "TEST") for i in range(SYMBOLS)]
        ids = await upsert_symbols(conn, infos)
        rng = np.random.default_rng(3)
        close = 100 + rng.normal(0, 1, (SYMBOLS, BARS)).cumsum(axis=1) * 0.01
        frame = pd.DataFrame(
            {
                "symbol_id": np.repeat([ids[i.ticker] for i in infos], BARS),
                "timeframe": "M1",
                "ts": np.tile(pd.date_range(FIRST, periods=BARS, freq="min"), SYMBOLS),
                "open": close.ravel(),
                "high": close.ravel() + 0.5,
                "low": close.ravel() - 0.5,
                "close": close.ravel(),
                "volume": 100.0,
            }
        )
        await upsert_bars(conn, frame_records(frame), source="test")
        await conn.execute("ANALYZE")

    with_connection(url, load)
    # 50 aliases: a page after a cursor for each of 50 symbols is 50 `symbol` fields.
    with app_client(url, **COUNTING, max_aliases=50) as client:
        yield client, migrated_settings(url).asyncpg_dsn


def statements(
    client: TestClient, query: str, variables: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """The response, and the page statements (text, parameters) the request ran."""
    seen: list[tuple[str, Any]] = []

    def on_execute(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        if "LIMIT k.lim" in statement:
            seen.append((statement, parameters))

    engine = client.app.state.services.engine.sync_engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        body = post(client, query, variables)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    assert "errors" not in body, body
    return body, seen


def rows_read(dsn: str, statement: str, parameters: Any) -> int:
    """Rows the plan of `statement` reads from bar partitions (actual rows x loops)."""

    async def explain() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, *parameters)
        finally:
            await conn.close()

    plan = json.loads(asyncio.run(explain()))[0]["Plan"]
    total = 0
    stack = [plan]
    while stack:
        node = stack.pop()
        if str(node.get("Relation Name", "")).startswith("bars_y"):
            total += node["Actual Rows"] * node["Actual Loops"]
        stack += node.get("Plans", [])
    return total


PAGES = {
    "newest 10 of 50 symbols": (
        "{ symbols(first: 50) { nodes { bars(interval: M1, first: 10) { nodes { time } } } } }",
        50 * 11,
    ),
    "oldest 10 of 50 symbols": (
        "{ symbols(first: 50) { nodes { bars(interval: M1, first: 10, order: OLDEST_FIRST)"
        " { nodes { time } } } } }",
        50 * 11,
    ),
    "newest 10 in a 7-hour window of 50 symbols": (
        "{ symbols(first: 50) { nodes { bars(interval: M1, first: 10,"
        ' from: "2024-03-04T01:00:00Z", to: "2024-03-04T08:00:00Z") { nodes { time } } } } }',
        50 * 11,
    ),
    "oldest 10 in a 7-hour window of 50 symbols": (
        "{ symbols(first: 50) { nodes { bars(interval: M1, first: 10, order: OLDEST_FIRST,"
        ' from: "2024-03-04T01:00:00Z", to: "2024-03-04T08:00:00Z") { nodes { time } } } } }',
        50 * 11,
    ),
    "newest 3 M5 bars of 50 symbols, resampled": (
        "{ symbols(first: 50) { nodes { bars(interval: M5, first: 3) { nodes { time } } } } }",
        50 * 5 * 5,
    ),
}


@pytest.mark.parametrize("case", sorted(PAGES))
def test_pages_walk_the_index_instead_of_reading_every_bar(
    env: tuple[TestClient, str], case: str
) -> None:
    client, dsn = env
    query, bound = PAGES[case]
    body, seen = statements(client, query)
    assert len(body["data"]["symbols"]["nodes"]) == 50
    assert len(seen) == 1
    read = rows_read(dsn, *seen[0])
    # Without the fix the plan read all 50 x 600 bars (30,000) and sorted them.
    assert read <= bound, f"{case}: {read} rows read for a bound of {bound}"


def test_a_page_after_a_cursor_also_stops_early(env: tuple[TestClient, str]) -> None:
    client, dsn = env
    first = post(
        client,
        "{ symbols(first: 50) { nodes { ticker"
        " bars(interval: M1, first: 300) { pageInfo { endCursor } } } } }",
    )
    # A bar cursor pages only its own symbol's bars, so each symbol gets its own.
    cursors = {
        n["ticker"]: n["bars"]["pageInfo"]["endCursor"] for n in first["data"]["symbols"]["nodes"]
    }
    fields = " ".join(
        f's{i}: symbol(ticker: "{ticker}") {{ bars(interval: M1, first: 10, after: $c{i})'
        " { nodes { time } } }"
        for i, ticker in enumerate(cursors)
    )
    variables = ", ".join(f"$c{i}: String!" for i in range(len(cursors)))
    query = f"query({variables}) {{ {fields} }}"
    body, seen = statements(client, query, {f"c{i}": c for i, c in enumerate(cursors.values())})
    assert all(len(body["data"][f"s{i}"]["bars"]["nodes"]) == 10 for i in range(50))
    assert len(seen) == 1
    assert rows_read(dsn, *seen[0]) <= 50 * 11
