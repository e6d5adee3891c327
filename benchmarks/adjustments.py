"""Adjusted vs raw bars: the read benchmark's cases (a), (b) and (e) with `adjustment: ALL`
against the same requests with RAW (the default), in one run.

    .venv/bin/python benchmarks/adjustments.py            # 500 symbols x 2,000 M1 bars
    .venv/bin/python benchmarks/adjustments.py --quick    # 100 symbols, fewer requests

What it does: builds the read benchmark's dataset (benchmarks/read_api.py: a database of its
own, dropped at the end; symbols S0000.. with 2,000 one-minute bars from 2024-01-02 00:00 UTC),
gives every symbol four corporate actions through `workers.actions.write_actions` (the ingest
path): a cash dividend before its first bar, a 2-for-1 split and a cash dividend on
2024-01-03 (so 1,440 of its 2,000 bars lie before them, the rest after) and a cash dividend
after its last bar; starts the service as the read benchmark does (uvicorn subprocess,
uncached, no rate limit), checks that ALL answers the adjusted closes (computed here from
the raw ones), then times RAW and ALL in alternating rounds (read_api.interleaved) at
concurrency 1 and 8 and prints p50/p95 and the ratio of ALL's p50 to RAW's. The target of
issue 16: case (b) within 1.3x.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from datetime import date
from pathlib import Path

import asyncpg
import orjson
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
# benchmarks/ for read_api, then the repository first (benchmarks/indicators.py must not
# shadow the `indicators` package).
for path in (ROOT / "benchmarks", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import read_api  # noqa: E402
from read_api import (  # noqa: E402
    HEADERS_GZIP,
    ONE_TICKER,
    Q_A,
    Q_B,
    Q_E,
    SERVICE_ENV,
    Case,
    Service,
    Timing,
    interleaved,
    ticker,
)

from core import db  # noqa: E402
from core.settings import load_settings  # noqa: E402
from workers.actions import Action, write_actions  # noqa: E402

EX = date(2024, 1, 3)
REQUESTS = {"a": 30, "b": 80, "e": 80}
QUICK = {"a": 6, "b": 10, "e": 10}


def adjusted(query: str) -> str:
    """The same request with `adjustment: ALL` on its bars/series field."""
    return query.replace("(interval: M1,", "(interval: M1, adjustment: ALL,")


def cases(n_bars: int) -> list[tuple[str, str, Case, Case]]:
    """(key, title, RAW case, ALL case) for (a), (b), (e)."""
    one = {"ticker": ONE_TICKER}
    count_b = lambda d: len(d["symbol"]["bars"]["nodes"])  # noqa: E731
    specs = [
        ("a", "50 symbols x newest 100 M1 bars, cursors", Q_A, {}, 5_000, read_api._count_a),
        ("b", "1 symbol, newest 1,000 M1 bars", Q_B, one, 1_000, count_b),
        ("e", f"1 symbol, series of all {n_bars:,} M1 bars", Q_E, one, n_bars, read_api._count_e),
    ]
    return [
        (k, title, Case(k, title, q, v, n, c), Case(k, title, adjusted(q), v, n, c))
        for k, title, q, v, n, c in specs
    ]


async def add_actions(dsn: str, n_symbols: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        actions = []
        for i in range(n_symbols):
            t = ticker(i)
            actions += [
                Action(t, "DIVIDEND", date(2023, 6, 1), 0.05),
                Action(t, "SPLIT", EX, 2.0),
                Action(t, "DIVIDEND", EX, 0.01),
                Action(t, "DIVIDEND", date(2024, 6, 3), 0.02),
            ]
        await write_actions(conn, actions, source="benchmark")
        await conn.execute("VACUUM ANALYZE corporate_actions")
    finally:
        await conn.close()


async def check_adjusted(service: Service, raw: Case, adj: Case) -> None:
    """ALL's closes are RAW's times the factor of the actions after each bar."""
    r = orjson.loads((await service.post(raw.body, HEADERS_GZIP)).content)["data"]
    a = orjson.loads((await service.post(adj.body, HEADERS_GZIP)).content)["data"]
    raw_nodes, adj_nodes = r["symbol"]["bars"]["nodes"], a["symbol"]["bars"]["nodes"]
    closes = {n["time"]: n["close"] for n in raw_nodes}
    newest_raw_close = raw_nodes[0]["close"]
    after_last = 1 - 0.02 / newest_raw_close
    # Bars before EX: the raw close of the last bar before it gives the dividend's factor.
    before = sorted(t for t in closes if t < EX.isoformat())
    factor_ex = 0.5 * (1 - 0.01 * 2 / closes[before[-1]]) if before else 1.0
    for n in adj_nodes:
        f = after_last * (factor_ex if n["time"] < EX.isoformat() else 1.0)
        want = closes[n["time"]] * f
        if abs(n["close"] - want) > 1e-9 * abs(want):
            raise RuntimeError(f"ALL close at {n['time']}: {n['close']} != {want}")


async def bench(
    args: argparse.Namespace, url: str, dsn: str
) -> list[tuple[str, str, int, Timing, Timing]]:
    service = Service(url, dict(SERVICE_ENV))
    await service.start()
    out = []
    try:
        all_cases = cases(args.bars)
        await check_adjusted(service, all_cases[1][2], all_cases[1][3])
        for key, title, raw, adj in all_cases:
            await service.check(raw)
            await service.check(adj)
            for concurrency in (1, 8):
                n = args.requests[key]
                calls = [
                    (service.caller(raw, HEADERS_GZIP), n),
                    (service.caller(adj, HEADERS_GZIP), n),
                ]
                for call, _ in calls:  # warm-up
                    await call()
                t_raw, t_all = await interleaved(calls, concurrency)
                out.append((key, title, concurrency, t_raw, t_all))
                print(
                    f"({key}) c={concurrency}: RAW p50 {t_raw.p50_ms:.1f} ms, "
                    f"ALL p50 {t_all.p50_ms:.1f} ms, ratio {t_all.p50_ms / t_raw.p50_ms:.2f}",
                    file=sys.stderr,
                )
        if service.failures:
            raise RuntimeError("; ".join(service.failures[:5]))
    finally:
        await service.stop()
    return out


async def run(args: argparse.Namespace) -> list[tuple[str, str, int, Timing, Timing]]:
    admin = make_url(args.database_url)
    name = f"mg_adjbench_{os.getpid()}_{secrets.token_hex(3)}"
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
        await read_api.load_dataset(settings.asyncpg_dsn, args.symbols, args.bars)
        await add_actions(settings.asyncpg_dsn, args.symbols)
        return await bench(args, url, settings.asyncpg_dsn)
    finally:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def render(rows: list[tuple[str, str, int, Timing, Timing]], command: str) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        "| case | conc. | n | RAW p50 | RAW p95 | ALL p50 | ALL p95 | ratio ALL/RAW (p50) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, title, conc, raw, adj in rows:
        lines.append(
            f"| ({key}) {title} | {conc} | {raw.requests} | {raw.p50_ms:.1f} ms | "
            f"{raw.p95_ms:.1f} ms | {adj.p50_ms:.1f} ms | {adj.p95_ms:.1f} ms | "
            f"{adj.p50_ms / raw.p50_ms:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="100 symbols, few requests")
    p.add_argument("--database-url", default=read_api.DEFAULT_ADMIN_URL)
    args = p.parse_args(argv)
    args.symbols = 100 if args.quick else 500
    args.bars = 2_000
    args.requests = QUICK if args.quick else REQUESTS
    rows = asyncio.run(run(args))
    print(render(rows, "python benchmarks/adjustments.py " + " ".join(sys.argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
