"""Cache benchmark: the read API's queries (a)-(e) cold and warm, and a persisted GET with ETag.

    .venv/bin/python benchmarks/cache.py            # 100 symbols x 2,000 M1 bars
    .venv/bin/python benchmarks/cache.py --quick    # smoke run

Creates its own database (dropped at the end), starts the service with uvicorn (no reload)
with REDIS_URL on Redis database 13, and for each case measures: cold (Redis flushed before
each request, so field and response caches miss) and warm (the same request repeated). Times
are the service's own `Server-Timing` (network and client excluded) and the client's round
trip; ratios are cold/warm p50 from the same run. Then the persisted-query path: a hash-only
GET with the ETag of the previous answer in If-None-Match, answered 304 without executing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import numpy as np
import pandas as pd
import redis
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import db  # noqa: E402
from core.settings import load_settings  # noqa: E402
from workers.symbols import SymbolInfo, upsert_symbols  # noqa: E402
from workers.upsert import frame_records, upsert_bars  # noqa: E402

REDIS = "redis://127.0.0.1:6379/13"
FIRST = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
Q = {
    "a": "{ symbols(first: 50) { edges { cursor node { ticker bars(interval: M1, first: 100) "
    "{ edges { cursor node { time open high low close volume } } } } } } }",
    "b": '{ symbol(ticker: "S0000") { bars(interval: M1, first: 1000) { nodes '
    "{ time open high low close volume } } } }",
    "c": "{ symbols(first: 100) { nodes { ticker name exchange } } }",
    "d": '{ symbol(ticker: "S0000") { bars(interval: M1, first: 100, after: "CURSOR") '
    "{ edges { cursor node { time close } } } } }",
    "e": '{ symbol(ticker: "S0000") { series(interval: M1, maxPoints: 100000) '
    "{ time open high low close volume } } }",
}


async def load(dsn: str, n_symbols: int, n_bars: int) -> None:
    rng = np.random.default_rng(7)
    conn = await asyncpg.connect(dsn)
    try:
        ids = await upsert_symbols(conn, [SymbolInfo(f"S{i:04d}") for i in range(n_symbols)])
        times = pd.date_range(FIRST, periods=n_bars, freq="min")
        frames = []
        for sid in ids.values():
            close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n_bars)))
            frames.append(
                pd.DataFrame(
                    {
                        "symbol_id": sid,
                        "timeframe": "M1",
                        "ts": times,
                        "open": close,
                        "high": close * 1.001,
                        "low": close * 0.999,
                        "close": close,
                        "volume": 100.0,
                    }
                )
            )
        await upsert_bars(conn, frame_records(pd.concat(frames)), source="bench")
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_ms(response: httpx.Response) -> float:
    return float(response.headers["server-timing"].split("dur=")[1])


def p50(values: list[float]) -> float:
    return statistics.median(values)


async def bench(base: str, n: int, flush: redis.Redis) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        cursor_q = (
            '{ symbol(ticker: "S0000") { bars(interval: M1, first: 1800) '
            "{ pageInfo { endCursor } } } }"
        )
        r = await client.post("/graphql", json={"query": cursor_q})
        cursor = r.json()["data"]["symbol"]["bars"]["pageInfo"]["endCursor"]
        queries = {k: v.replace("CURSOR", cursor) for k, v in Q.items()}
        print(f"{'case':4} {'cold p50 ms':>12} {'warm p50 ms':>12} {'ratio':>7}   (server time)")
        for key, query in queries.items():
            cold, warm, cold_rt, warm_rt = [], [], [], []
            for _ in range(n):
                flush.flushdb()
                t = time.perf_counter()
                r = await client.post("/graphql", json={"query": query})
                cold_rt.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200 and b'"errors"' not in r.content, r.text[:300]
                cold.append(server_ms(r))
                for _ in range(3):
                    t = time.perf_counter()
                    r = await client.post("/graphql", json={"query": query})
                    warm_rt.append((time.perf_counter() - t) * 1000)
                    warm.append(server_ms(r))
            print(
                f"({key})  {p50(cold):12.2f} {p50(warm):12.2f} {p50(cold) / p50(warm):7.1f}x"
                f"   round trip: cold {p50(cold_rt):.2f} ms, warm {p50(warm_rt):.2f} ms"
            )

        # Persisted query over GET with a matching ETag.
        query = queries["a"]
        digest = hashlib.sha256(query.encode()).hexdigest()
        ext = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
        await client.post("/graphql", json={"query": query, "extensions": ext})
        params = {"extensions": json.dumps(ext)}
        headers = {"accept": "application/graphql-response+json"}
        first = await client.get("/graphql", params=params, headers=headers)
        assert first.status_code == 200, first.text[:300]
        tag = first.headers["etag"]
        server, rt = [], []
        for _ in range(n * 10):
            t = time.perf_counter()
            r = await client.get(
                "/graphql", params=params, headers={**headers, "if-none-match": tag}
            )
            rt.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 304, r.status_code
            server.append(server_ms(r))
        print(
            f"persisted GET (a) with matching ETag -> 304: server p50 {p50(server):.2f} ms, "
            f"round trip p50 {p50(rt):.2f} ms (goal: < 2 ms server time)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    n_symbols, n_bars, n = (60, 2_000, 3) if args.quick else (100, 2_000, 10)
    name = f"mg_bench_cache_{secrets.token_hex(3)}"
    admin = make_url(args.database_url)
    sa_url = admin.set(database=name).render_as_string(hide_password=False)

    async def create(sql: str) -> None:
        conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(create(f'CREATE DATABASE "{name}"'))
    proc = None
    try:
        settings = load_settings(database_url=sa_url)
        db.upgrade(settings)
        asyncio.run(load(settings.asyncpg_dsn, n_symbols, n_bars))
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": sa_url,
            "REDIS_URL": REDIS,
            "RATE_LIMIT_COST_PER_MINUTE": "0",
            "VERIFY_FAST_PATH": "0",
            "LOG_FORMAT": "json",
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "graphql_api.app:create_app",
                "--factory",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        print(f"dataset: {n_symbols} symbols x {n_bars} M1 bars; Redis {REDIS}; {n} cold rounds")
        asyncio.run(bench(base, n, redis.Redis.from_url(REDIS)))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        asyncio.run(create(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
