"""`market-graphql actions`: every row validated, rejects by line and reason, good rows
upserted (a re-run changes nothing), Parquet like CSV, and a file that is not a table of
actions refused before anything is written."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pandas as pd
import pytest

from core import db
from tests.conftest import migrated_settings

GOOD_AND_BAD = """\
ticker,kind,ex_date,ratio,amount,currency
AAPL,split,2005-02-28,2,,
AAPL,Dividend,2012-08-09,,2.65,usd
MSFT,SPLIT,2003-02-18,2:1,,
ZZZ,split,2010-01-04,3:2,,
ZZZ,merger,2010-01-04,2,,
ZZZ,split,2010-13-01,2,,
ZZZ,split,2011-01-03,-2,,
ZZZ,dividend,2011-01-03,,,
ZZZ,split,2012-01-03,1,,
AAPL,split,2005-02-28,2,,
,split,2013-01-02,2,,
ZZZ,dividend,2014-01-02,,abc,

ZZZ,split,2015-01-02,1:10,,
"""


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphql_api", *args],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def url(make_database: Callable[[], str]) -> str:
    url = make_database()
    db.upgrade(migrated_settings(url))
    return url


def _stored(url: str) -> list[tuple[str, str, str, float, str]]:
    async def go() -> list[tuple[str, str, str, float, str]]:
        conn = await asyncpg.connect(migrated_settings(url).asyncpg_dsn)
        try:
            rows = await conn.fetch(
                "SELECT s.ticker, a.kind, a.ex_date::text, a.value, a.currency "
                "FROM corporate_actions a JOIN symbols s ON s.id = a.symbol_id "
                "ORDER BY 1, 3, 2"
            )
        finally:
            await conn.close()
        return [tuple(r) for r in rows]  # type: ignore[misc]

    return asyncio.run(go())


def test_rejects_by_line_and_reason_and_idempotent(url: str, tmp_path: Path) -> None:
    source = tmp_path / "actions.csv"
    source.write_text(GOOD_AND_BAD)
    rejects = tmp_path / "rejects.csv"
    done = cli(url, "actions", str(source), "--reject-file", str(rejects))
    assert done.returncode == 3, done.stderr
    assert "13 actions read, 5 accepted (5 new or changed), 8 rejected" in done.stderr
    assert _stored(url) == [
        ("AAPL", "SPLIT", "2005-02-28", 2.0, "USD"),
        ("AAPL", "DIVIDEND", "2012-08-09", 2.65, "USD"),
        ("MSFT", "SPLIT", "2003-02-18", 2.0, "USD"),
        ("ZZZ", "SPLIT", "2010-01-04", 1.5, "USD"),
        ("ZZZ", "SPLIT", "2015-01-02", 0.1, "USD"),
    ]
    with rejects.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(int(r["line"]), r["reason"]) for r in rows] == [
        (6, "unknown kind 'merger' (split or dividend)"),
        (7, "unparseable ex-date"),
        (8, "ratio is not positive"),
        (9, "missing amount"),
        (10, "ratio is 1 (not a split)"),
        (11, "duplicate action (first on line 2)"),
        (12, "missing ticker"),
        (13, "amount is not a number"),
    ]
    assert all(r["file"] == str(source) for r in rows)
    # The same file again: nothing new or changed.
    again = cli(url, "actions", str(source))
    assert "5 accepted (0 new or changed)" in again.stderr
    # A corrected ratio is an update of the same action.
    source.write_text("ticker,kind,ex_date,value\nZZZ,split,2010-01-04,3\n")
    fixed = cli(url, "actions", str(source))
    assert fixed.returncode == 0, fixed.stderr
    assert "1 accepted (1 new or changed)" in fixed.stderr
    assert ("ZZZ", "SPLIT", "2010-01-04", 3.0, "USD") in _stored(url)


def test_parquet_and_not_a_table(url: str, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"symbol": ["IBM"], "type": ["dividend"], "date": ["2012-05-08"], "value": ["0.85"]}
    )
    parquet = tmp_path / "actions.parquet"
    frame.to_parquet(parquet)
    done = cli(url, "actions", str(parquet))
    assert done.returncode == 0, done.stderr
    assert _stored(url) == [("IBM", "DIVIDEND", "2012-05-08", 0.85, "USD")]
    bars = tmp_path / "bars.csv"
    bars.write_text("ticker,time,open,high,low,close,volume\nX,2024-01-01,1,1,1,1,1\n")
    refused = cli(url, "actions", str(bars))
    assert refused.returncode == 1
    assert "not an actions table" in refused.stderr
