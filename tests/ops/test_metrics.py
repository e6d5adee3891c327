"""Prometheus metrics: names, labels and values after known requests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient
from graphql import OperationDefinitionNode, parse
from sqlalchemy import event

from core import metrics
from core.metrics import OperationLabels
from tests.ops.conftest import LAG_TICKER, OTHER_TICKER, OpsData, samples, value
from workers.validation import map_columns, validate_chunk

TWO_SERIES = f"""query TwoSeries {{
  symbol(ticker: "{LAG_TICKER}") {{
    ticker
    daily: bars(interval: D1, first: 5) {{ edges {{ node {{ close }} }} }}
    minutes: bars(interval: M1, first: 5) {{ edges {{ node {{ close }} }} }}
  }}
}}"""

Open = Callable[..., TestClient]


@contextmanager
def count_statements(client: TestClient) -> Iterator[list[str]]:
    """Statements the app's engine runs inside the block, counted independently."""
    seen: list[str] = []

    def before(*args: Any) -> None:
        seen.append(args[2])

    target = client.app.state.services.engine.sync_engine  # type: ignore[attr-defined]
    event.listen(target, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", before)


def post(client: TestClient, query: str, **kw: Any) -> Any:
    """POST a query; returns the response."""
    return client.post("/graphql", json={"query": query}, **kw)


def test_request_metrics_count_the_statements_of_a_request(app_client: Open) -> None:
    client = app_client(cache_enabled=False)
    with count_statements(client) as statements:
        response = post(client, TWO_SERIES)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    n = len(statements)
    assert n >= 2  # the symbol, then its bars (both intervals batched or not)

    m = samples(client)
    labels = {"operation": "TwoSeries"}
    assert value(m, "market_graphql_request_duration_seconds_count", **labels, outcome="ok") == 1
    assert value(m, "market_graphql_request_duration_seconds_sum", **labels, outcome="ok") > 0
    assert value(m, "market_graphql_request_sql_statements_count", **labels) == 1
    assert value(m, "market_graphql_request_sql_statements_sum", **labels) == n
    sql_seconds = value(m, "market_graphql_request_sql_seconds_sum", **labels)
    assert sql_seconds is not None and sql_seconds > 0
    # A bucket at or above n holds the request, the one below n does not.
    assert value(m, "market_graphql_request_sql_statements_bucket", **labels, le="+Inf") == 1

    # A second request adds exactly its statements.
    with count_statements(client) as again:
        post(client, TWO_SERIES)
    m = samples(client)
    assert value(m, "market_graphql_request_sql_statements_sum", **labels) == n + len(again)


def test_outcomes_ok_error_rejected(app_client: Open) -> None:
    client = app_client(cache_enabled=False, max_page_size_symbols=1)
    post(client, "query Fine { symbols(first: 1) { edges { node { ticker } } } }")
    # Executed with a field error (too many ids): data present, errors present.
    post(client, 'query TooMany { nodes(ids: ["a", "b"]) { id } }')
    # Validation error: never executed (no `data`), 400 for graphql-response+json.
    bad = post(
        client, "query Bad { nope }", headers={"accept": "application/graphql-response+json"}
    )
    assert bad.status_code == 400
    # Parse error: no operation at all.
    assert post(client, "query {", headers={"accept": "application/graphql-response+json"})
    m = samples(client)
    name = "market_graphql_request_duration_seconds_count"
    assert value(m, name, operation="Fine", outcome="ok") == 1
    assert value(m, name, operation="TooMany", outcome="error") == 1
    assert value(m, name, operation="Bad", outcome="rejected") == 1
    assert value(m, name, operation="none", outcome="rejected") == 1


def test_operation_labels_are_bounded(app_client: Open) -> None:
    client = app_client(cache_enabled=False, metrics_max_operations=2)
    for name in ("OpA", "OpB", "OpC", "OpD", "OpA"):
        post(client, f"query {name} {{ symbols(first: 1) {{ edges {{ cursor }} }} }}")
    post(client, "{ symbols(first: 1) { edges { cursor } } }")
    m = samples(client)
    ops = {
        dict(labels)["operation"]
        for (sample, labels) in m
        if sample == "market_graphql_request_duration_seconds_count"
    }
    assert ops == {"OpA", "OpB", "other", "anonymous"}
    assert value(m, "market_graphql_request_duration_seconds_count", operation="OpA", outcome="ok")
    assert (
        value(m, "market_graphql_request_duration_seconds_count", operation="other", outcome="ok")
        == 2
    )


def test_operation_allow_list() -> None:
    labels = OperationLabels(["Keep"], limit=100)

    def op(source: str) -> OperationDefinitionNode:
        node = parse(source).definitions[0]
        assert isinstance(node, OperationDefinitionNode)
        return node

    assert labels(op("query Keep { a }")) == "Keep"
    assert labels(op("query Drop { a }")) == "other"
    assert labels(op("{ a }")) == "anonymous"
    assert labels(None) == "none"


def test_cache_hits_and_misses(app_client: Open) -> None:
    client = app_client(cache_enabled=True)
    query = "query Cached { symbols(first: 2) { edges { node { ticker } } } }"
    post(client, query)
    first = samples(client)
    hits_before = value(first, "market_graphql_cache_hits_total", backend="memory")
    misses = value(first, "market_graphql_cache_misses_total", backend="memory")
    assert hits_before == 0 and misses is not None and misses >= 1
    post(client, query)  # the whole response comes from the cache now
    second = samples(client)
    assert value(second, "market_graphql_cache_hits_total", backend="memory") == hits_before + 1
    assert value(second, "market_graphql_cache_errors_total", backend="memory") == 0


def test_pool_gauges(app_client: Open) -> None:
    client = app_client(pool_size=4, max_overflow=3)
    post(client, "query P { symbols(first: 1) { edges { cursor } } }")
    m = samples(client)
    assert value(m, "market_graphql_db_pool_size") == 4
    assert value(m, "market_graphql_db_pool_in_use") == 0  # between requests
    idle = value(m, "market_graphql_db_pool_idle")
    assert idle is not None and 1 <= idle <= 4
    assert value(m, "market_graphql_db_pool_overflow") == 0


def test_ingest_lag_for_configured_tickers_only(app_client: Open, ops_data: OpsData) -> None:
    client = app_client()
    m = samples(client)
    expected = time.time() - ops_data.newest_lag_bar.timestamp()
    lag = value(m, "market_graphql_ingest_lag_seconds", ticker=LAG_TICKER, timeframe="M1")
    assert lag is not None and abs(lag - expected) < 5, (lag, expected)
    daily = value(m, "market_graphql_ingest_lag_seconds", ticker=LAG_TICKER, timeframe="D1")
    assert daily is not None and daily > lag
    tickers = {dict(labels).get("ticker") for (sample, labels) in m if "lag" in sample}
    assert OTHER_TICKER not in tickers and tickers == {LAG_TICKER}


def test_job_queue_depth_by_status(app_client: Open, ops_data: OpsData) -> None:
    import psycopg

    client = app_client()
    before = samples(client)
    assert {
        dict(labels)["status"] for (sample, labels) in before if sample == "market_graphql_jobs"
    } == set(metrics.JOB_STATUSES)
    todo = value(before, "market_graphql_jobs", status="todo")
    assert todo is not None
    with psycopg.connect(ops_data.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args) "
            "VALUES ('ops-test', 'ops:test', '{}')"
        )
    try:
        assert value(samples(client), "market_graphql_jobs", status="todo") == todo + 1
    finally:
        with psycopg.connect(ops_data.url, autocommit=True) as conn:
            conn.execute("DELETE FROM procrastinate_jobs WHERE queue_name = 'ops-test'")


