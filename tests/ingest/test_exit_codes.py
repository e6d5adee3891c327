"""`market-graphql ingest` tells a scheduler by its exit status whether rows were rejected.

0: every row read was accepted (a header-only file too), 1: the load failed (a file is not an
OHLCV table, the database is unreachable …), 2: usage or configuration error,
3: some rows rejected (the others written), 4: rows were read and every one was rejected.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import asyncpg

from core.settings import Settings
from tests.ingest.test_cli import cli

HEADER = "ticker,time,open,high,low,close,volume\n"


def _rows(count: int, *, good: bool, start_day: int = 0) -> str:
    """`count` daily ACME rows from 2000-01-03 + start_day; bad ones have an unparseable open."""
    # Unparseable prices: the rejection the issue reported ("0 accepted, 300,003 rejected").
    open_ = "1" if good else "1.5O"
    first = date(2000, 1, 3) + timedelta(days=start_day)
    return "".join(
        f"ACME,{(first + timedelta(days=i)).isoformat()},{open_},2,0.5,1.5,10\n"
        for i in range(count)
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def test_every_row_rejected_exits_4_and_writes_nothing(
    conn: asyncpg.Connection, fresh: Settings, tmp_path: Path
) -> None:
    assert fresh.database_url is not None
    source = tmp_path / "unparseable.csv"
    source.write_text(HEADER + _rows(2_500, good=False))
    rejects = tmp_path / "rejects.csv"

    # Several batches, so the status is the whole file's, not the last batch's.
    done = cli(
        fresh.database_url,
        "ingest",
        str(source),
        "--timeframe",
        "D1",
        "--batch-rows",
        "1000",
        "--reject-file",
        str(rejects),
    )

    assert done.returncode == 4, done.stderr
    assert "2,500 rows read, 0 accepted (0 new or revised), 2,500 rejected" in done.stderr
    assert "every row was rejected" in done.stderr
    assert len(rejects.read_text().splitlines()) == 1 + 2_500  # the reject file is still written
    assert await conn.fetchval("SELECT count(*) FROM bars") == 0


async def test_some_rows_rejected_exits_3_and_writes_the_good_ones(
    conn: asyncpg.Connection, fresh: Settings, tmp_path: Path
) -> None:
    assert fresh.database_url is not None
    source = tmp_path / "mixed.csv"
    source.write_text(HEADER + _rows(1_500, good=True) + _rows(7, good=False, start_day=1_500))

    done = cli(
        fresh.database_url, "ingest", str(source), "--timeframe", "D1", "--batch-rows", "1000"
    )

    assert done.returncode == 3, done.stderr
    assert "1,507 rows read, 1,500 accepted (1,500 new or revised), 7 rejected" in done.stderr
    assert "7 of 1,507 rows rejected" in done.stderr
    assert await conn.fetchval("SELECT count(*) FROM bars") == 1_500


async def test_status_counts_the_rows_of_every_file_given(
    conn: asyncpg.Connection, fresh: Settings, tmp_path: Path
) -> None:
    assert fresh.database_url is not None
    good = tmp_path / "good.csv"
    good.write_text(HEADER + _rows(3, good=True))
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + _rows(2, good=False, start_day=3))

    done = cli(fresh.database_url, "ingest", str(good), str(bad), "--timeframe", "D1")

    # One file all rejected still counts as "some": the other file's rows were written.
    assert done.returncode == 3, done.stderr
    assert await conn.fetchval("SELECT count(*) FROM bars") == 3


async def test_clean_and_header_only_files_exit_0(fresh: Settings, tmp_path: Path) -> None:
    assert fresh.database_url is not None
    clean = tmp_path / "clean.csv"
    clean.write_text(HEADER + _rows(3, good=True))
    header_only = tmp_path / "no-rows.csv"
    header_only.write_text(HEADER)

    done = cli(fresh.database_url, "ingest", str(clean), "--timeframe", "D1")
    assert done.returncode == 0, done.stderr

    # Nothing was refused: an empty delta (a holiday, no trades) is a normal day for a feed.
    done = cli(fresh.database_url, "ingest", str(header_only), "--timeframe", "D1")
    assert done.returncode == 0, done.stderr
    assert "0 rows read, 0 accepted (0 new or revised), 0 rejected" in done.stderr


async def test_failures_keep_their_own_codes(fresh: Settings, tmp_path: Path) -> None:
    assert fresh.database_url is not None
    empty = tmp_path / "empty.csv"
    empty.write_text("")

    assert cli(fresh.database_url, "ingest", str(empty), "--timeframe", "D1").returncode == 1
    assert cli(fresh.database_url, "ingest", "--timeframe", "D1").returncode == 2  # no FILE


def test_help_documents_the_exit_codes(tmp_path: Path) -> None:
    done = cli("postgresql://unused@127.0.0.1:1/unused", "ingest", "--help")

    assert done.returncode == 0, done.stderr
    text = _one_line(done.stdout)
    for expected in (
        "0 every row accepted",
        "1 the load failed",
        "2 usage or configuration error",
        "3 some rows rejected",
        "4 every row rejected",
    ):
        assert expected in text, done.stdout
