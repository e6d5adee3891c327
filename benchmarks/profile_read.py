"""Profile the read API's benchmark queries in-process: where a request's time goes.

    .venv/bin/python benchmarks/profile_read.py                 # p50 of every case, and floors
    .venv/bin/python benchmarks/profile_read.py --profile b     # pyinstrument tree of case (b)

Creates its own database (dropped at the end) with the read API benchmark's dataset (100
symbols x 2,000 M1 bars, plus LONG with 100,000), then sends each case's request through the
app in this process (httpx's ASGI transport: no sockets, no HTTP parsing, no gzip), so the
figures are the service's own work; beside each, the raw asyncpg + orjson floor of
`benchmarks/read_api.py` on the same database. `--profile CASE` runs that case under
pyinstrument (a development dependency) and prints the call tree.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.read_api import (  # noqa: E402
    DEFAULT_ADMIN_URL,
    LONG_TICKER,
    ONE_TICKER,
    Q_A,
    Q_B,
    Q_C,
    Q_D,
    Q_D_CURSOR,
    Q_E,
    floor_a,
    floor_b,
    floor_c,
    floor_e,
    load_dataset,
    make_floor_d,
)
from core import db  # noqa: E402
from core.settings import load_settings  # noqa: E402

Floor = Callable[[asyncpg.Pool], Awaitable[bytes]]
HEADERS = {"content-type": "application/json", "accept-encoding": "identity"}


def cases(deep_cursor: str) -> dict[str, tuple[str, dict[str, Any], Floor, int]]:
    """Case key -> (query, variables, floor, requests)."""
    one = {"ticker": ONE_TICKER}

    async def floor_f(pool: asyncpg.Pool) -> bytes:
        return await floor_e(pool, LONG_TICKER)

    return {
        "a": (Q_A, {}, floor_a, 40),
        "b": (Q_B, one, floor_b, 200),
        "c": (Q_C, {}, floor_c, 300),
        "d": (Q_D, {**one, "after": deep_cursor}, make_floor_d(deep_cursor), 300),
        "e": (Q_E, one, floor_e, 200),
        "f": (Q_E, {"ticker": LONG_TICKER}, floor_f, 10),
    }


async def p50(call: Callable[[], Awaitable[object]], n: int) -> float:
    for _ in range(max(2, n // 10)):
        await call()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e3


async def measure(url: str, dsn: str, only: str | None) -> None:
    os.environ.update(
        {
            "DATABASE_URL": url,
            "REDIS_URL": "",
            "CACHE_ENABLED": "false",
            "RATE_LIMIT_COST_PER_MINUTE": "0",
            "VERIFY_FAST_PATH": "0",
            "LOG_LEVEL": "WARNING",
        }
    )
    from asgi_lifespan import LifespanManager

    from graphql_api.app import create_app

    app = create_app()
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=2)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def post(query: str, variables: dict[str, Any]) -> dict[str, Any]:
                body = orjson.dumps({"query": query, "variables": variables})
                r = await client.post("/graphql", content=body, headers=HEADERS)
                doc: dict[str, Any] = orjson.loads(r.content)
                if r.status_code != 200 or doc.get("errors"):
                    raise RuntimeError(f"{r.status_code}: {r.text[:300]}")
                return doc

            doc = await post(Q_D_CURSOR, {"ticker": ONE_TICKER})
            table = cases(doc["data"]["symbol"]["bars"]["pageInfo"]["endCursor"])
            if only is not None:
                from pyinstrument import Profiler

                query, variables, _, n = table[only]
                await post(query, variables)
                body = orjson.dumps({"query": query, "variables": variables})
                profiler = Profiler(interval=0.0005, async_mode="disabled")
                profiler.start()
                for _ in range(n):
                    await client.post("/graphql", content=body, headers=HEADERS)
                profiler.stop()
                print(profiler.output_text(unicode=False, color=False))
                return
            print("| case | service in-process p50 ms | floor p50 ms | ratio |")
            print("| --- | ---: | ---: | ---: |")
            for key, (query, variables, floor, n) in table.items():
                body = orjson.dumps({"query": query, "variables": variables})
                await post(query, variables)  # checked once; timed requests are not parsed

                async def served(b: bytes = body) -> None:
                    r = await client.post("/graphql", content=b, headers=HEADERS)
                    if r.status_code != 200:
                        raise RuntimeError(f"{r.status_code}: {r.text[:300]}")

                async def floored(f: Floor = floor) -> None:
                    await f(pool)

                s = await p50(served, n)
                f = await p50(floored, n)
                print(f"| ({key}) | {s:.1f} | {f:.1f} | {s / f:.1f}x |", flush=True)
    await pool.close()


@contextlib.asynccontextmanager
async def scratch_dataset(
    admin_url: str, prefix: str, *dataset: int
) -> AsyncIterator[tuple[str, str]]:
    """A database of its own (dropped at the end), migrated and loaded with
    `load_dataset(dsn, *dataset)`; yields its SQLAlchemy URL and asyncpg DSN."""
    admin = make_url(admin_url)
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin_dsn = admin.render_as_string(hide_password=False)
    url = admin.set(database=name, drivername="postgresql+asyncpg")
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        settings = load_settings(database_url=url.render_as_string(hide_password=False))
        await asyncio.to_thread(db.upgrade, settings)
        await load_dataset(settings.asyncpg_dsn, *dataset)
        yield url.render_as_string(hide_password=False), settings.asyncpg_dsn
    finally:
        conn = await asyncpg.connect(admin_dsn)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def run(args: argparse.Namespace) -> None:
    async with scratch_dataset(args.database_url, "mg_profile", 100, 2_000, 100_000) as (
        url,
        dsn,
    ):
        await measure(url, dsn, args.profile)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--database-url", default=DEFAULT_ADMIN_URL, help="admin URL of the server")
    p.add_argument("--profile", choices=list("abcdef"), default=None, help="profile one case")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
