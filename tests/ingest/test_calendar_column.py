"""Symbol info in bar files: `asset_class` and `calendar` columns set a new symbol's calendar;
an unknown calendar refuses its rows alone."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from workers.file_ingest import RejectWriter, ingest_file


async def test_a_calendar_column_sets_the_symbols_calendar_and_its_sessions(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "ticker,calendar,time,open,high,low,close,volume\n"
        "NYS1,XNYS,2024-03-04 14:30:00+00:00,10,11,9,10.5,100\n"
        "NYS1,XNYS,2024-03-04 14:31:00+00:00,10,11,9,10.5,100\n"
        "FXP1,fx,2024-03-04 14:30:00+00:00,1.1,1.2,1.0,1.15,0\n"
        "BAD1,NOPE,2024-03-04 14:30:00+00:00,10,11,9,10.5,100\n"
    )
    rejects_path = tmp_path / "rejects.csv"
    rejects = RejectWriter(rejects_path)
    report = await ingest_file(conn, path, timeframe="M1", rejects=rejects)
    rejects.close()
    assert (report.rows_written, report.rows_rejected) == (3, 1)
    assert "unknown calendar" in rejects_path.read_text()
    assert "5," in rejects_path.read_text()  # the line of the refused row
    calendars = dict(await conn.fetch("SELECT ticker, calendar FROM symbols ORDER BY ticker"))
    assert calendars == {"FXP1": "FX", "NYS1": "XNYS"}  # normalised spelling; BAD1 not created
    # The calendar's sessions are there for the read path to join.
    sessions = await conn.fetchval(
        "SELECT count(*) FROM trading_sessions WHERE calendar = 'XNYS' "
        "AND day BETWEEN '2024-03-04' AND '2024-03-08'"
    )
    assert sessions == 5


async def test_an_asset_class_column_derives_the_calendar(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "ticker,asset_class,time,open,high,low,close,volume\n"
        "COIN1,crypto,2024-03-04 00:00:00+00:00,10,11,9,10.5,1.5\n"
        "STK1,equity,2024-03-04 14:30:00+00:00,10,11,9,10.5,100\n"
    )
    await ingest_file(conn, path, timeframe="M1")
    rows = await conn.fetch("SELECT ticker, asset_class, calendar FROM symbols ORDER BY ticker")
    assert [tuple(r) for r in rows] == [("COIN1", "crypto", "24/7"), ("STK1", "equity", "XNYS")]


async def test_an_exchange_column_alone_keeps_every_hour(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    # Exchange names in files are free text: without an asset class or calendar the symbol
    # stays on 24/7, its bars served as before calendars existed.
    path = tmp_path / "bars.csv"
    path.write_text(
        "ticker,exchange,time,open,high,low,close,volume\n"
        "EXC1,NYSE,2024-03-04 03:00:00+00:00,10,11,9,10.5,100\n"
    )
    await ingest_file(conn, path, timeframe="M1")
    assert await conn.fetchval("SELECT calendar FROM symbols WHERE ticker = 'EXC1'") == "24/7"


async def test_sessions_are_written_for_new_symbols_and_calendars_without_any(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    """A known symbol whose calendar has sessions costs no calendar check (the API's
    start-up re-checks calendars in use); a calendar left without sessions gets them back."""
    path = tmp_path / "bars.csv"
    path.write_text(
        "ticker,calendar,time,open,high,low,close,volume\n"
        "NYS1,XNYS,2024-03-04 14:30:00+00:00,10,11,9,10.5,100\n"
    )
    await ingest_file(conn, path, timeframe="M1")
    count = "SELECT count(*) FROM trading_sessions WHERE calendar = 'XNYS'"
    full = await conn.fetchval(count)
    assert full > 9_000  # 1990 to two years ahead

    # One session gone: a known symbol with an unchanged calendar does not look again.
    await conn.execute(
        "DELETE FROM trading_sessions WHERE calendar = 'XNYS' AND day = '2024-03-04'"
    )
    await ingest_file(conn, path, timeframe="M1")
    assert await conn.fetchval(count) == full - 1

    # Every session gone: written again, for the same known symbol.
    await conn.execute("DELETE FROM trading_sessions WHERE calendar = 'XNYS'")
    await ingest_file(conn, path, timeframe="M1")
    assert await conn.fetchval(count) == full

    # A new symbol on that calendar checks it (and puts back the missing session).
    await conn.execute(
        "DELETE FROM trading_sessions WHERE calendar = 'XNYS' AND day = '2024-03-04'"
    )
    path.write_text(path.read_text().replace("NYS1", "NYS2"))
    await ingest_file(conn, path, timeframe="M1")
    assert await conn.fetchval(count) == full
