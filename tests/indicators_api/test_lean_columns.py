"""The lean indicator response (issue 19): columns read as binary, built and checked in numpy,
passed to the encoder as they are; the JSON must be what the per-value path produced."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from graphql import GraphQLFloat, GraphQLNonNull, GraphQLScalarType
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sqlalchemy import event

from core.db import create_engine
from core.settings import Settings
from graphql_api.fastpath import _leaf_list
from indicators import get_indicator
from loaders.columns import FloatColumn, TimeColumn, float_column
from loaders.indicators import _datetimes, round_significant
from loaders.sql import fetch
from tests.conftest import GraphQL

#: Ten single-line indicators, as benchmarks/indicators_e2e.py asks for them.
TEN = {
    "sma": ("SMA", "(period: 50)", {"timeperiod": 50}),
    "ema": ("EMA", "(period: 20)", {"timeperiod": 20}),
    "rsi": ("RSI", "", {}),
    "atr": ("ATR", "", {}),
    "obv": ("OBV", "", {}),
    "adx": ("ADX", "", {}),
    "cci": ("CCI", "", {}),
    "willr": ("WILLR", "", {}),
    "mfi": ("MFI", "", {}),
    "kama": ("KAMA", "", {}),
}


def _per_value(values: np.ndarray) -> list[float | None]:
    """The conversion the loader made before: one Python float or None per value."""
    return [None if math.isnan(x) else x for x in values.tolist()]


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.integers(0, 300),
        elements=st.floats(allow_infinity=False, width=64) | st.just(math.nan),
    )
)
def test_float_column_equals_the_per_value_conversion(values: np.ndarray) -> None:
    column = float_column(values)
    assert column.__class__ is FloatColumn
    assert column.has_null == bool(np.isnan(values).any())
    expected = _per_value(values)
    assert column == expected
    encoded = orjson.dumps(column)
    assert encoded == orjson.dumps(expected)
    # The JSON parses back to the very same doubles (orjson prints the shortest round trip).
    assert orjson.loads(encoded) == expected


def test_an_infinity_leaves_the_column_to_the_checked_path() -> None:
    column = float_column(np.array([1.0, np.nan, np.inf]))
    assert column.__class__ is list
    assert column == [1.0, None, math.inf]
    # ...where graphql-core's completion refuses it, as before.
    assert _leaf_list(GraphQLFloat, column) is None


def test_the_fast_path_passes_checked_columns_only_where_the_type_allows() -> None:
    with_null = float_column(np.array([np.nan, 1.5]))
    without = float_column(np.array([0.25, 1.5]))
    assert _leaf_list(GraphQLFloat, with_null) is with_null
    assert _leaf_list(GraphQLNonNull(GraphQLFloat), without) is without
    # A null where the type forbids one goes down the normal path (which reports the error).
    assert _leaf_list(GraphQLNonNull(GraphQLFloat), with_null) is None
    times = _datetimes(np.array([0, 1_700_000_000_123_456], dtype=np.int64))
    assert times.__class__ is TimeColumn
    date_time = GraphQLScalarType("DateTime")
    assert _leaf_list(GraphQLNonNull(date_time), times) is times


def test_times_are_exact_and_encode_as_isoformat() -> None:
    micros = np.array([-1, 0, 946_684_800_000_000, 1_700_000_000_123_456], dtype=np.int64)
    times = _datetimes(micros)
    assert [round(t.timestamp() * 1e6) for t in times] == micros.tolist()
    assert all(t.utcoffset() is not None and not t.utcoffset() for t in times)
    assert orjson.loads(orjson.dumps(times)) == [t.isoformat() for t in times]


async def _stored(settings: Settings, ticker: str) -> dict[str, np.ndarray]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        rows = await conn.fetch(
            "SELECT ts, open, high, low, close, volume FROM bars b JOIN symbols s "
            "ON s.id = b.symbol_id WHERE s.ticker = $1 AND timeframe = 'D1' ORDER BY ts",
            ticker,
        )
    finally:
        await conn.close()
    cols = {
        name: np.array([r[name] for r in rows], dtype=np.float64)
        for name in ("open", "high", "low", "close", "volume")
    }
    cols["ts"] = np.array([r["ts"] for r in rows], dtype=object)
    return cols


@pytest.mark.parametrize("digits", [None, 10])
def test_lean_response_equals_the_library_on_the_stored_bars(
    gql: GraphQL, settings: Settings, digits: int | None
) -> None:
    """Ten indicators over AAPL's whole daily history, shared and per-indicator `time`: the
    parsed JSON holds exactly the library's doubles on the stored bars, and the stored bar
    times. The session runs every query on both execution paths (tests/conftest.py), so
    the columns passed as they are also equal graphql-core's own completion of them."""
    fields = " ".join(f"{name}{args} {{ time value }}" for name, (_, args, _) in TEN.items())
    extra = "" if digits is None else f", significantDigits: {digits}"
    body = gql(
        '{ symbol(ticker: "AAPL") { indicators(interval: D1, from: "1990-01-01T00:00:00Z", '
        f'to: "2030-01-01T00:00:00Z"{extra}) {{ time {fields} }} }} }}'
    )
    assert "errors" not in body, body
    ind: dict[str, Any] = body["data"]["symbol"]["indicators"]
    stored = asyncio.run(_stored(settings, "AAPL"))
    times = [datetime.fromisoformat(t) for t in ind["time"]]
    assert times == stored["ts"].tolist()
    assert len(times) > 3000
    data = {k: stored[k] for k in ("open", "high", "low", "close", "volume")}
    for name, (indicator, _, params) in TEN.items():
        assert ind[name]["time"] == ind["time"], name
        values = get_indicator(indicator).compute(data, params)["value"]
        if digits is not None:
            values = round_significant(values, digits)
        assert ind[name]["value"] == _per_value(values), name


