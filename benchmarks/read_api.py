"""Read API benchmark: the GraphQL service against a raw asyncpg + orjson floor, in one run.

    .venv/bin/python benchmarks/read_api.py            # full run (a few minutes)
    .venv/bin/python benchmarks/read_api.py --quick    # smoke run (small data, few requests)

What it does:

1. Creates a database of its own on the server at `--database-url` (dropped at the end),
   migrates it, and loads a fixed deterministic dataset: 500 symbols (S0000..S0499) x 2,000
   one-minute bars each, through `upsert_symbols` and `upsert_bars` (the COPY path), and one
   more symbol (LONG) with 100,000 one-minute bars for case (f).
2. Starts the service as in production, in a subprocess: `uvicorn graphql_api.app:create_app
   --factory` with no reload and no debug, DATABASE_URL in its environment, uncached
   (CACHE_ENABLED=false, no Redis) and without rate limit (see SERVICE_ENV; `--service-env`
   changes that); waits for /readyz.
3. For each case, at concurrency 1 and 8 (httpx.AsyncClient, keep-alive, `accept-encoding:
   gzip` like a browser, a warm-up first, then a fixed number of requests): requests/s and
   p50/p95 latency. A request's latency runs from sending it to having its whole body,
   decompressed. Every measured response is checked for status 200 and no `errors`; a few
   per case and concurrency are parsed and their item counts checked.
4. In the same run, the floor for each case: the same rows fetched with raw asyncpg (a pool;
   the simplest efficient SQL) and encoded with orjson into the same JSON shape (cursor strings
   included; the bytes are compared with the service's), timed the same way. The floor has no
   HTTP and no gzip: the `/healthz` row shows what a bare HTTP round trip costs with this
   client. Service and floor (and, at concurrency 1, the service without gzip) are timed in
   alternating rounds, so that load from elsewhere on a shared machine falls on both alike.
5. Prints the table (service, floor, ratio of p50s), and a section on response size with and
   without gzip (p50 at concurrency 1 both ways).
6. Beside case (f), in the same alternating rounds, the same 100,000 bars as an Apache Arrow
   IPC stream from `GET /download/bars` (`Accept: application/vnd.apache.arrow.stream`; the
   first response is read with pyarrow and its rows counted): row `f-arrow`, its ratio taken
   to the same floor (`--no-arrow` leaves it out).

`--cases f` runs only the named cases (comma-separated); with only (f), the 500 symbols are
not loaded.

The client runs on the same (2-core) machine as the service and PostgreSQL: its CPU time
(HTTP, gzip decoding) competes with theirs, as it would on a shared host.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import functools
import math
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import orjson
import pandas as pd
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core import db  # noqa: E402
from core.settings import load_settings  # noqa: E402
from workers.symbols import SymbolInfo, upsert_symbols  # noqa: E402
from workers.upsert import frame_records, upsert_bars  # noqa: E402

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SEED = 20_240_102
FIRST_BAR = datetime(2024, 1, 2, tzinfo=UTC)  # a Tuesday, 00:00 UTC
ONE_TICKER = "S0042"  # the symbol of the one-symbol cases
DEEP = 1_800  # how deep the cursor of case (d) lies
HEADERS_GZIP = {"content-type": "application/json", "accept-encoding": "gzip, deflate"}
HEADERS_PLAIN = {"content-type": "application/json", "accept-encoding": "identity"}
ARROW = "application/vnd.apache.arrow.stream"
#: The service's environment besides DATABASE_URL: uncached, no rate limit (one client hammers
#: it), no Redis. `--service-env KEY=VALUE` adds or overrides (e.g. CACHE_ENABLED=true).
SERVICE_ENV = {"REDIS_URL": "", "CACHE_ENABLED": "false", "RATE_LIMIT_COST_PER_MINUTE": "0"}
#: Requests per case and concurrency: fixed, sized so a full run stays within a few minutes.
DEFAULT_REQUESTS = {"healthz": 300, "a": 30, "b": 80, "c": 200, "d": 200, "e": 80, "f": 16}
#: Service and floor run in this many alternating rounds (see `interleaved`).
ROUNDS = 5
QUICK_REQUESTS = {"healthz": 50, "a": 6, "b": 10, "c": 10, "d": 10, "e": 10, "f": 4}
LONG_TICKER = "LONG"  # the symbol of case (f): one long series
LONG_BARS = 100_000


def ticker(i: int) -> str:
    """The ticker of the i-th benchmark symbol."""
    return f"S{i:04d}"


# --- dataset -------------------------------------------------------------------------------


def make_bars(n_symbols: int, n_bars: int) -> dict[str, np.ndarray]:
    """Deterministic seeded random walks, shape (symbols, bars), valid OHLCV after rounding."""
    rng = np.random.default_rng(SEED)
    start = rng.uniform(5.0, 500.0, n_symbols).round(2)
    close = start[:, None] * np.exp(np.cumsum(rng.normal(0.0, 0.0008, (n_symbols, n_bars)), 1))
    close = close.round(4)
    open_ = np.concatenate([start[:, None], close[:, :-1]], axis=1)
    wiggle = np.abs(rng.normal(0.0, 0.0005, (2, n_symbols, n_bars))) * close
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    high = np.maximum((top + wiggle[0]).round(4), top)
    low = np.minimum((bottom - wiggle[1]).round(4), bottom)
    volume = rng.integers(100, 5_000, (n_symbols, n_bars)).astype(np.float64) * 10
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def bar_times(n_bars: int, calendar: str) -> pd.DatetimeIndex:
    """Start times of a symbol's M1 bars: consecutive minutes from FIRST_BAR on the 24/7
    calendar, or the regular-session minutes of NYSE sessions from FIRST_BAR on XNYS (so
    that every bar is kept by the default `session: REGULAR` and by `ALL` alike)."""
    if calendar == "24/7":
        return pd.date_range(FIRST_BAR, periods=n_bars, freq="min")
    from core.calendars import session_frame

    sessions = session_frame(calendar, FIRST_BAR.date(), FIRST_BAR.date() + timedelta(days=60))
    minutes: list[pd.DatetimeIndex] = [
        pd.date_range(op, cl - pd.Timedelta(minutes=1), freq="min")
        for op, cl in zip(sessions["open"], sessions["close"], strict=True)
    ]
    times = minutes[0].append(minutes[1:])
    if len(times) < n_bars:
        raise ValueError(f"{calendar}: fewer than {n_bars} session minutes in 60 days")
    return times[:n_bars]


async def load_dataset(
    dsn: str, n_symbols: int, n_bars: int, n_long: int = 0, calendar: str = "24/7"
) -> float:
    """Symbols and bars through the ingest code (COPY path); returns seconds taken.

    With `n_long`, one more symbol (LONG_TICKER) holds that many M1 bars, for case (f).
    `calendar` is the symbols' exchange calendar (see bar_times)."""
    t0 = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        infos = [
            SymbolInfo(
                ticker(i),
                f"Benchmark Synthetic {i:04d} Corp.",
                "BENCH",
                "equity",
                "USD",
                "UTC",
                calendar,
            )
            for i in range(n_symbols)
        ]
        ids = await upsert_symbols(conn, infos)
        data = make_bars(n_symbols, n_bars)
        times = bar_times(n_bars, calendar)
        batch = 50
        for lo in range(0, n_symbols, batch):
            hi = min(lo + batch, n_symbols)
            frame = pd.DataFrame(
                {
                    "symbol_id": np.repeat([ids[ticker(i)] for i in range(lo, hi)], n_bars),
                    "timeframe": "M1",
                    "ts": np.tile(times, hi - lo),
                    **{k: v[lo:hi].ravel() for k, v in data.items()},
                }
            )
            await upsert_bars(conn, frame_records(frame), source="benchmark")
        if n_long:
            info = SymbolInfo(
                LONG_TICKER, "Benchmark Long Series", "BENCH", "equity", "USD", "UTC", "24/7"
            )
            long_id = (await upsert_symbols(conn, [info]))[LONG_TICKER]
            walk = make_bars(1, n_long)
            frame = pd.DataFrame(
                {
                    "symbol_id": long_id,
                    "timeframe": "M1",
                    "ts": pd.date_range(FIRST_BAR, periods=n_long, freq="min"),
                    **{k: v[0] for k, v in walk.items()},
                }
            )
            await upsert_bars(conn, frame_records(frame), source="benchmark")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - t0


