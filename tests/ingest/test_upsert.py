"""The bulk write path: concurrent writers on the append path, atomic batches, duplicates."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Collection
from datetime import UTC, datetime

import asyncpg
import numpy as np
import pandas as pd
import pytest

from core.settings import Settings
from workers.symbols import SymbolInfo, upsert_symbols
from workers.upsert import frame_records, upsert_bars, upsert_frame

T0 = pd.Timestamp("2024-01-02 00:00", tz="UTC")


def bars(symbol_id: int, first: int, count: int, *, bump: float = 0.0) -> pd.DataFrame:
    """Minute bars number first … first+count-1 of a series; values depend on the number only."""
    i = np.arange(first, first + count)
    close = 100.0 + i * 0.01 + bump
    return pd.DataFrame(
        {
            "symbol_id": symbol_id,
            "timeframe": "M1",
            "ts": T0 + pd.to_timedelta(i, unit="min"),
            "open": close,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": 10.0,
        }
    )


async def series_rows(conn: asyncpg.Connection, symbol_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT ts, close FROM bars WHERE symbol_id = $1 AND timeframe = 'M1' ORDER BY ts",
        symbol_id,
    )


async def test_a_second_writer_waits_for_the_first_instead_of_colliding(
    conn: asyncpg.Connection, fresh: Settings
) -> None:
    sid = (await upsert_symbols(conn, [SymbolInfo("ACME")]))["ACME"]
    other = await asyncpg.connect(fresh.asyncpg_dsn)
    try:
        tx = conn.transaction()
        await tx.start()
        first = await upsert_frame(conn, bars(sid, 0, 1_000))  # uncommitted
        # Both batches lie after the newest *committed* bar: without the series lock the
        # second would take the COPY path too and fail on a duplicate key at commit.
        second = asyncio.create_task(upsert_frame(other, bars(sid, 500, 1_000)))
        await asyncio.sleep(0.5)
        assert not second.done()
        waiting = await other_waits(fresh)
        assert waiting == 1
        await tx.commit()
        changes = await asyncio.wait_for(second, 10)
    finally:
        await other.close()
    assert [c.rows for c in first] == [1_000]
    # 500 overlapping identical bars are left alone; 500 new ones are appended.
    assert [(c.rows, c.first_ts, c.last_ts) for c in changes] == [
        (500, T0 + pd.Timedelta(minutes=1_000), T0 + pd.Timedelta(minutes=1_499))
    ]
    rows = await series_rows(conn, sid)
    assert len(rows) == 1_500
    assert len({r["ts"] for r in rows}) == 1_500


async def other_waits(settings: Settings) -> int:
    probe = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        count: int = await probe.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        )
        return count
    finally:
        await probe.close()


async def test_many_concurrent_writers_store_every_bar_exactly_once(
    conn: asyncpg.Connection, fresh: Settings
) -> None:
    ids = await upsert_symbols(conn, [SymbolInfo("ACME"), SymbolInfo("GLOBX")])
    rng = random.Random(7)
    jobs = []
    for _ in range(12):
        start = rng.randrange(0, 4_000)
        jobs.append((rng.choice(list(ids.values())), start, rng.randrange(200, 1_500)))
    conns = [await asyncpg.connect(fresh.asyncpg_dsn) for _ in range(4)]
    try:

        async def run(worker: int) -> None:
            for sid, start, count in jobs[worker::4]:
                await upsert_frame(conns[worker], bars(sid, start, count))

        await asyncio.gather(*(run(w) for w in range(4)))
    finally:
        for c in conns:
            await c.close()
    for sid in ids.values():
        wanted = set()
        for s, start, count in jobs:
            if s == sid:
                wanted.update(range(start, start + count))
        rows = await series_rows(conn, sid)
        got = [int((r["ts"] - T0.to_pydatetime()).total_seconds() // 60) for r in rows]
        assert got == sorted(wanted)
        assert [r["close"] for r in rows] == pytest.approx([100.0 + i * 0.01 for i in got])
    # Each change counts only what it changed, so they add up to the rows stored.
    total = await conn.fetchval("SELECT sum(rows) FROM bar_changes")
    assert total == await conn.fetchval("SELECT count(*) FROM bars")


async def test_a_failing_batch_writes_nothing_of_any_series(conn: asyncpg.Connection) -> None:
    ids = await upsert_symbols(conn, [SymbolInfo("ACME"), SymbolInfo("GLOBX")])
    good = bars(ids["ACME"], 0, 100)
    bad = bars(ids["GLOBX"], 0, 100)
    bad.loc[50, "low"] = bad.loc[50, "high"] + 1  # breaks the table's check constraint
    with pytest.raises(asyncpg.CheckViolationError):
        await upsert_frame(conn, pd.concat([good, bad], ignore_index=True))
    assert await conn.fetchval("SELECT count(*) FROM bars") == 0
    assert await conn.fetchval("SELECT count(*) FROM bar_changes") == 0


async def test_not_a_number_is_refused_before_the_database(conn: asyncpg.Connection) -> None:
    sid = (await upsert_symbols(conn, [SymbolInfo("ACME")]))["ACME"]
    frame = bars(sid, 0, 10)
    frame.loc[3, "close"] = float("nan")  # NaN > 0 holds in PostgreSQL: the checks miss it
    with pytest.raises(ValueError, match="finite"):
        await upsert_frame(conn, frame)
    assert await conn.fetchval("SELECT count(*) FROM bars") == 0


async def test_a_time_repeated_in_a_batch_keeps_the_last_row(conn: asyncpg.Connection) -> None:
    sid = (await upsert_symbols(conn, [SymbolInfo("ACME")]))["ACME"]
    frame = pd.concat([bars(sid, 0, 3), bars(sid, 1, 1, bump=5.0)], ignore_index=True)
    changes = await upsert_frame(conn, frame)
    assert [c.rows for c in changes] == [3]
    assert [r["close"] for r in await series_rows(conn, sid)] == pytest.approx(
        [100.0, 105.01, 100.02]
    )


async def test_record_tuples_and_partitions_created_on_demand(conn: asyncpg.Connection) -> None:
    sid = (await upsert_symbols(conn, [SymbolInfo("ACME")]))["ACME"]
    frame = bars(sid, 0, 2)
    frame["ts"] = [pd.Timestamp("2031-06-01", tz="UTC"), pd.Timestamp("2033-06-01", tz="UTC")]
    changes = await upsert_bars(conn, frame_records(frame), source="test")
    assert [(c.rows, c.source) for c in changes] == [(2, "test")]
    names = {
        r["relname"]
        for r in await conn.fetch("SELECT relname FROM pg_class WHERE relname LIKE 'bars_y203%'")
    }
    assert {"bars_y2031", "bars_y2032", "bars_y2033"} <= names
    rows = await series_rows(conn, sid)
    assert [r["ts"] for r in rows] == [
        datetime(2031, 6, 1, tzinfo=UTC),
        datetime(2033, 6, 1, tzinfo=UTC),
    ]


async def test_one_batch_fills_gaps_revises_and_leaves_the_rest_alone(
    conn: asyncpg.Connection,
) -> None:
    sid = (await upsert_symbols(conn, [SymbolInfo("ACME")]))["ACME"]
    await upsert_frame(conn, pd.concat([bars(sid, 0, 40), bars(sid, 60, 40)]))
    before = {
        r["ts"]: r["xmin"]
        for r in await conn.fetch(
            "SELECT ts, xmin::text AS xmin FROM bars WHERE symbol_id = $1", sid
        )
    }
    batch = pd.concat(
        [
            bars(sid, 30, 10),  # unchanged
            bars(sid, 40, 20),  # the gap
            bars(sid, 60, 5, bump=1.0),  # revised
            bars(sid, 65, 5),  # unchanged
            bars(sid, 100, 10),  # after the newest
        ]
    )
    (change,) = await upsert_frame(conn, batch.sample(frac=1.0, random_state=3))
    assert (change.rows, change.first_ts, change.last_ts) == (
        35,
        T0 + pd.Timedelta(minutes=40),
        T0 + pd.Timedelta(minutes=109),
    )
    rows = await conn.fetch(
        "SELECT ts, close, xmin::text AS xmin FROM bars WHERE symbol_id = $1 ORDER BY ts", sid
    )
    assert len(rows) == 110
    minutes = [int((r["ts"] - T0.to_pydatetime()).total_seconds() // 60) for r in rows]
    assert minutes == list(range(110))
    for m, r in zip(minutes, rows, strict=True):
        assert r["close"] == pytest.approx(100.0 + m * 0.01 + (1.0 if 60 <= m < 65 else 0.0))
        if m < 40 or 65 <= m < 100:
            assert r["xmin"] == before[r["ts"]], m  # not rewritten


async def test_sparse_revisions_of_far_apart_bars(conn: asyncpg.Connection) -> None:
    sid = (await upsert_symbols(conn, [SymbolInfo("ACME")]))["ACME"]
    days = bars(sid, 0, 3).assign(timeframe="D1")
    days["ts"] = [T0, T0 + pd.Timedelta(days=100), T0 + pd.Timedelta(days=200)]
    await upsert_frame(conn, days)
    revision = days.iloc[[1]].assign(close=days["close"].iloc[1] + 0.5)
    filler = days.iloc[[0]].assign(ts=T0 + pd.Timedelta(days=50))
    (change,) = await upsert_frame(conn, pd.concat([revision, filler]))
    assert (change.rows, change.first_ts, change.last_ts) == (
        2,
        T0 + pd.Timedelta(days=50),
        T0 + pd.Timedelta(days=100),
    )
    closes = await conn.fetch(
        "SELECT ts, close FROM bars WHERE symbol_id = $1 AND timeframe = 'D1' ORDER BY ts", sid
    )
    assert [r["close"] for r in closes] == pytest.approx([100.0, 100.0, 100.51, 100.02])


async def test_revisions_across_a_year_boundary_update_only_the_changed_bars(
    conn: asyncpg.Connection,
) -> None:
    ids = await upsert_symbols(conn, [SymbolInfo("ACME"), SymbolInfo("GLOBX")])
    acme, globx = ids["ACME"], ids["GLOBX"]
    start = pd.Timestamp("2023-12-31 23:00", tz="UTC")  # 60 bars in 2023, 60 in 2024

    def around_new_year(symbol_id: int, bump_at: Collection[int] = ()) -> pd.DataFrame:
        frame = bars(symbol_id, 0, 120)
        frame["ts"] = start + pd.to_timedelta(np.arange(120), unit="min")
        for i in bump_at:
            frame.loc[i, ["close", "high"]] += 0.5
        return frame

    daily = bars(acme, 0, 3).assign(timeframe="D1")
    daily["ts"] = [T0, T0 + pd.Timedelta(days=100), T0 + pd.Timedelta(days=200)]
    await upsert_frame(conn, pd.concat([around_new_year(acme), around_new_year(globx), daily]))
    before = {
        (r["symbol_id"], r["timeframe"], r["ts"]): r["xmin"]
        for r in await conn.fetch("SELECT symbol_id, timeframe, ts, xmin::text AS xmin FROM bars")
    }
    await conn.execute("SET enable_hashjoin = off")  # a session setting the write must keep

    acme_changed = {10, 11, 59, 60, 61, 100}  # both partitions
    globx_changed = {70}
    sparse = daily.iloc[[1]].assign(close=daily["close"].iloc[1] + 0.25)
    batch = pd.concat(
        [
            around_new_year(acme, acme_changed),
            around_new_year(globx, globx_changed),
            sparse,  # a sparse daily revision: the ON CONFLICT path, in the same batch
        ]
    )
    changes = await upsert_frame(conn, batch.sample(frac=1.0, random_state=5), source="rev")

    got = {(c.symbol_id, c.timeframe): (c.rows, c.first_ts, c.last_ts) for c in changes}
    minute = pd.Timedelta(minutes=1)
    assert got == {
        (acme, "M1"): (6, start + 10 * minute, start + 100 * minute),
        (globx, "M1"): (1, start + 70 * minute, start + 70 * minute),
        (acme, "D1"): (1, T0 + pd.Timedelta(days=100), T0 + pd.Timedelta(days=100)),
    }
    recorded = await conn.fetch(
        "SELECT symbol_id, timeframe, rows, first_ts, last_ts FROM bar_changes WHERE source = 'rev'"
    )
    assert {(r["symbol_id"], r["timeframe"]): tuple(r.values())[2:] for r in recorded} == got
    rows = await conn.fetch(
        "SELECT symbol_id, timeframe, ts, close, xmin::text AS xmin FROM bars "
        "WHERE timeframe = 'M1' ORDER BY symbol_id, ts"
    )
    assert len(rows) == 240
    for r in rows:
        i = int((r["ts"] - start.to_pydatetime()) / minute)
        changed = i in (acme_changed if r["symbol_id"] == acme else globx_changed)
        assert r["close"] == pytest.approx(100.0 + i * 0.01 + (0.5 if changed else 0.0))
        unchanged_xmin = r["xmin"] == before[(r["symbol_id"], "M1", r["ts"])]
        assert unchanged_xmin != changed, (r["symbol_id"], i)
    assert await conn.fetchval("SELECT current_setting('enable_hashjoin')") == "off"
    assert await conn.fetchval("SELECT current_setting('enable_mergejoin')") == "on"
