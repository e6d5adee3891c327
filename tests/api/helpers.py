"""Shared helpers of the read-API tests: GraphQL calls, reference resampling, scratch databases.

Kept out of conftest on purpose: the tests import what they use from here.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np
import pandas as pd
import psycopg
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hyp_settings
from sqlalchemy import event

from core import db
from core.settings import Settings
from tests.conftest import migrated_settings
from workers.demo import load_demo_data
from workers.symbols import SymbolInfo, upsert_symbols
from workers.upsert import upsert_bars

GraphQL = Callable[..., dict[str, Any]]

#: Hypothesis settings for tests that make HTTP requests: few examples, no deadline.
HYPOTHESIS = hyp_settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
#: For tests whose every example makes many requests.
HYPOTHESIS_FEW = hyp_settings(HYPOTHESIS, max_examples=4)

INTERVALS = ("M1", "M5", "M15", "M30", "H1", "H4", "D1", "W1", "MN1")
INTRADAY_MINUTES = {"M1": 1, "M5": 5, "M15": 15, "M30": 30, "H1": 60, "H4": 240}

#: pandas rules the service's buckets must match (UTC-aligned; ISO weeks; calendar months).
PANDAS_RULES = {
    **{k: f"{m}min" for k, m in INTRADAY_MINUTES.items()},
    "D1": "1D",
    "W1": "W-MON",
    "MN1": "MS",
}

BAR_FIELDS = "time open high low close volume closed"


# --- GraphQL over HTTP -------------------------------------------------------------------


def data_of(result: dict[str, Any]) -> dict[str, Any]:
    """The `data` of a successful response (fails on any error)."""
    assert not result.get("errors"), result.get("errors")
    data: dict[str, Any] = result["data"]
    return data


def post(client: TestClient, query: str, variables: dict[str, Any] | None = None) -> Any:
    """POST a GraphQL request with a client of our own; returns the decoded body (HTTP 200)."""
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    response = client.post("/graphql", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def run(client: TestClient, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """`data` of a request that must succeed."""
    return data_of(post(client, query, variables))


def bad_input(result: dict[str, Any]) -> str:
    """The message of a BAD_USER_INPUT error (asserts that is what came back)."""
    errors = result.get("errors")
    assert errors, f"expected a BAD_USER_INPUT error, got {result}"
    codes = [(e.get("extensions") or {}).get("code") for e in errors]
    assert codes and all(c == "BAD_USER_INPUT" for c in codes), errors
    message: str = errors[0]["message"]
    assert message
    return message


def ts(value: str) -> datetime:
    """A DateTime from the API (always with an offset)."""
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed.astimezone(UTC)


def iso(value: datetime | pd.Timestamp) -> str:
    """An API time argument."""
    return pd.Timestamp(value).isoformat()


# --- Reference data read straight from the database ---------------------------------------


def base_bars(database_url: str, ticker: str, timeframe: str) -> pd.DataFrame:
    """A symbol's stored bars at `timeframe`, oldest first, indexed by UTC start time."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT b.ts, b.open, b.high, b.low, b.close, b.volume FROM bars b "
            "JOIN symbols s ON s.id = b.symbol_id WHERE s.ticker = %s AND b.timeframe = %s "
            "ORDER BY b.ts",
            (ticker, timeframe),
        ).fetchall()
    frame = pd.DataFrame(rows, columns=["ts", "open", "high", "low", "close", "volume"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    for col in ("open", "high", "low", "close", "volume"):
        frame[col] = frame[col].astype(float)
    return frame.set_index("ts")


@functools.lru_cache(maxsize=256)
def _stored_bars(database_url: str, ticker: str, timeframe: str) -> pd.DataFrame:
    return base_bars(database_url, ticker, timeframe)


def stored_bars(database_url: str, ticker: str, timeframe: str) -> pd.DataFrame:
    """`base_bars`, remembered for the session: only for data no test writes to."""
    return _stored_bars(database_url, ticker, timeframe).copy()


def base_length(timeframe: str) -> pd.DateOffset | pd.Timedelta:
    """The length of one stored bar."""
    if timeframe in INTRADAY_MINUTES:
        return pd.Timedelta(minutes=INTRADAY_MINUTES[timeframe])
    return {"D1": pd.Timedelta(days=1), "W1": pd.Timedelta(days=7)}.get(
        timeframe, pd.DateOffset(months=1)
    )


def bucket_end(interval: str, start: pd.Timestamp) -> pd.Timestamp:
    """End of the bucket starting at `start` (computed by pandas, not by the service)."""
    if interval == "MN1":
        return start + pd.offsets.MonthBegin(1)
    if interval == "W1":
        return start + pd.Timedelta(days=7)
    if interval == "D1":
        return start + pd.Timedelta(days=1)
    return start + pd.Timedelta(minutes=INTRADAY_MINUTES[interval])


def resample(base: pd.DataFrame, interval: str, base_timeframe: str) -> pd.DataFrame:
    """The reference: pandas `resample` of the base bars (left label, left-closed, UTC origin),
    empty buckets dropped, plus `closed` (bucket end not after the end of the newest base bar)."""
    if base.empty:
        return base.assign(closed=pd.Series(dtype=bool))
    if interval == base_timeframe:
        out = base.copy()
    else:
        rule = PANDAS_RULES[interval]
        # Intraday buckets count from the UTC epoch; days, weeks (W-MON) and months (MS) are
        # calendar buckets of the UTC index, where pandas takes no origin.
        extra = {"origin": "epoch"} if interval in INTRADAY_MINUTES else {}
        buckets = base.resample(rule, label="left", closed="left", **extra)
        out = buckets.agg(
            {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
        )
        out = out[buckets["open"].count() > 0]
    newest_end = base.index[-1] + base_length(base_timeframe)
    out["closed"] = [bucket_end(interval, t) <= newest_end for t in out.index]
    return out


def frame_of_bars(bars: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """API bars (time, open, high, low, close, volume, closed) as a frame like `resample`'s."""
    return _frame(
        [b["time"] for b in bars],
        {c: [b[c] for b in bars] for c in ("open", "high", "low", "close", "volume", "closed")},
    )


def frame_of_series(series: dict[str, Any]) -> pd.DataFrame:
    """A `series` answer (columns) as a frame like `resample`'s."""
    cols = ("open", "high", "low", "close", "volume", "closed")
    lengths = {len(series[c]) for c in ("time", *cols)}
    assert len(lengths) == 1, f"series columns differ in length: {lengths}"
    return _frame(series["time"], {c: series[c] for c in cols})


def _frame(times: list[str], cols: dict[str, list[Any]]) -> pd.DataFrame:
    assert all(t[-6] in "+-" or t.endswith("Z") for t in times), "times lack an offset"
    index = pd.DatetimeIndex(pd.to_datetime(times, utc=True, format="ISO8601"), name="ts")
    frame = pd.DataFrame({c: np.asarray(v, dtype=float) for c, v in cols.items()}, index=index)
    frame["closed"] = frame["closed"].astype(bool)
    return frame


def assert_same_bars(got: pd.DataFrame, want: pd.DataFrame, what: str) -> None:
    """Same bucket starts, OHLC exactly, volume to float rounding, same `closed` flags."""
    assert list(got.index) == list(want.index), (
        f"{what}: bucket starts differ: {len(got)} vs {len(want)} buckets; "
        f"first differences {_first_diff(list(got.index), list(want.index))}"
    )
    for col in ("open", "high", "low", "close"):
        diff = got[col].to_numpy() != want[col].to_numpy()
        assert not diff.any(), f"{what}: {col} differs at {list(got.index[diff][:5])}"
    vol_err = (got["volume"] - want["volume"]).abs() > 1e-9 * want["volume"].abs().clip(lower=1)
    assert not vol_err.any(), f"{what}: volume differs at {list(got.index[vol_err][:5])}"
    closed_diff = got["closed"].to_numpy() != want["closed"].to_numpy()
    assert not closed_diff.any(), f"{what}: closed differs at {list(got.index[closed_diff])}"


def _first_diff(a: list[Any], b: list[Any]) -> list[Any]:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return [i, x, y]
    return [min(len(a), len(b)), a[len(b) :][:1], b[len(a) :][:1]]


# --- Paging --------------------------------------------------------------------------------

BARS_PAGE = f"""
query($t: String!, $i: Interval!, $o: BarOrder!, $first: Int, $after: String,
      $last: Int, $before: String, $from: DateTime, $to: DateTime) {{
  symbol(ticker: $t) {{
    bars(interval: $i, order: $o, first: $first, after: $after, last: $last, before: $before,
         from: $from, to: $to) {{
      edges {{ cursor node {{ {BAR_FIELDS} }} }}
      pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
    }}
  }}
}}
"""


@dataclass
class Walk:
    """The bars met walking a connection page by page, and the pages' infos."""

    bars: list[dict[str, Any]] = field(default_factory=list)
    cursors: list[str] = field(default_factory=list)
    pages: list[dict[str, Any]] = field(default_factory=list)


def bars_page(gql: GraphQL, ticker: str, interval: str, order: str, **args: Any) -> dict[str, Any]:
    """One page of `symbol(ticker).bars` (the connection)."""
    variables = {"t": ticker, "i": interval, "o": order, **args}
    conn: dict[str, Any] = data_of(gql(BARS_PAGE, variables))["symbol"]["bars"]
    return conn


def walk_forward(
    gql: GraphQL,
    ticker: str,
    interval: str,
    order: str,
    sizes: Callable[[int], int],
    after: str | None = None,
    **args: Any,
) -> Walk:
    """Follow first/after from the start (or `after`) to the end; page n has `sizes(n)` bars."""
    walk = Walk()
    started = after is not None
    for n in range(100_000):
        conn = bars_page(gql, ticker, interval, order, first=sizes(n), after=after, **args)
        info = conn["pageInfo"]
        edges = conn["edges"]
        walk.pages.append(info)
        walk.bars.extend(e["node"] for e in edges)
        walk.cursors.extend(e["cursor"] for e in edges)
        if edges:
            assert info["startCursor"] == edges[0]["cursor"]
            assert info["endCursor"] == edges[-1]["cursor"]
        assert info["hasPreviousPage"] is (started or n > 0), (n, info)
        if not info["hasNextPage"]:
            return walk
        assert edges, f"page {n} is empty but says more follow"
        after = info["endCursor"]
    raise AssertionError("walk did not end")


def walk_backward(
    gql: GraphQL,
    ticker: str,
    interval: str,
    order: str,
    sizes: Callable[[int], int],
    **args: Any,
) -> Walk:
    """Follow last/before from the end to the start; bars come back in list order."""
    pages: list[list[dict[str, Any]]] = []
    cursor_pages: list[list[str]] = []
    walk = Walk()
    before: str | None = None
    for n in range(100_000):
        conn = bars_page(gql, ticker, interval, order, last=sizes(n), before=before, **args)
        info = conn["pageInfo"]
        edges = conn["edges"]
        walk.pages.append(info)
        pages.append([e["node"] for e in edges])
        cursor_pages.append([e["cursor"] for e in edges])
        if edges:
            assert info["startCursor"] == edges[0]["cursor"]
            assert info["endCursor"] == edges[-1]["cursor"]
        assert info["hasNextPage"] is (before is not None), (n, info)
        if not info["hasPreviousPage"]:
            break
        assert edges, f"page {n} is empty but says more precede"
        before = info["startCursor"]
    else:
        raise AssertionError("walk did not end")
    for page, cursors in zip(reversed(pages), reversed(cursor_pages), strict=True):
        walk.bars.extend(page)
        walk.cursors.extend(cursors)
    return walk


# --- SQL statement counting ----------------------------------------------------------------


@contextmanager
def count_statements(client: TestClient) -> Iterator[list[str]]:
    """The SQL statements the app's engine runs inside the block."""
    statements: list[str] = []
    lock = threading.Lock()

    def on_execute(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        with lock:
            statements.append(statement)

    engine = client.app.state.services.engine.sync_engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


# --- Scratch databases ---------------------------------------------------------------------


def fresh_database(make_database: Callable[[], str], *, demo: bool = False) -> str:
    """A new database migrated to head (with the demo data if asked); returns its URL."""
    url = make_database()
    db.upgrade(migrated_settings(url))
    if demo:
        with_connection(url, load_demo_data)
    return url


_SCRATCH: list[str] = []


def scratch_database(make_database: Callable[[], str]) -> str:
    """One migrated database, apart from the demo one, shared by the API tests of a session:
    each module stores symbols of its own names there (and writes only to those)."""
    if not _SCRATCH:
        _SCRATCH.append(fresh_database(make_database))
    return _SCRATCH[0]


def with_connection(url: str, fn: Callable[[asyncpg.Connection], Any]) -> Any:
    """Run `await fn(conn)` on an asyncpg connection to `url` (in a loop of its own)."""
    settings: Settings = migrated_settings(url)

    async def go() -> Any:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            return await fn(conn)
        finally:
            await conn.close()

    return asyncio.run(go())


def store_bars(
    url: str,
    bars: dict[str, pd.DataFrame],
    timeframe: str,
    infos: dict[str, SymbolInfo] | None = None,
) -> dict[str, int]:
    """Create the symbols (ticker → frame indexed by ts with OHLCV) and upsert their bars."""
    infos = infos or {}

    async def go(conn: asyncpg.Connection) -> dict[str, int]:
        ids = await upsert_symbols(
            conn, [infos.get(t, SymbolInfo(t, f"{t} Test Co.", "TEST")) for t in bars]
        )
        records: list[tuple[object, ...]] = []
        for ticker, frame in bars.items():
            for t, row in frame.iterrows():
                records.append(
                    (
                        ids[ticker],
                        timeframe,
                        pd.Timestamp(t).to_pydatetime(),
                        float(row["open"]),
                        float(row["high"]),
                        float(row["low"]),
                        float(row["close"]),
                        float(row["volume"]),
                    )
                )
        if records:
            await upsert_bars(conn, records, source="test")
        return ids

    result: dict[str, int] = with_connection(url, go)
    return result


def ohlcv(times: Sequence[datetime | pd.Timestamp], seed: int = 0) -> pd.DataFrame:
    """Deterministic, valid OHLCV bars at the given start times (distinct values per bar)."""

    rng = np.random.default_rng(seed)
    n = len(times)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0.0001, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0.0001, 0.01, n))
    volume = rng.integers(1, 10_000, n).astype(float)
    index = pd.DatetimeIndex([pd.Timestamp(t) for t in times]).tz_convert("UTC")
    return pd.DataFrame(
        {
            "open": open_.round(4),
            "high": high.round(4),
            "low": low.round(4),
            "close": close.round(4),
            "volume": volume,
        },
        index=index,
    )


#: Settings that keep the service's cost limit and rate limiter out of the way of tests that
#: read many bars (the limits have tests of their own elsewhere).
UNLIMITED: dict[str, object] = {"rate_limit_cost_per_minute": 0, "max_query_cost": 10**9}


@contextmanager
def app_client(url: str, **overrides: object) -> Iterator[TestClient]:
    """A TestClient over a fresh app on `url` (lifespan run), without cost or rate limits
    unless `overrides` set them."""
    from graphql_api.app import create_app

    settings = migrated_settings(url, **{**UNLIMITED, **overrides})
    with TestClient(create_app(settings)) as client:
        yield client


#: Settings of an app whose SQL statements are counted: every request reads PostgreSQL (no
#: cache) and runs once (the test suite's fast-path verification runs each query twice),
#: through the resolvers and their loaders, whose batching these counts are about (compiled
#: plans answer in one statement: tests/api/test_compiled.py counts those).
COUNTING: dict[str, object] = {
    "cache_enabled": False,
    "verify_fast_path": False,
    "compiled_plans": False,
}


def gql_for(client: TestClient) -> GraphQL:
    """A `gql`-like function posting to `client`."""
    return lambda query, variables=None: post(client, query, variables)
