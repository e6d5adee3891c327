"""The `ingest` and `export` commands: a CSV of the demo data round-trips; bad files fail."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from core.settings import Settings
from tests.conftest import migrated_settings
from workers.demo import DAILY_SYMBOLS
from workers.export import export_bars


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphql_api", *args],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def export_daily(url: str) -> bytes:
    """Every demo daily series as one CSV (one header)."""
    conn = await asyncpg.connect(migrated_settings(url).asyncpg_dsn)
    try:
        parts = []
        for symbol in DAILY_SYMBOLS:
            out = io.BytesIO()
            await export_bars(conn, symbol.ticker, "D1", out)
            parts.append(out.getvalue())
    finally:
        await conn.close()
    header, _, _ = parts[0].partition(b"\n")
    return header + b"\n" + b"".join(p.partition(b"\n")[2] for p in parts)


async def test_demo_data_round_trips_through_ingest_and_export(
    database_url: str, fresh: Settings, tmp_path: Path
) -> None:
    original = await export_daily(database_url)
    assert original.count(b"\n") == 1 + 3_270 * 3 + 2_148 + 196
    source = tmp_path / "daily.csv"
    source.write_bytes(original)
    target = fresh.database_url
    assert target is not None

    done = cli(target, "ingest", str(source), "--timeframe", "D1")
    assert done.returncode == 0, done.stderr
    assert "12,154 rows read, 12,154 accepted (12,154 new or revised), 0 rejected" in done.stderr

    assert await export_daily(target) == original
    exported = tmp_path / "aapl.csv"
    done = cli(target, "export", "aapl", "--timeframe", "d1", "--output", str(exported))
    assert done.returncode == 0, done.stderr
    lines = exported.read_text().splitlines()
    assert lines[0] == "ticker,time,open,high,low,close,volume"
    assert lines[1] == "AAPL,2000-03-01 00:00:00+00,118.56,132.06,118.5,130.31,9616100"
    assert len(lines) == 1 + 3_270


async def test_a_bad_file_fails_with_one_message_and_writes_nothing(
    conn: asyncpg.Connection, fresh: Settings, tmp_path: Path
) -> None:
    assert fresh.database_url is not None
    good = tmp_path / "good.csv"
    good.write_text("ticker,time,open,high,low,close,volume\nACME,2024-01-02,1,2,0.5,1.5,10\n")
    bad = tmp_path / "prices.csv"
    bad.write_text("item,price\nwidget,3\n")

    # Every file is checked before anything is written: the good one is not ingested either.
    done = cli(fresh.database_url, "ingest", str(good), str(bad), "--timeframe", "D1")

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {bad}: not an OHLCV table: no column for time, open, high, low, close, "
        "volume, ticker (or give one) (columns found: item, price)"
    ]
    assert await conn.fetchval("SELECT count(*) FROM symbols") == 0
    assert await conn.fetchval("SELECT count(*) FROM bars") == 0