def test_database_readings_are_cached(app_client: Open, ops_data: OpsData) -> None:
    import psycopg

    client = app_client(metrics_db_refresh_seconds=60)
    todo = value(samples(client), "market_graphql_jobs", status="todo")
    with psycopg.connect(ops_data.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args) "
            "VALUES ('ops-cache', 'ops:test', '{}')"
        )
    try:
        # Within the refresh interval a scrape does not query PostgreSQL again.
        assert value(samples(client), "market_graphql_jobs", status="todo") == todo
    finally:
        with psycopg.connect(ops_data.url, autocommit=True) as conn:
            conn.execute("DELETE FROM procrastinate_jobs WHERE queue_name = 'ops-cache'")


def test_ingest_counters_and_subscriptions(app_client: Open) -> None:
    client = app_client()
    before = samples(client)
    written = value(before, "market_graphql_ingest_rows_written_total", timeframe="M5") or 0.0
    rejected = value(before, "market_graphql_ingest_rows_rejected_total") or 0.0
    subs = value(before, "market_graphql_subscriptions_active") or 0.0

    raw = pd.DataFrame(
        {
            "ticker": ["X", "X", "X"],
            "time": ["2024-01-01T00:00:00Z", "not a time", "2024-01-01T00:05:00Z"],
            "open": [1.0, 1.0, -1.0],
            "high": [2.0, 2.0, 2.0],
            "low": [0.5, 0.5, 0.5],
            "close": [1.5, 1.5, 1.5],
            "volume": [10.0, 10.0, 10.0],
        }
    )
    checked = validate_chunk(raw, map_columns(list(raw.columns)), pd.Series([2, 3, 4]).to_numpy())
    assert len(checked.rejected) == 2

    class Change:
        timeframe, rows = "M5", 7

    metrics.ingest_written([Change()])
    with metrics.track_subscription():
        metrics.subscriptions.inc()
        during = samples(client)
        metrics.subscriptions.dec()
    after = samples(client)
    assert value(during, "market_graphql_subscriptions_active") == subs + 2
    assert value(after, "market_graphql_subscriptions_active") == subs
    assert value(after, "market_graphql_ingest_rows_written_total", timeframe="M5") == written + 7
    assert value(after, "market_graphql_ingest_rows_rejected_total") == rejected + 2