# --- the cases -----------------------------------------------------------------------------

Q_A = """query CaseA {
  symbols(first: 50) { edges { cursor node { ticker
    bars(interval: M1, first: 100) { edges { cursor node { time open high low close volume } } }
  } } }
}"""
Q_B = """query CaseB($ticker: String!) {
  symbol(ticker: $ticker) {
    bars(interval: M1, first: 1000) { nodes { time open high low close volume } }
  }
}"""
Q_C = """query CaseC { symbols(first: 100) { nodes { ticker name exchange } } }"""
Q_D = """query CaseD($ticker: String!, $after: String!) {
  symbol(ticker: $ticker) {
    bars(interval: M1, first: 100, after: $after) {
      edges { cursor node { time open high low close volume } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""
Q_E = """query CaseE($ticker: String!) {
  symbol(ticker: $ticker) {
    series(interval: M1, maxPoints: 100000) { interval time open high low close volume }
  }
}"""
Q_D_CURSOR = f"""query DeepCursor($ticker: String!) {{
  symbol(ticker: $ticker) {{ bars(interval: M1, first: {DEEP}) {{ pageInfo {{ endCursor }} }} }}
}}"""


@dataclass
class Case:
    """One benchmark case: its GraphQL request and how many items a correct answer holds."""

    key: str
    title: str
    query: str
    variables: dict[str, Any]
    expected: int
    count: Callable[[dict[str, Any]], int]
    floor: Callable[[asyncpg.Pool], Awaitable[bytes]] | None = None
    #: The same rows from /download/bars as Arrow IPC (its query string), timed beside.
    arrow: dict[str, str] | None = None

    @property
    def body(self) -> bytes:
        return orjson.dumps({"query": self.query, "variables": self.variables})


def _count_a(data: dict[str, Any]) -> int:
    edges = data["symbols"]["edges"]
    if len(edges) != 50 or not all(e["cursor"] for e in edges):
        return -1
    return sum(len(e["node"]["bars"]["edges"]) for e in edges)


def _count_d(data: dict[str, Any], expected_first: str) -> int:
    edges = data["symbol"]["bars"]["edges"]
    if not edges or edges[0]["node"]["time"] != expected_first:
        return -1
    return len(edges)


def _count_e(data: dict[str, Any]) -> int:
    s = data["symbol"]["series"]
    n = len(s["time"])
    if s["interval"] != "M1" or any(len(s[k]) != n for k in ("open", "high", "low", "close")):
        return -1
    return n


# --- the floor: raw asyncpg + orjson -------------------------------------------------------

_BAR_FORMAT = b"v2:bar:%d:M1:%d"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def bar_cursor(symbol_id: int, ts: datetime) -> str:
    """The service's bar cursor (same bytes), computed the cheap way."""
    raw = _BAR_FORMAT % (symbol_id, (ts - _EPOCH) // _US)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def symbol_cursor(t: str) -> str:
    """The service's symbol cursor (same bytes)."""
    return base64.urlsafe_b64encode(b"v1:sym:" + t.encode()).rstrip(b"=").decode()


def parse_bar_cursor(cursor: str) -> tuple[int, datetime]:
    """The symbol id and bar start a bar cursor points at."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    _, _, symbol_id, _, micros = raw.split(b":")
    return int(symbol_id), _EPOCH + int(micros) * _US


F_A = """
SELECT s.ticker, b.ts, b.open, b.high, b.low, b.close, b.volume, s.id
FROM (SELECT id, ticker FROM symbols ORDER BY ticker LIMIT 50) s
CROSS JOIN LATERAL (
    SELECT ts, open, high, low, close, volume FROM bars
    WHERE symbol_id = s.id AND timeframe = 'M1' ORDER BY ts DESC LIMIT 100
) b
"""
F_B = """
SELECT ts, open, high, low, close, volume FROM bars
WHERE symbol_id = (SELECT id FROM symbols WHERE ticker = $1) AND timeframe = 'M1'
ORDER BY ts DESC LIMIT 1000
"""
F_C = "SELECT ticker, name, exchange FROM symbols ORDER BY ticker LIMIT 100"
F_D = """
SELECT ts, open, high, low, close, volume FROM bars
WHERE symbol_id = (SELECT id FROM symbols WHERE ticker = $1) AND timeframe = 'M1' AND ts < $2
ORDER BY ts DESC LIMIT 101
"""
F_E = """
SELECT array_agg(ts), array_agg(open), array_agg(high), array_agg(low), array_agg(close),
       array_agg(volume)
FROM (
    SELECT ts, open, high, low, close, volume FROM bars
    WHERE symbol_id = (SELECT id FROM symbols WHERE ticker = $1) AND timeframe = 'M1'
    ORDER BY ts
) q
"""


def _bar(r: asyncpg.Record) -> dict[str, Any]:
    return {"time": r[0], "open": r[1], "high": r[2], "low": r[3], "close": r[4], "volume": r[5]}


async def floor_a(pool: asyncpg.Pool) -> bytes:
    rows = await pool.fetch(F_A)
    # Rows come grouped per symbol, symbols in ticker order, bars newest first (nested loop).
    edges: list[dict[str, Any]] = []
    current: str | None = None
    bar_edges: list[dict[str, Any]] = []
    for r in rows:
        if r[0] != current:
            current = r[0]
            bar_edges = []
            node = {"ticker": current, "bars": {"edges": bar_edges}}
            edges.append({"cursor": symbol_cursor(current), "node": node})
        ts = r[1]
        bar_edges.append(
            {
                "cursor": bar_cursor(r[7], ts),
                "node": {
                    "time": ts,
                    "open": r[2],
                    "high": r[3],
                    "low": r[4],
                    "close": r[5],
                    "volume": r[6],
                },
            }
        )
    return orjson.dumps({"data": {"symbols": {"edges": edges}}})


async def floor_b(pool: asyncpg.Pool) -> bytes:
    rows = await pool.fetch(F_B, ONE_TICKER)
    return orjson.dumps({"data": {"symbol": {"bars": {"nodes": [_bar(r) for r in rows]}}}})


async def floor_c(pool: asyncpg.Pool) -> bytes:
    rows = await pool.fetch(F_C)
    nodes = [{"ticker": r[0], "name": r[1], "exchange": r[2]} for r in rows]
    return orjson.dumps({"data": {"symbols": {"nodes": nodes}}})


def make_floor_d(cursor: str) -> Callable[[asyncpg.Pool], Awaitable[bytes]]:
    async def floor_d(pool: asyncpg.Pool) -> bytes:
        symbol_id, ts = parse_bar_cursor(cursor)
        rows = await pool.fetch(F_D, ONE_TICKER, ts)
        more, rows = len(rows) > 100, rows[:100]
        edges = [{"cursor": bar_cursor(symbol_id, r[0]), "node": _bar(r)} for r in rows]
        page = {"hasNextPage": more, "endCursor": edges[-1]["cursor"] if edges else None}
        return orjson.dumps({"data": {"symbol": {"bars": {"edges": edges, "pageInfo": page}}}})

    return floor_d


async def floor_e(pool: asyncpg.Pool, ticker: str = ONE_TICKER) -> bytes:
    r = await pool.fetchrow(F_E, ticker)
    series = {
        "interval": "M1",
        "time": r[0],
        "open": r[1],
        "high": r[2],
        "low": r[3],
        "close": r[4],
        "volume": r[5],
    }
    return orjson.dumps({"data": {"symbol": {"series": series}}})


# --- timing --------------------------------------------------------------------------------


@dataclass
class Timing:
    """Throughput and latency of one case at one concurrency."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p95_ms: float


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


Call = Callable[[], Awaitable[object]]


async def _run(call: Call, n: int, concurrency: int, latencies: list[float]) -> float:
    """Run `call` n times with `concurrency` workers, each one request after another."""
    tickets: Iterator[int] = iter(range(n))

    async def worker() -> None:
        for _ in tickets:
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


async def timed(call: Call, n: int, concurrency: int) -> Timing:
    """Throughput and latency of n calls at `concurrency`."""
    return (await interleaved([(call, n)], concurrency))[0]


async def interleaved(calls: list[tuple[Call, int]], concurrency: int) -> list[Timing]:
    """Time several calls (n requests each) in alternating rounds, so that load from elsewhere
    on a shared machine falls on all of them alike; one Timing per call."""
    rounds = max(1, min(ROUNDS, *(n // max(concurrency, 2) for _, n in calls)))
    latencies: list[list[float]] = [[] for _ in calls]
    seconds = [0.0] * len(calls)
    for r in range(rounds):
        for i, (call, n) in enumerate(calls):
            share = n * (r + 1) // rounds - n * r // rounds
            seconds[i] += await _run(call, share, concurrency, latencies[i])
    out = []
    for (_, n), lat, sec in zip(calls, latencies, seconds, strict=True):
        lat.sort()
        out.append(Timing(n, sec, n / sec, percentile(lat, 0.5) * 1e3, percentile(lat, 0.95) * 1e3))
    return out


class Service:
    """The service under test: a uvicorn subprocess and an HTTP client for it."""

    def __init__(self, database_url: str, env: dict[str, str]) -> None:
        self.database_url = database_url
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="read-api-bench-", suffix=".log")  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.AsyncClient(
            base_url=self.url,
            timeout=120,
            # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them
            # from its side (a request sent on a connection being closed fails).
            limits=httpx.Limits(
                max_connections=16, max_keepalive_connections=16, keepalive_expiry=2.0
            ),
        )
        self.failures: list[str] = []
        self.retries = 0

    def launch(self) -> None:
        """Start uvicorn as in production: no reload, no debug, one process."""
        env = {**os.environ, **self.env, "DATABASE_URL": self.database_url}
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "graphql_api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    async def start(self) -> None:
        """Launch the service and wait until /readyz answers 200."""
        self.launch()
        assert self.proc is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the service exited with {self.proc.returncode}:\n{self.logs()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                r = await self.client.get("/readyz")
                if r.status_code == 200:
                    return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the service was not ready within 60 s:\n{self.logs()}")

    def logs(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    async def stop(self) -> None:
        await self.client.aclose()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    async def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            return await self.client.post("/graphql", content=body, headers=headers)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            # A keep-alive connection closed under us: retry once, and say so at the end.
            self.retries += 1
            return await self.client.post("/graphql", content=body, headers=headers)

    async def check(self, case: Case, headers: dict[str, str] = HEADERS_GZIP) -> dict[str, Any]:
        """One request, fully checked; returns its sizes and encoding."""
        r = await self.post(case.body, headers)
        doc = orjson.loads(r.content)
        if r.status_code != 200 or doc.get("errors") or doc.get("data") is None:
            raise RuntimeError(f"case {case.key}: bad response {r.status_code}: {r.text[:500]}")
        got = case.count(doc["data"])
        if got != case.expected:
            raise RuntimeError(f"case {case.key}: {got} items, expected {case.expected}")
        return {
            "body_bytes": len(r.content),
            "wire_bytes": r.num_bytes_downloaded,
            "content_encoding": r.headers.get("content-encoding", "identity"),
        }

    async def download(self, params: dict[str, str]) -> httpx.Response:
        """GET /download/bars as Arrow IPC (asking for gzip like the other cases: the
        service does not gzip Arrow)."""
        headers = {"accept": ARROW, "accept-encoding": "gzip, deflate"}
        try:
            return await self.client.get("/download/bars", params=params, headers=headers)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            self.retries += 1
            return await self.client.get("/download/bars", params=params, headers=headers)

    async def check_arrow(self, case: Case) -> dict[str, Any]:
        """One Arrow download, read with pyarrow and checked against the case's count."""
        import pyarrow as pa

        assert case.arrow is not None
        r = await self.download(case.arrow)
        if r.status_code != 200 or r.headers.get("content-type") != ARROW:
            raise RuntimeError(f"case {case.key} (Arrow): {r.status_code}: {r.text[:500]}")
        rows = pa.ipc.open_stream(r.content).read_all().num_rows
        if rows != case.expected:
            raise RuntimeError(f"case {case.key} (Arrow): {rows} rows, expected {case.expected}")
        return {
            "body_bytes": len(r.content),
            "wire_bytes": r.num_bytes_downloaded,
            "content_encoding": r.headers.get("content-encoding", "identity"),
        }

    def arrow_caller(self, case: Case) -> Callable[[], Awaitable[None]]:
        assert case.arrow is not None
        params = case.arrow

        async def call() -> None:
            r = await self.download(params)
            # The whole body has arrived; a cheap check (the first call was read in full).
            if r.status_code != 200 or not r.content.startswith(b"\xff\xff\xff\xff"):
                self.failures.append(f"case {case.key} (Arrow): {r.status_code} {r.text[:300]}")

        return call

    def caller(self, case: Case, headers: dict[str, str]) -> Callable[[], Awaitable[None]]:
        body = case.body

        async def call() -> None:
            r = await self.post(body, headers)
            # A cheap check on every response; a few per case are parsed in full (`check`).
            if r.status_code != 200 or b'"errors"' in r.content:
                self.failures.append(f"case {case.key}: {r.status_code} {r.text[:300]}")

        return call


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the run -------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table."""

    case: str
    concurrency: int
    service: Timing
    floor: Timing | None

    @property
    def ratio(self) -> float | None:
        return self.service.p50_ms / self.floor.p50_ms if self.floor else None


@dataclass
class Results:
    """Everything one run measured."""

    command: str
    machine: str
    dataset: str
    requests: dict[str, int]
    service_env: dict[str, str]
    revision: str = ""
    load_average: list[tuple[float, float, float]] = field(default_factory=list)
    load_seconds: float = 0.0
    rows: list[Row] = field(default_factory=list)
    sizes: dict[str, dict[str, Any]] = field(default_factory=dict)


def build_cases(n_bars: int, n_long: int, deep_cursor: str) -> list[Case]:
    newest = FIRST_BAR + timedelta(minutes=n_bars - 1)
    first_after_cursor = (newest - timedelta(minutes=DEEP)).isoformat()
    t = {"ticker": ONE_TICKER}
    return [
        Case("a", "50 symbols x newest 100 M1 bars, cursors", Q_A, {}, 5_000, _count_a, floor_a),
        Case(
            "b",
            "1 symbol, newest 1,000 M1 bars",
            Q_B,
            t,
            1_000,
            lambda d: len(d["symbol"]["bars"]["nodes"]),
            floor_b,
        ),
        Case(
            "c",
            "first 100 symbols, no bars",
            Q_C,
            {},
            100,
            lambda d: len(d["symbols"]["nodes"]),
            floor_c,
        ),
        Case(
            "d",
            f"1 symbol, 100 M1 bars after a cursor {DEEP} deep",
            Q_D,
            {**t, "after": deep_cursor},
            100,
            lambda d: _count_d(d, first_after_cursor),
            make_floor_d(deep_cursor),
        ),
        Case(
            "e",
            f"1 symbol, series of all {n_bars:,} M1 bars",
            Q_E,
            t,
            n_bars,
            _count_e,
            floor_e,
        ),
        Case(
            "f",
            f"1 symbol, series of all {n_long:,} M1 bars",
            Q_E,
            {"ticker": LONG_TICKER},
            n_long,
            _count_e,
            functools.partial(floor_e, ticker=LONG_TICKER),
            {"tickers": LONG_TICKER, "interval": "M1", "maxPoints": str(n_long)},
        ),
    ]


#: The arguments that give the buckets served before sessions existed.
UTC_ARGS = "alignment: UTC, session: ALL"


def utc_twin(case: Case) -> Case:
    """`case` asking for UTC alignment and every stored bar (`UTC_ARGS`)."""
    query = case.query.replace("(interval: M1,", f"(interval: M1, {UTC_ARGS},")
    assert query != case.query, case.key
    return dataclasses.replace(
        case, key=f"{case.key}-utc", title=f"{case.title}, {UTC_ARGS}", query=query
    )


def build_session_cases(n_bars: int) -> list[Case]:
    """Cases (a), (b), (e) as served by default (session-aligned, regular hours, on XNYS
    symbols whose bars all lie in regular hours) and their UTC twins: the same bars, so the
    ratio is the cost of the session machinery alone."""
    base = [c for c in build_cases(n_bars, 0, "") if c.key in ("a", "b", "e")]
    return [*base, *(utc_twin(c) for c in base)]


async def deep_cursor(service: Service) -> str:
    body = orjson.dumps({"query": Q_D_CURSOR, "variables": {"ticker": ONE_TICKER}})
    r = await service.post(body, HEADERS_GZIP)
    doc = orjson.loads(r.content)
    if doc.get("errors"):
        raise RuntimeError(f"getting the deep cursor failed: {doc['errors']}")
    return str(doc["data"]["symbol"]["bars"]["pageInfo"]["endCursor"])


def check_floor(case: Case, payload: bytes) -> None:
    """The floor answers with the same data as the service."""
    got = case.count(orjson.loads(payload)["data"])
    if got != case.expected:
        raise RuntimeError(f"floor {case.key}: {got} items, expected {case.expected}")


async def bench(args: argparse.Namespace, dsn: str, sa_url: str, results: Results) -> None:
    service = Service(sa_url, results.service_env)
    pool = await asyncpg.create_pool(
        dsn, min_size=8, max_size=10, server_settings={"timezone": "UTC"}
    )
    try:
        await service.start()
        if args.sessions:
            cases = build_session_cases(args.bars)
        else:
            needs_cursor = args.cases is None or "d" in args.cases
            cursor = await deep_cursor(service) if needs_cursor else ""
            cases = build_cases(args.bars, args.long, cursor)
        if args.cases is not None:
            cases = [c for c in cases if c.key.split("-")[0] in args.cases]
        for case in cases:
            if case.arrow is not None and not args.no_arrow:
                results.sizes[f"{case.key}-arrow"] = {
                    "plain": await service.check_arrow(case),
                    "gzip": await service.check_arrow(case),
                }
            results.sizes[case.key] = {
                "gzip": await service.check(case, HEADERS_GZIP),
                "plain": await service.check(case, HEADERS_PLAIN),
            }
            if case.floor is not None:
                payload = await case.floor(pool)
                check_floor(case, payload)
                results.sizes[case.key]["floor_bytes"] = len(payload)
                served = orjson.loads((await service.post(case.body, HEADERS_PLAIN)).content)
                if orjson.loads(payload)["data"] != served["data"]:
                    results.sizes[case.key]["floor_differs"] = True
                    report(f"warning: floor ({case.key}) answers other data than the service")

        async def get_healthz() -> None:
            await service.client.get("/healthz")

        n = results.requests["healthz"]
        for concurrency in (1, 8):
            await timed(get_healthz, max(concurrency, n // 10), concurrency)
            t = await timed(get_healthz, n, concurrency)
            results.rows.append(Row("healthz", concurrency, t, None))
            report(f"healthz c={concurrency}: {t.rps:.0f} req/s p50 {t.p50_ms:.2f} ms")
        # In --sessions mode each case's UTC twin runs in its rounds (see `interleaved`).
        twins = {c.key: t for c in cases for t in cases if t.key == f"{c.key}-utc"}
        for case in cases:
            if case.key.endswith("-utc") and args.sessions:
                continue
            floor = case.floor
            assert floor is not None
            n = results.requests[case.key]
            for concurrency in (1, 8):
                warmup = max(2, n // 10)
                for _ in range(2):
                    await service.check(case)
                call = service.caller(case, HEADERS_GZIP)
                floor_call = functools.partial(floor, pool)
                calls: list[tuple[Call, int]] = [(call, n), (floor_call, n)]
                twin = twins.get(case.key)
                if twin is not None:
                    # The UTC twin in the same alternating rounds: the session ratio then
                    # compares runs under the same load.
                    calls.append((service.caller(twin, HEADERS_GZIP), n))
                if concurrency == 1:
                    # The same without gzip, for the size section.
                    calls.append((service.caller(case, HEADERS_PLAIN), max(5, n // 2)))
                arrow = case.arrow is not None and not args.no_arrow
                if arrow:
                    # The same rows as Arrow IPC from /download/bars, in the same rounds.
                    calls.append((service.arrow_caller(case), n))
                for c, _ in calls:
                    await timed(c, warmup, concurrency)
                timings = await interleaved(calls, concurrency)
                if arrow:
                    a = timings.pop()
                    results.rows.append(Row(f"{case.key}-arrow", concurrency, a, timings[1]))
                    report(
                        f"({case.key}, Arrow) c={concurrency}: {a.rps:.1f} req/s "
                        f"p50 {a.p50_ms:.1f} ms | x{a.p50_ms / timings[1].p50_ms:.2f}"
                    )
                s, f = timings[:2]
                if twin is not None:
                    results.rows.append(Row(twin.key, concurrency, timings[2], f))
                    timings = timings[:2] + timings[3:]
                if concurrency == 1:
                    results.sizes[case.key]["plain_c1"] = asdict(timings[2])
                row = Row(case.key, concurrency, s, f)
                results.rows.append(row)
                report(
                    f"({case.key}) c={concurrency}: service {s.rps:.1f} req/s p50 {s.p50_ms:.1f} ms"
                    f" | floor {f.rps:.1f} req/s p50 {f.p50_ms:.1f} ms | x{row.ratio:.1f}"
                )
        if service.retries:
            report(f"warning: {service.retries} requests were retried on a closed connection")
        if service.failures:
            raise RuntimeError("failed responses:\n" + "\n".join(service.failures[:10]))
    except BaseException:
        if service.proc is not None:
            report("service log:\n" + service.logs())
        raise
    finally:
        await pool.close()
        await service.stop()


def report(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def render(results: Results, titles: dict[str, str]) -> str:
    """The tables, in Markdown."""
    out = [
        f"Dataset: {results.dataset}; n requests per case and concurrency, after a warm-up;"
        " latencies in ms; ratio = service p50 / floor p50. Load average (1, 5, 15 min) at start"
        " and end: "
        + " / ".join(", ".join(f"{x:.1f}" for x in la) for la in results.load_average)
        + f". Code: {results.revision}. Service environment: "
        + " ".join(f"{k}={v}" for k, v in results.service_env.items())
        + ".",
        "",
        "| case | conc. | n | service req/s | p50 | p95 | floor req/s | floor p50 | ratio (p50) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results.rows:
        s, f = row.service, row.floor
        title = titles.get(row.case, row.case)
        name = title if f is None else f"({row.case}) {title}"
        if f is None:
            out.append(
                f"| {name} | {row.concurrency} | {s.requests} | {s.rps:.0f} | {s.p50_ms:.2f} | "
                f"{s.p95_ms:.2f} | - | - | - |"
            )
            continue
        out.append(
            f"| {name} | {row.concurrency} | {s.requests} | {s.rps:.1f} | {s.p50_ms:.1f} | "
            f"{s.p95_ms:.1f} | "
            f"{f.rps:.1f} | {f.p50_ms:.1f} | {row.ratio:.1f}x |"
        )
    out += [
        "",
        "Response size and gzip (the service's GZipMiddleware; `accept-encoding: gzip, deflate`"
        " above, `identity` here):",
        "",
        "| case | JSON bytes | gzip bytes | encoding seen | p50 c=1 gzip | p50 c=1 identity | "
        "floor JSON bytes |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    gz_p50 = {r.case: r.service.p50_ms for r in results.rows if r.concurrency == 1}
    for key, size in results.sizes.items():
        plain_c1 = size.get("plain_c1", {}).get("p50_ms", float("nan"))
        out.append(
            f"| ({key}) | {size['plain']['body_bytes']:,} | {size['gzip']['wire_bytes']:,} | "
            f"{size['gzip']['content_encoding']} | {gz_p50.get(key, float('nan')):.1f} | "
            f"{plain_c1:.1f} | {_floor_size(size)} |"
        )
    return "\n".join(out)


def _floor_size(size: dict[str, Any]) -> str:
    if "floor_bytes" not in size:
        return "-"  # the Arrow download: its rows were counted against the case instead
    same = " (data differs!)" if size.get("floor_differs") else " (same data)"
    return f"{size['floor_bytes']:,}{same}"


def render_session_ratios(results: Results) -> str:
    """Session-aligned p50 over UTC-aligned p50 per case and concurrency (same run)."""
    p50 = {(r.case, r.concurrency): r.service.p50_ms for r in results.rows}
    vs_floor = {(r.case, r.concurrency): r.ratio for r in results.rows if r.floor is not None}
    out = [
        "",
        "Session alignment (default: `alignment: SESSION`, `session: REGULAR` on XNYS) against "
        f"`{UTC_ARGS}`, same bars, same run:",
        "",
        "| case | conc. | session p50 | UTC p50 | ratio | ratio of floor ratios |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (case, conc), ms in p50.items():
        utc = p50.get((f"{case}-utc", conc))
        if utc is None or case.endswith("-utc"):
            continue
        # Both ran in the same alternating rounds with the floor.
        ff = vs_floor.get((case, conc)), vs_floor.get((f"{case}-utc", conc))
        norm = f"{ff[0] / ff[1]:.2f}x" if ff[0] and ff[1] else "-"
        out.append(f"| ({case}) | {conc} | {ms:.1f} | {utc:.1f} | {ms / utc:.2f}x | {norm} |")
    return "\n".join(out)


async def run(args: argparse.Namespace, results: Results) -> None:
    admin = make_url(args.database_url)
    name = f"mg_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin_dsn = admin.render_as_string(hide_password=False)
    url = admin.set(database=name).render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        settings = load_settings(database_url=url, redis_url=None)
        await asyncio.to_thread(db.upgrade, settings)
        report(f"loading {results.dataset} into {name} …")
        results.load_seconds = await load_dataset(
            settings.asyncpg_dsn,
            args.symbols,
            args.bars,
            0 if args.sessions else args.long,
            "XNYS" if args.sessions else "24/7",
        )
        report(f"loaded in {results.load_seconds:.1f} s")
        results.load_average.append(os.getloadavg())
        await bench(args, settings.asyncpg_dsn, url, results)
        results.load_average.append(os.getloadavg())
    finally:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def code_revision() -> str:
    """The commit measured, and whether the service's code differs from it (work in progress)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "graphql_api", "loaders", "pyproject.toml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head or 'unknown'}{' with uncommitted service changes' if dirty else ''}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 100 symbols, about 10 requests per case"
    )
    p.add_argument("--database-url", default=DEFAULT_ADMIN_URL, help="admin URL of the server")
    p.add_argument(
        "--requests",
        type=int,
        default=None,
        help="requests per case and concurrency, for every case (default: "
        + ", ".join(f"{k} {v}" for k, v in DEFAULT_REQUESTS.items())
        + ")",
    )
    p.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    p.add_argument(
        "--sessions",
        action="store_true",
        help="cases (a), (b), (e) on NYSE (XNYS) symbols, session-aligned (the default) "
        "against `alignment: UTC, session: ALL` over the same bars, with their ratio",
    )
    p.add_argument(
        "--cases",
        default=None,
        help="comma-separated case keys to run (a-f; default all), e.g. `--cases f`; with "
        "only (f) the 500 symbols are not loaded",
    )
    p.add_argument(
        "--no-arrow",
        action="store_true",
        help="skip the Arrow download (/download/bars) timed beside case (f)",
    )
    p.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the service (repeatable), e.g. CACHE_ENABLED=true",
    )
    args = p.parse_args(argv)
    for item in args.service_env:
        if "=" not in item:
            p.error(f"--service-env wants KEY=VALUE, got {item!r}")
    if args.cases is not None:
        args.cases = {c.strip() for c in args.cases.split(",") if c.strip()}
        if not args.cases or not args.cases <= set("abcdef"):
            p.error("--cases takes keys among a, b, c, d, e, f")
    args.symbols = 100 if args.quick else 500
    if args.cases is not None and args.cases <= {"f"} and not args.sessions:
        args.symbols = 0  # (f) reads only the long series
    args.bars = 2_000
    args.long = 10_000 if args.quick else LONG_BARS
    if args.requests is not None and args.requests < 1:
        p.error("--requests must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    requests = dict(QUICK_REQUESTS if args.quick else DEFAULT_REQUESTS)
    if args.requests is not None:
        requests = dict.fromkeys(requests, args.requests)
    requests.update({f"{k}-utc": n for k, n in requests.items()})
    results = Results(
        command="python benchmarks/read_api.py " + " ".join(sys.argv[1:]),
        machine=f"{os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}",
        dataset=(
            f"{args.symbols} XNYS symbols x {args.bars:,} M1 bars in regular NYSE hours"
            if args.sessions
            else f"{args.symbols} symbols x {args.bars:,} M1 bars + 1 x {args.long:,}"
        ),
        requests=requests,
        revision=code_revision(),
        service_env={**SERVICE_ENV, **dict(i.split("=", 1) for i in args.service_env)},
    )
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        runner.run(run(args, results))
    cases = (
        build_session_cases(args.bars) if args.sessions else build_cases(args.bars, args.long, "")
    )
    titles = {c.key: c.title for c in cases}
    titles.update({f"{c.key}-arrow": f"{c.title}, Arrow IPC from /download/bars" for c in cases})
    titles["healthz"] = "GET /healthz (HTTP round trip)"
    print(render(results, titles))
    if args.sessions:
        print(render_session_ratios(results))
    if args.json is not None:
        args.json.write_text(orjson.dumps(asdict(results), option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
