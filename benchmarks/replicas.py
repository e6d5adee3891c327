"""Read replicas on this machine: what routing costs, how far a standby lags, how soon a
`Min-Version` read can be served by it.

    .venv/bin/python benchmarks/replicas.py              # ~1 min
    .venv/bin/python benchmarks/replicas.py --seconds 5  # shorter ingest phase

Read throughput with 0 and 1 local replica at the same CPU budget means nothing on 2 cores
(both servers share them), so this measures what is meaningful here. It makes a primary and
a streaming standby of its own (tests/scale/cluster.py: initdb, pg_basebackup -R, free ports,
fsync off, both stopped at the end), migrates a database on the primary, and:

1. Routing cost: the same small query (the newest bar of one symbol, caches off) through
   the app in-process, one request of each variant in turn (`--requests` x `--rounds` each):
   no replica (reads on the primary); one replica (reads routed to it); one replica with a
   `Min-Version` the router has seen the replica hold (remembered: no query); the same with
   that memory cleared before every request (one primary-key lookup on the replica first).
   Median wall time per request, and this process's CPU time (app and client) per request.
2. Lag under ingest: `BarWriter` batches of 10,000 bars at a target of `--rate` rows/s for
   `--seconds`, while PostgreSQL's own `pg_stat_replication` (replay_lag, WAL bytes behind)
   is sampled every 100 ms on the primary.
3. Visibility: for every committed batch of phase 2, and for single-bar writes on an idle
   primary, the time from the commit returning to the moment the standby holds the change's
   `bar_changes` row (polled every millisecond): how long a `Min-Version` read would wait.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["VERIFY_FAST_PATH"] = "0"

from core import db
from core.settings import Settings, load_settings
from tests.scale.cluster import make_pair
from workers.writer import BarWriter

T0 = datetime(2024, 1, 2, tzinfo=UTC)
QUERY = '{ symbol(ticker: "SYM000") { latestBar(interval: M1) { time close } } }'


def _frame(symbols: int, minutes: int, offset: int) -> pd.DataFrame:
    rows = symbols * minutes
    close = 100 + np.arange(rows) % 97 * 0.01
    return pd.DataFrame(
        {
            "ticker": np.repeat([f"SYM{s:03d}" for s in range(symbols)], minutes),
            "ts": np.tile(
                pd.date_range(T0 + timedelta(minutes=offset), periods=minutes, freq="min"),
                symbols,
            ),
            "open": close,
            "high": close + 0.1,
            "low": close - 0.1,
            "close": close,
            "volume": 10.0,
        }
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def routing(settings: Settings, standby_url: str, requests: int, rounds: int, v: int) -> None:
    from fastapi.testclient import TestClient

    from graphql_api.app import create_app

    configs = {
        "no replica (primary)": (settings.model_copy(update={"cache_enabled": False}), {}),
        "one replica": (
            settings.model_copy(update={"cache_enabled": False, "read_database_urls": standby_url}),
            {},
        ),
        "one replica + Min-Version": (
            settings.model_copy(update={"cache_enabled": False, "read_database_urls": standby_url}),
            {"Min-Version": str(v)},
        ),
        "  the same, version looked up": (
            settings.model_copy(update={"cache_enabled": False, "read_database_urls": standby_url}),
            {"Min-Version": str(v)},
        ),
    }
    wall: dict[str, list[float]] = {name: [] for name in configs}
    cpu: dict[str, list[float]] = {name: [] for name in configs}
    with contextlib.ExitStack() as stack:
        clients = {}
        for name, (cfg, headers) in configs.items():
            client = stack.enter_context(TestClient(create_app(cfg)))
            router = client.app.state.services.router  # type: ignore[attr-defined]
            deadline = time.monotonic() + 10
            while router is not None and not router.usable():
                assert time.monotonic() < deadline, "replica never in rotation"
                time.sleep(0.05)
            for _ in range(20):  # warm-up: pools, prepared statements
                client.post("/graphql", json={"query": QUERY}, headers=headers)
            clients[name] = (client, headers, router)
        # Request by request in turn, so load from elsewhere falls on every variant alike.
        for _ in range(requests * rounds):
            for name, (client, headers, router) in clients.items():
                if name.strip().startswith("the same"):
                    router.replicas[0].reached.clear()  # ask the replica again
                c0, w0 = time.process_time(), time.perf_counter()
                r = client.post("/graphql", json={"query": QUERY}, headers=headers)
                wall[name].append((time.perf_counter() - w0) * 1000)
                cpu[name].append((time.process_time() - c0) * 1000)
                assert r.status_code == 200 and "errors" not in r.json(), r.text
        for _client, _headers, router in clients.values():
            if router is not None:
                assert router.routed["replica"] >= requests * rounds, router.routed
    base_wall = statistics.median(wall["no replica (primary)"])
    base_cpu = statistics.mean(cpu["no replica (primary)"])
    print(
        f"routing, {requests * rounds} requests per variant, interleaved "
        "(wall: median ms per request; CPU: this process's mean ms per request):"
    )
    for name in configs:
        w, c = statistics.median(wall[name]), statistics.mean(cpu[name])
        print(
            f"  {name:30s} wall {w:7.3f} ms ({w - base_wall:+.3f}, ratio {w / base_wall:.2f})"
            f"   CPU {c:6.3f} ms ({c - base_cpu:+.3f}, ratio {c / base_cpu:.2f})"
        )


async def _visible_after(standby: asyncpg.Pool, version: int, committed: float) -> float:
    async with standby.acquire() as conn:
        # Polled, not awaited on an event: how soon the standby answers is the measurement.
        sql = "SELECT EXISTS (SELECT 1 FROM bar_changes WHERE id = $1)"
        while True:
            if await conn.fetchval(sql, version):
                return (time.perf_counter() - committed) * 1000
            await asyncio.sleep(0.001)


async def lag_under_ingest(
    primary_dsn: str, standby_dsn: str, rate: int, seconds: float, symbols: int
) -> None:
    conn = await asyncpg.connect(primary_dsn)
    admin = await asyncpg.connect(primary_dsn)
    # Connections opened beforehand: the polls time replay, not connection set-up.
    standby = await asyncpg.create_pool(standby_dsn, min_size=8, max_size=8)
    samples: list[tuple[float, int]] = []
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            row = await admin.fetchrow(
                "SELECT extract(epoch FROM coalesce(replay_lag, '0'))::float8 AS lag, "
                "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS behind "
                "FROM pg_stat_replication"
            )
            if row is not None:
                samples.append((row["lag"], row["behind"]))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    writer = BarWriter(conn, "M1", source="replica-bench")
    per_batch = 10_000
    minutes = per_batch // symbols
    visible: list[asyncio.Task[float]] = []
    written = 0
    started = time.perf_counter()
    offset = 10_000
    while time.perf_counter() - started < seconds:
        due = started + written / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        before = len(writer.totals.changes)
        await writer.write(_frame(symbols, minutes, offset))
        committed = time.perf_counter()
        version = max(c.id for c in writer.totals.changes[before:])
        visible.append(asyncio.create_task(_visible_after(standby, version, committed)))
        written += symbols * minutes
        offset += minutes
    elapsed = time.perf_counter() - started
    delays = list(await asyncio.gather(*visible))
    await asyncio.sleep(0.3)
    stop.set()
    await sampler
    lags = [s[0] for s in samples]
    behind = [s[1] for s in samples]
    print(
        f"ingest: {written:,} bars in {elapsed:.1f} s = {written / elapsed:,.0f} rows/s "
        f"(target {rate:,}; batches of {per_batch:,})"
    )
    print(
        f"  replay_lag (pg_stat_replication): median {statistics.median(lags) * 1000:.1f} ms, "
        f"p95 {pct(lags, 0.95) * 1000:.1f} ms, max {max(lags) * 1000:.1f} ms "
        f"({len(samples)} samples)"
    )
    print(
        f"  WAL behind: median {statistics.median(behind) / 1024:,.0f} KiB, "
        f"max {max(behind) / 1024:,.0f} KiB"
    )
    print(
        f"  a batch visible on the standby after: median {statistics.median(delays):.1f} ms, "
        f"p95 {pct(delays, 0.95):.1f} ms, max {max(delays):.1f} ms ({len(delays)} batches)"
    )

    idle: list[float] = []
    for i in range(50):
        before = len(writer.totals.changes)
        await writer.write(_frame(1, 1, offset + i))
        committed = time.perf_counter()
        version = writer.totals.changes[-1].id if len(writer.totals.changes) > before else 0
        idle.append(await _visible_after(standby, version, committed))
        await asyncio.sleep(0.02)
    print(
        f"idle primary, one bar per write: visible on the standby after median "
        f"{statistics.median(idle):.2f} ms, p95 {pct(idle, 0.95):.2f} ms, max {max(idle):.2f} ms"
    )
    await conn.close()
    await admin.close()
    await standby.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--symbols", type=int, default=10)
    args = parser.parse_args()
    pair = make_pair(None)
    try:
        primary = load_settings(
            database_url=pair.primary_url.rsplit("/", 1)[0] + "/postgres", redis_url=None
        )
        db.upgrade(primary)
        standby_url = pair.standby_url("postgres")

        async def seed() -> int:
            conn = await asyncpg.connect(primary.asyncpg_dsn)
            try:
                writer = BarWriter(conn, "M1")
                await writer.write(_frame(args.symbols, 100, 0))
                return max(c.id for c in writer.totals.changes)
            finally:
                await conn.close()

        version = asyncio.run(seed())
        time.sleep(1.0)
        print(
            f"primary :{pair.own_primary.port if pair.own_primary else '?'}, "
            f"standby :{pair.standby.port}, load average {os.getloadavg()[0]:.2f}"
        )
        routing(primary, standby_url, args.requests, args.rounds, version)
        asyncio.run(
            lag_under_ingest(
                primary.asyncpg_dsn,
                load_settings(database_url=standby_url, redis_url=None).asyncpg_dsn,
                args.rate,
                args.seconds,
                args.symbols,
            )
        )
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    finally:
        pair.stop()


if __name__ == "__main__":
    main()
