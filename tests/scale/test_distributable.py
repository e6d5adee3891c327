"""The schema stays distributable: every statement on `bars` names the symbol.

Citus distributes a table by one column and routes a statement to one shard when the
statement filters by it; TimescaleDB's space partitioning and compression segment by it too.
For `bars` that column is `symbol_id`, so every statement our loaders, live reads and
writers run against `bars` must constrain it. The statements are the ones the code really
runs, captured while a workload runs (the API's queries through SQLAlchemy, the writers'
through asyncpg's query logger) and parsed with PostgreSQL's own parser (pglast, which is
libpg_query).

The rule, per SELECT, DELETE or UPDATE that reads `bars` (or a `bars_y…` partition) in its
own FROM/USING: its WHERE clause or the ON/USING of a join in that FROM names `symbol_id`.
An INSERT into `bars` must list `symbol_id` among its columns (rows carry their symbol).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pglast import ast, parse_sql
from sqlalchemy import event

from core import db
from core.settings import Settings
from graphql_api.app import create_app
from graphql_api.live.reads import live_sql
from tests.conftest import migrated_settings
from workers.export import export_bars
from workers.file_ingest import ingest_file
from workers.writer import BarWriter


def _nodes(node: Any) -> Iterator[ast.Node]:
    """Every AST node under `node`, itself included."""
    if isinstance(node, tuple | list):
        for item in node:
            yield from _nodes(item)
    elif isinstance(node, ast.Node):
        yield node
        for name in node.__slots__:
            yield from _nodes(getattr(node, name, None))


def _is_bars(rel: Any) -> bool:
    return isinstance(rel, ast.RangeVar) and (
        rel.relname == "bars" or rel.relname.startswith("bars_y")
    )


def _from_items(items: Any) -> Iterator[tuple[ast.Node, list[Any]]]:
    """(range item, join conditions over it) in a FROM list, not entering subqueries."""
    for item in items or ():
        if isinstance(item, ast.JoinExpr):
            quals = [item.quals, *(item.usingClause or ())]
            for inner, more in _from_items((item.larg, item.rarg)):
                yield inner, [*quals, *more]
        else:
            yield item, []


def _names_symbol(conditions: list[Any]) -> bool:
    for node in _nodes(conditions):
        if isinstance(node, ast.ColumnRef):
            last = node.fields[-1]
            if isinstance(last, ast.String) and last.sval == "symbol_id":
                return True
        if isinstance(node, ast.String) and node.sval == "symbol_id":
            return True  # JOIN … USING (symbol_id, …)
    return False


def problems(sql: str) -> list[str]:
    """Why statements in `sql` would not route to one symbol's shard (empty: they would)."""
    found = []
    for node in _nodes([raw.stmt for raw in parse_sql(sql)]):
        if isinstance(node, ast.CopyStmt) and _is_bars(node.relation):
            if "symbol_id" not in {c.sval for c in node.attlist or ()}:
                found.append("COPY bars without symbol_id")
            continue
        if isinstance(node, ast.InsertStmt) and _is_bars(node.relation):
            columns = {c.name for c in node.cols or ()}
            if "symbol_id" not in columns:
                found.append("INSERT INTO bars without symbol_id")
            continue
        if isinstance(node, ast.SelectStmt):
            items, where = node.fromClause, node.whereClause
        elif isinstance(node, ast.DeleteStmt):
            items, where = (node.relation, *(node.usingClause or ())), node.whereClause
        elif isinstance(node, ast.UpdateStmt):
            items, where = (node.relation, *(node.fromClause or ())), node.whereClause
        else:
            continue
        for item, joins in _from_items(items):
            if _is_bars(item) and not _names_symbol([where, *joins]):
                found.append(f"{type(node).__name__} reads {item.relname} without symbol_id")
    return found


def test_the_check_bites() -> None:
    assert problems("SELECT * FROM bars WHERE ts > now()") != []
    assert problems("DELETE FROM bars_y2024 WHERE ts < $1") != []
    assert problems("INSERT INTO bars (timeframe, ts) VALUES ('D1', now())") != []
    assert problems("COPY bars (timeframe, ts) FROM STDIN") != []
    assert problems("COPY (SELECT ts FROM bars WHERE timeframe = 'D1') TO STDOUT") != []
    # A subquery is judged on its own: the outer filter does not cover it.
    assert (
        problems(
            "SELECT * FROM symbols s WHERE s.id = 1"
            " AND EXISTS (SELECT 1 FROM bars b WHERE b.ts > 0)"
        )
        != []
    )
    assert problems("SELECT * FROM bars WHERE symbol_id = ANY($1) AND ts > $2") == []
    assert problems("SELECT * FROM unnest($1::int[]) k(s) JOIN bars b ON b.symbol_id = k.s") == []


