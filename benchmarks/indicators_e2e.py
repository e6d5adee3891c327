"""End-to-end indicator request: 20 symbols x RSI(14) over 2,000 bars each, against bars alone.

    .venv/bin/python benchmarks/indicators_e2e.py [--rounds 30]

Creates its own database (dropped at the end) with 20 symbols x 2,000 one-minute bars, runs
the app in-process (httpx ASGI transport, no network; field and response caches off so every
request computes), and times in alternating rounds: (1) `indicators { rsi { value } }` for
the 20 symbols, (2) the same symbols' bars as a series (`series { time close }`), and (3)
the same as (1) plus the bars. Prints p50 of each and the ratios.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from asgi_lifespan import LifespanManager  # noqa: E402
from cache import load  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from core import db  # noqa: E402
from core.settings import load_settings  # noqa: E402
from graphql_api.app import create_app  # noqa: E402

RSI = "{ symbols(first: 20) { nodes { ticker indicators(interval: M1) { rsi { value } } } } }"
BARS = (
    "{ symbols(first: 20) { nodes { ticker "
    "series(interval: M1, maxPoints: 5000) { time close } } } }"
)
BOTH = (
    "{ symbols(first: 20) { nodes { ticker indicators(interval: M1) { rsi { value } } "
    "series(interval: M1, maxPoints: 5000) { time close } } } }"
)


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
        asyncio.run(load(settings.asyncpg_dsn, 20, 2_000))
        asyncio.run(bench(url, args.rounds))
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