def test_api_connections_plan_generically(settings: Settings) -> None:
    """Every pooled API connection runs with PLAN_CACHE_MODE (default: generic plans), which
    the indicator batch statements need: PostgreSQL never picks the generic plan of a batch
    over arrays by itself and planned it anew on every call (core/settings.py)."""

    async def run() -> list[str]:
        engine = create_engine(settings)
        try:
            show = "SELECT current_setting('plan_cache_mode')"
            return [(await fetch(engine, show))[0][0] for _ in range(4)]
        finally:
            await engine.dispose()

    assert asyncio.run(run()) == ["force_generic_plan"] * 4
    auto = settings.model_copy(update={"plan_cache_mode": "auto"})

    async def run_auto() -> str:
        engine = create_engine(auto)
        try:
            return str((await fetch(engine, "SELECT current_setting('plan_cache_mode')"))[0][0])
        finally:
            await engine.dispose()

    assert asyncio.run(run_auto()) == "auto"


def _indicator_statements(client: TestClient, fields: str) -> list[str]:
    seen: list[str] = []

    def keep(*args: Any, **kw: Any) -> None:
        if "timestamptz_send" in args[2]:
            seen.append(args[2])

    engine = client.app.state.services.engine.sync_engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", keep)
    try:
        query = '{ symbol(ticker: "MSFT") { indicators(interval: D1) { ' + fields + " } } }"
        response = client.post("/graphql", json={"query": query})
        assert "errors" not in response.json(), response.json()
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    return seen


@pytest.mark.parametrize(
    ("fields", "read"),
    [
        ("rsi { value }", {"close"}),
        ("time", {"close"}),
        ("time rsi { value } atr { value }", {"high", "low", "close"}),
        ("rsi { value } bop { value } obv { value }", {"open", "high", "low", "close", "volume"}),
    ],
)
def test_the_statement_reads_only_the_columns_its_indicators_need(
    client: TestClient, fields: str, read: set[str]
) -> None:
    statements = _indicator_statements(client, fields)
    assert statements
    for sql in statements:
        reads = {c for c in ("open", "high", "low", "close", "volume") if f"v_{c}" in sql}
        assert reads == read, fields