QUERIES = [
    """{ symbol(ticker: "AAPL") {
        a: bars(first: 5) { totalCount nodes { time close } pageInfo { endCursor } }
        b: bars(interval: W1, order: OLDEST_FIRST, first: 3,
                from: "2010-01-01T00:00:00Z", to: "2011-01-01T00:00:00Z") { nodes { time } }
        c: bars(interval: MN1, last: 2) { totalCount nodes { time close } }
        d: latestBar { time close } e: latestBar(interval: W1) { time }
        f: series(maxPoints: 1000) { time close }
        g: series(interval: W1, from: "2005-01-01T00:00:00Z", maxPoints: 1000) { time close }
        h: indicators(from: "2012-01-01T00:00:00Z") { sma(period: 5) { time value } }
    } }""",
    """{ symbols(first: 3, filter: {tickers: ["AAPL", "IBM"]}) { totalCount nodes {
        ticker latestBar { close } bars(first: 2) { nodes { time } } } } }""",
]


def _minute_query(ticker: str) -> str:
    return f"""{{ symbol(ticker: "{ticker}") {{
        a: bars(interval: M1, first: 3) {{ nodes {{ time }} pageInfo {{ endCursor }} }}
        b: bars(interval: M5, first: 4) {{ totalCount nodes {{ time close }} }}
        c: latestBar(interval: H1) {{ time }}
        d: series(interval: M1, maxPoints: 20) {{ time close }}
    }} }}"""


def test_every_api_statement_on_bars_names_the_symbol(settings: Settings) -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        with lock:
            seen.append(statement)

    with TestClient(create_app(settings)) as client:
        engine = client.app.state.services.engine  # type: ignore[attr-defined]
        event.listen(engine.sync_engine, "before_cursor_execute", record)
        minute = client.post(
            "/graphql",
            json={
                "query": "{ symbols(first: 50) { nodes { ticker storedTimeframes { interval } } } }"
            },
        ).json()["data"]["symbols"]["nodes"]
        with_minutes = [s["ticker"] for s in minute if {"interval": "M1"} in s["storedTimeframes"]]
        queries = [*QUERIES, *(_minute_query(t) for t in with_minutes[:1])]
        for query in queries:
            body = client.post("/graphql", json={"query": query}).json()
            assert "errors" not in body, body
            # Next page by cursor: the keyset statement.
            cursor = (body["data"].get("symbol") or {}).get("a", {}).get("pageInfo", {})
            if cursor.get("endCursor"):
                after = query.replace("first: 5)", f'first: 5, after: "{cursor["endCursor"]}")')
                after = after.replace("first: 3)", f'first: 3, after: "{cursor["endCursor"]}")')
                assert "errors" not in client.post("/graphql", json={"query": after}).json()
    on_bars = [sql for sql in seen if "bars" in sql]
    assert len(on_bars) >= 8, seen  # the workload reached the loaders
    assert with_minutes, "the demo data has minute bars to resample"
    assert {sql: problems(sql) for sql in on_bars if problems(sql)} == {}
    # The live transport's statements (touched bars, replay) too.
    live = live_sql()
    for name in ("touched_stored", "touched_resampled", "replay_stored", "replay_resampled"):
        inner = live[name].replace("{bucket}", "date_trunc('hour', ts)")
        assert problems(live["meta"].format(inner=inner)) == [], name


class Recording(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection that keeps the text of every statement and COPY it runs.

    The query logger (add_query_logger) sees statements; COPY goes through these two.
    """

    seen: list[str]

    async def _copy_in(self, copy_stmt: str, *args: Any) -> Any:
        self.seen.append(copy_stmt)
        return await super()._copy_in(copy_stmt, *args)

    async def _copy_out(self, copy_stmt: str, *args: Any) -> Any:
        self.seen.append(copy_stmt)
        return await super()._copy_out(copy_stmt, *args)


@pytest.fixture
def writer_database(make_database: Callable[[], str]) -> Settings:
    settings = migrated_settings(make_database())
    db.upgrade(settings)
    return settings


async def test_every_writer_statement_on_bars_names_the_symbol(
    writer_database: Settings, tmp_path: Path
) -> None:
    seen: list[str] = []
    conn = await asyncpg.connect(writer_database.asyncpg_dsn, connection_class=Recording)
    conn.seen = seen
    conn.add_query_logger(lambda record: seen.append(record.query))
    try:
        t0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)

        def frame(close: float, minutes: int) -> pd.DataFrame:
            return pd.DataFrame(
                {
                    "ticker": ["ACME"] * minutes + ["INIT"] * minutes,
                    "ts": [t0 + timedelta(minutes=m) for m in range(minutes)] * 2,
                    "open": close,
                    "high": close + 1,
                    "low": close - 1,
                    "close": close,
                    "volume": 10.0,
                }
            )

        writer = BarWriter(conn, "M1", source="check")
        await writer.write(frame(10.0, 50))  # new bars
        await writer.write(frame(11.0, 60))  # revisions and appends
        await writer.write(frame(11.0, 60))  # unchanged
        csv = tmp_path / "more.csv"
        frame(12.0, 70).rename(columns={"ts": "time"}).to_csv(csv, index=False)
        await ingest_file(conn, csv, timeframe="M1")
        await export_bars(conn, "ACME", "M1", tmp_path / "out.csv")
    finally:
        await conn.close()
    on_bars = [sql for sql in seen if "bars" in sql]
    kinds = {sql.split()[0].upper() for sql in on_bars}
    assert {"COPY", "DELETE"} <= kinds, on_bars  # appends, read-back and revisions ran
    assert {sql: problems(sql) for sql in on_bars if problems(sql)} == {}