def test_upserts_count_rows_written(ops_data: OpsData) -> None:
    import asyncio
    from datetime import UTC, datetime

    import asyncpg

    from workers.symbols import SymbolInfo, upsert_symbols
    from workers.upsert import upsert_bars

    def written() -> float:
        got = metrics._rows_written.labels("H1")._value.get()
        return float(got)

    before = written()

    async def write() -> None:
        conn = await asyncpg.connect(ops_data.url)
        try:
            ids = await upsert_symbols(conn, [SymbolInfo("OPSWRITE")])
            ts = [datetime(2024, 2, 1, h, tzinfo=UTC) for h in range(5)]
            rows = [(ids["OPSWRITE"], "H1", t, 1.0, 2.0, 0.5, 1.5, 10.0) for t in ts]
            await upsert_bars(conn, rows)
            await upsert_bars(conn, rows)  # unchanged rows: nothing written the second time
        finally:
            await conn.close()

    asyncio.run(write())
    assert written() == before + 5


def test_two_apps_have_their_own_registries(app_client: Open) -> None:
    first, second = app_client(cache_enabled=False), app_client(cache_enabled=False)
    post(first, "query OnlyFirst { symbols(first: 1) { edges { cursor } } }")
    assert (
        value(
            samples(first),
            "market_graphql_request_duration_seconds_count",
            operation="OnlyFirst",
            outcome="ok",
        )
        == 1
    )
    assert (
        value(
            samples(second),
            "market_graphql_request_duration_seconds_count",
            operation="OnlyFirst",
            outcome="ok",
        )
        is None
    )


def test_metrics_can_be_turned_off(app_client: Open) -> None:
    client = app_client(metrics_enabled=False)
    assert client.get("/metrics").status_code == 404
