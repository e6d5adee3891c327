"""End-to-end indicator requests: the lean shape, and 20 symbols x RSI(14) against bars alone.

    .venv/bin/python benchmarks/indicators_e2e.py [--rounds 30] [--lean-only]

Creates its own database (dropped at the end) and runs the app in-process (httpx ASGI
transport, no network; field and response caches off so every request computes).

Lean shape (issue 19): one symbol with 8,000 daily bars; ten indicators over all of them in
one request, (a) with the shared `IndicatorSet.time` column and each indicator's values only,
(b) the same rounded to 10 significant digits (`significantDigits: 10`), (c) the old shape
with every indicator's own `time`. Prints the body size and the p50 of the
server time (the Server-Timing header: request in until the result is ready to encode;
encoding, compression and network excluded). Goal: (a) under 1.5 MB and 40 ms. Then the
bytes of each part of body (a), which says why full precision cannot be under 1.5 MB, its
size on the wire for a client that accepts gzip, and its size at 15 to 12 significant digits.

Batch: 20 symbols x 2,000 one-minute bars, timed in alternating rounds: (1) `indicators { rsi
{ value } }` for the 20 symbols, (2) the same symbols' bars as a series (`series { time close
}`), and (3) the same as (1) plus the bars. Prints p50 of each and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import numpy as np
import orjson
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from asgi_lifespan import LifespanManager  # noqa: E402
from cache import load  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from core import db  # noqa: E402
from core.settings import load_settings  # noqa: E402
from graphql_api.app import create_app  # noqa: E402
from workers.symbols import SymbolInfo, upsert_symbols  # noqa: E402
from workers.upsert import frame_records, upsert_bars  # noqa: E402

RSI = "{ symbols(first: 20) { nodes { ticker indicators(interval: M1) { rsi { value } } } } }"
BARS = (
    "{ symbols(first: 20) { nodes { ticker "
    "series(interval: M1, maxPoints: 5000) { time close } } } }"
)
BOTH = (
    "{ symbols(first: 20) { nodes { ticker indicators(interval: M1) { rsi { value } } "
    "series(interval: M1, maxPoints: 5000) { time close } } } }"
)


#: Ten indicators, as a chart with a few studies asks for them (one line each).
TEN = (
    "sma(period: 50) { %s } ema(period: 20) { %s } rsi { %s } atr { %s } obv { %s } "
    "adx { %s } cci { %s } willr { %s } mfi { %s } kama { %s }"
)
LEAN = '{ symbol(ticker: "LEAN") { indicators(interval: D1) { time %s } } }' % (
    TEN % (("value",) * 10)
)
OLD = '{ symbol(ticker: "LEAN") { indicators(interval: D1) { %s } } }' % (
    TEN % (("time value",) * 10)
)
ROUNDED = LEAN.replace(
    "indicators(interval: D1)", "indicators(interval: D1, significantDigits: 10)"
)
LEAN_BARS = 8_000


async def load_daily(dsn: str, n_bars: int) -> None:
    """One symbol, LEAN, with n_bars daily bars of a random walk."""
    rng = np.random.default_rng(19)
    conn = await asyncpg.connect(dsn)
    try:
        ids = await upsert_symbols(conn, [SymbolInfo("LEAN")])
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.015, n_bars)))
        open_ = close * (1 + rng.normal(0, 0.003, n_bars))
        spread = close * rng.uniform(0.002, 0.02, n_bars)
        frame = pd.DataFrame(
            {
                "symbol_id": ids["LEAN"],
                "timeframe": "D1",
                "ts": pd.date_range("1995-01-02", periods=n_bars, freq="D", tz="UTC"),
                "open": open_,
                "high": np.maximum(open_, close) + spread,
                "low": np.minimum(open_, close) - spread,
                "close": close,
                "volume": np.round(rng.lognormal(14, 0.5, n_bars)),
            }
        )
        await upsert_bars(conn, frame_records(frame), source="bench")
    finally:
        await conn.close()


async def bench_lean(url: str, rounds: int) -> None:
    settings = load_settings(
        database_url=url,
        cache_enabled=False,
        rate_limit_cost_per_minute=0,
        verify_fast_path=False,
        max_series_points=100_000,
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            sizes: dict[str, int] = {}
            server: dict[str, list[float]] = {"lean": [], "rounded": [], "old": []}
            queries = (("lean", LEAN), ("rounded", ROUNDED), ("old", OLD))
            for name, query in queries:  # warm-up and check
                r = await client.post("/graphql", json={"query": query})
                assert r.status_code == 200 and "errors" not in r.json(), r.text[:300]
                sizes[name] = len(r.content)
                ind = r.json()["data"]["symbol"]["indicators"]
                count = len(ind["sma"]["time"] if name == "old" else ind["time"])
                assert count == LEAN_BARS, count
            for _ in range(rounds):
                for name, query in queries:
                    r = await client.post("/graphql", json={"query": query})
                    server[name].append(float(r.headers["server-timing"].split("dur=")[1]))
            lean_body = (await client.post("/graphql", json={"query": LEAN})).content
            gzipped = await client.post(
                "/graphql", json={"query": LEAN}, headers={"accept-encoding": "gzip"}
            )
            wire = gzipped.num_bytes_downloaded
            digits_sizes = {}
            for digits in (15, 14, 13, 12):
                query = LEAN.replace(
                    "indicators(interval: D1)",
                    f"indicators(interval: D1, significantDigits: {digits})",
                )
                digits_sizes[digits] = len(
                    (await client.post("/graphql", json={"query": query})).content
                )
    p = {k: statistics.median(v) for k, v in server.items()}
    print(f"10 indicators x {LEAN_BARS:,} D1 bars, one request, {rounds} rounds, uncached")
    print(
        f"  lean (shared time)      {sizes['lean'] / 1e6:6.2f} MB   server p50 {p['lean']:6.1f} ms"
        f"   goal < 1.5 MB: {'met' if sizes['lean'] < 1.5e6 else 'NOT met'}, "
        f"< 40 ms: {'met' if p['lean'] < 40 else 'NOT met'}"
    )
    print(
        f"  lean, significantDigits: 10 {sizes['rounded'] / 1e6:5.2f} MB   server p50 "
        f"{p['rounded']:6.1f} ms"
    )
    print(
        f"  old (time per indicator) {sizes['old'] / 1e6:5.2f} MB   server p50 {p['old']:6.1f} ms"
    )
    parts = body_parts(lean_body)
    values = LEAN_BARS * 10
    print(
        f"  lean body: time column {parts['time']:,} B ({parts['time'] / LEAN_BARS:.1f} B/bar), "
        f"ten value columns {parts['values']:,} B ({parts['values'] / values:.1f} B/value, "
        f"{parts['digits']:.1f} significant digits on average), the rest {parts['rest']:,} B; "
        f"gzip on the wire {wire / 1e6:.2f} MB"
    )
    print(
        "  lean body with significantDigits: "
        + ", ".join(f"{d}: {size / 1e6:.2f} MB" for d, size in digits_sizes.items())
    )


def body_parts(content: bytes) -> dict[str, float]:
    """Bytes of the shared time column, of the value columns and of the rest of a lean body,
    and the mean number of significant digits the values are printed with."""
    ind = orjson.loads(content)["data"]["symbol"]["indicators"]
    time_bytes = len(orjson.dumps(ind["time"]))
    columns = [v["value"] for k, v in ind.items() if k != "time"]
    value_bytes = sum(len(orjson.dumps(c)) for c in columns)
    printed = [orjson.dumps(x).decode() for c in columns for x in c if x is not None]
    digits = [len(t.lstrip("-").split("e")[0].replace(".", "").strip("0")) for t in printed]
    return {
        "time": time_bytes,
        "values": value_bytes,
        "rest": len(content) - time_bytes - value_bytes,
        "digits": statistics.fmean(digits),
    }


async def bench(url: str, rounds: int) -> None:
    settings = load_settings(
        database_url=url, cache_enabled=False, rate_limit_cost_per_minute=0, verify_fast_path=False
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            times: dict[str, list[float]] = {"rsi": [], "bars": [], "both": []}
            queries = {"rsi": RSI, "bars": BARS, "both": BOTH}
            for query in queries.values():  # warm-up and check
                r = await client.post("/graphql", json={"query": query})
                assert r.status_code == 200 and "errors" not in r.json(), r.text[:300]
            for _ in range(rounds):
                for name, query in queries.items():
                    t = time.perf_counter()
                    r = await client.post("/graphql", json={"query": query})
                    times[name].append((time.perf_counter() - t) * 1000)
    p = {k: statistics.median(v) for k, v in times.items()}
    print(f"20 symbols x 2,000 M1 bars, {rounds} alternating rounds, in-process, uncached")
    print(f"  RSI(14) only           p50 {p['rsi']:8.1f} ms")
    print(f"  bars only (series)     p50 {p['bars']:8.1f} ms")
    print(f"  RSI + bars             p50 {p['both']:8.1f} ms")
    print(f"  ratio RSI / bars       {p['rsi'] / p['bars']:.2f}")
    print(f"  ratio (RSI+bars)/bars  {p['both'] / p['bars']:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--lean-only", action="store_true", help="only the lean-shape figures")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    admin = make_url(args.database_url)
    name = f"mg_bench_ind_{secrets.token_hex(3)}"
    url = admin.set(database=name).render_as_string(hide_password=False)

    async def admin_sql(sql: str) -> None:
        conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        settings = load_settings(database_url=url)
        db.upgrade(settings)
        asyncio.run(load_daily(settings.asyncpg_dsn, LEAN_BARS))
        asyncio.run(bench_lean(url, args.rounds))
        if not args.lean_only:
            asyncio.run(load(settings.asyncpg_dsn, 20, 2_000))
            asyncio.run(bench(url, args.rounds))
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
