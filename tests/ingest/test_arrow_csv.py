"""The Arrow CSV reader (workers/arrow_csv.py) against the pandas reader it replaced.

Every file here is read both ways, chunk by chunk, and validated: the accepted rows, the
rejected lines and their reasons must be the same. The rejects' values from the Arrow
reader are the file's text, checked against Python's csv module (an independent parse).
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workers import arrow_csv
from workers.files import CsvEngine, OhlcvFile
from workers.validation import REQUIRED, validate_chunk

HEADER = "ticker,time,open,high,low,close,volume"


def good(ticker: str, minute: int, *, close: float = 10.5, tail: str = "") -> str:
    return f"{ticker},2024-03-04 14:{minute:02d}:00{tail},10,11,9,{close},{100 + minute}"


def read(
    path: Path, engine: CsvEngine, rows: int, **options: object
) -> tuple[pd.DataFrame, pd.DataFrame, list[bool]]:
    """(accepted rows, rejected rows, per chunk whether it kept the file's text)."""
    file = OhlcvFile(path, ticker_given="ticker" in options)
    tz = str(options.get("tz", "UTC"))
    bars, rejected, kept_text = [], [], []
    for chunk in file.chunks(rows, tz=tz, engine=engine):
        checked = validate_chunk(
            chunk.frame,
            file.columns,
            chunk.lines,
            text=chunk.text,
            **options,  # type: ignore[arg-type]
        )
        bars.append(checked.bars.assign(ticker=checked.bars["ticker"].astype(str)))
        rejected.append(checked.rejected)
        kept_text.append(chunk.text is not None)
    if not bars:
        return pd.DataFrame(), pd.DataFrame(), []
    return (
        pd.concat(bars, ignore_index=True),
        pd.concat(rejected, ignore_index=True),
        kept_text,
    )


def assert_same(
    path: Path, *, rows: int = 3, arrow_reads: str = "all", **options: object
) -> pd.DataFrame:
    """Both readers give the same rows and rejects; returns the Arrow reader's rejects.

    `arrow_reads`: "all" (every chunk read by Arrow), "some" (Arrow gave up part way) or
    "none" (Arrow gave up at once).
    """
    new_bars, new_rejected, kept_text = read(path, "arrow", rows, **options)
    old_bars, old_rejected, _ = read(path, "pandas", rows, **options)
    # Same instants; the resolution may differ (pandas picks one per chunk, Arrow reads ns)
    # and the write path stores microseconds either way (workers/pgcopy.py).
    for bars in (new_bars, old_bars):
        if not bars.empty:
            bars["ts"] = bars["ts"].dt.as_unit("ns")
    pd.testing.assert_frame_equal(new_bars, old_bars)
    assert new_rejected["line"].tolist() == old_rejected["line"].tolist()
    assert new_rejected["reason"].tolist() == old_rejected["reason"].tolist()
    expected = {"all": all(kept_text), "some": any(kept_text) and not all(kept_text)}
    assert expected.get(arrow_reads, not any(kept_text)), kept_text
    _assert_rejects_show_file_text(path, new_rejected, kept_text, options)
    return new_rejected


def _assert_rejects_show_file_text(
    path: Path, rejected: pd.DataFrame, kept_text: list[bool], options: object
) -> None:
    """Where Arrow read the whole file, each reject's values are its line's fields as
    written (Python's csv module, reading the same lines)."""
    if rejected.empty or not all(kept_text):
        return
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:  # type: ignore[operator]
        text = fh.read()
    lines = text.splitlines()
    header = next(csv.reader([lines[0]]))
    for _, row in rejected.iterrows():
        fields = dict(zip(header, next(csv.reader([lines[row["line"] - 1]])), strict=False))
        for column in (*REQUIRED, "ticker"):
            if column in rejected.columns and column in fields:
                assert row[column] == fields[column], (row["line"], column)


def write(tmp_path: Path, lines: list[str], *, name: str = "bars.csv", ending: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes((ending.join(lines) + ending).encode())
    return path


def test_bad_numbers_duplicates_and_out_of_order_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            HEADER,
            good("ACME", 5),  # 2
            good("ACME", 1),  # 3: earlier than line 2 (out of order is fine)
            "ACME,2024-03-04 14:02:00,abc,11,9,10.5,100",  # 4
            "ACME,2024-03-04 14:03:00,10,11,9,,100",  # 5: empty close
            "ACME,2024-03-04 14:04:00,10,11,9, 10.5,100",  # 6: a space (pandas parses it)
            "ACME,2024-03-04 14:06:00,inf,11,9,10.5,100",  # 7
            "ACME,2024-03-04 14:07:00,nan,11,9,10.5,100",  # 8
            "ACME,2024-03-04 14:08:00,1e1,1.1E1,+9,10.5,.5",  # 9: good, unusual spellings
            "ACME,2024-03-04 14:09:00,10,11,9,10.5,-1",  # 10
            good("ACME", 5, close=10.75),  # 11: repeats line 2 (another chunk)
            good("ACME", 1),  # 12: repeats line 3 (another chunk)
            "ACME,2024-03-04 14:10:00,10,11,9,10.5,1_000",  # 13
            "ACME,2024-03-04 14:11:00,10,11,9,10.5,0x10",  # 14
            good("ACME", 12),  # 15
            good("ACME", 12),  # 16: repeats 15, same chunk
            "ACME,2024-03-04 14:13:00,-10,11,9,10.5,100",  # 17
        ],
    )
    rejected = assert_same(path, rows=3)
    assert rejected["line"].tolist() == [4, 5, 7, 8, 10, 13, 14, 16, 17]
    rejected = assert_same(path, rows=100)  # one chunk: now the repeats are found too
    assert 11 in rejected["line"].tolist() and 12 in rejected["line"].tolist()


def test_quoted_fields_bom_and_crlf(tmp_path: Path) -> None:
    lines = [
        "ticker,time,open,high,low,close,volume,name",
        '"ACME","2024-03-04 14:30:00","10","11","9","10.5","100","Acme, Inc."',
        'ACME,2024-03-04 14:31:00,10,11,9,10.5,100,"He said ""buy"""',
        '"ACME","2024-03-04 14:32:00","","11","9","10.5","100",""',
        good("ACME", 33) + ",plain",
    ]
    crlf = write(tmp_path, lines, name="crlf.csv", ending="\r\n")
    assert_same(crlf)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + crlf.read_bytes())
    rejected = assert_same(bom, rows=2)
    assert rejected["line"].tolist() == [4]
    assert rejected["open"].tolist() == [""]  # as written: an empty field


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            HEADER,
            "",  # 2
            good("ACME", 1),  # 3
            ",,,,,,",  # 4: every field empty, a blank row too
            "",  # 5
            "ACME,not a time,10,11,9,10.5,100",  # 6
            good("ACME", 2),  # 7
            "",  # 8
            "",  # 9
        ],
    )
    rejected = assert_same(path, rows=2)
    assert rejected["line"].tolist() == [6]


def test_times_with_and_without_offsets(tmp_path: Path) -> None:
    lines = [
        HEADER,
        good("ACME", 1, tail="+00:00"),
        good("ACME", 2, tail="Z"),
        "ACME,2024-03-04T09:33:00-05:00,10,11,9,10.5,100",
        "ACME, 2024-03-04 14:34:00 ,10,11,9,10.5,100",  # spaces around: trimmed
        "ACME,2024-03-04,10,11,9,10.5,100",  # a date
        "ACME,03/04/2024 14:36,10,11,9,10.5,100",  # not ISO: pandas infers the format
        "ACME,,10,11,9,10.5,100",  # no time
        "ACME,2024-03-10 02:30:00,10,11,9,10.5,100",  # nonexistent in New York
        "ACME,2024-03-04 14:38:00.123456,10,11,9,10.5,100",
    ]
    path = write(tmp_path, lines)
    assert_same(path, rows=3)
    assert_same(path, rows=3, tz="America/New_York")
    assert_same(path, rows=100, tz="Europe/Berlin")
    # Chunks whose times are all naive, or all with offsets, are parsed by Arrow.
    uniform = write(
        tmp_path, [HEADER, *(good("ACME", m, tail="+01:00") for m in range(5))], name="u.csv"
    )
    assert_same(uniform, tz="America/New_York")
    assert_same(uniform)


@pytest.mark.parametrize("scale", [1, 1_000], ids=["seconds", "milliseconds"])
def test_epoch_times(tmp_path: Path, scale: int) -> None:
    epoch = int(pd.Timestamp("2024-03-04 14:30", tz="UTC").timestamp())
    lines = [HEADER]
    for m in range(6):
        lines.append(f"ACME,{(epoch + 60 * m) * scale},10,11,9,10.5,{100 + m}")
    lines[3] = "ACME,,10,11,9,10.5,100"  # line 4: no time
    assert_same(write(tmp_path, lines), rows=4)
    lines[5] = "ACME,yesterday,10,11,9,10.5,100"  # line 6: text among the numbers
    rejected = assert_same(write(tmp_path, lines), rows=4)
    # Text in a chunk makes its whole time column text (pandas' inference, per chunk): the
    # epoch on line 7, read as text, is no time either; line 5, in the first chunk, is.
    assert rejected["line"].tolist() == [4, 6, 7]


def test_tickers_are_normalised_alike(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            HEADER,
            good("acme", 1),
            good(" ACME ", 2),
            good("Acme", 1),  # repeats line 2 as ACME
            good("", 3),
            good("BETA", 1),
            good("x" * 40, 1),
            good("beta", 2),
        ],
    )
    rejected = assert_same(path, rows=4)
    assert set(rejected["reason"]) >= {"missing ticker", "ticker too long"}
    assert_same(path, rows=100)
    assert_same(path, ticker="given")  # a ticker option overrides the column


def test_ragged_rows_and_quoted_line_breaks_fall_back_to_pandas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Blocks of a few rows, so that Arrow fails part way through these small files.
    monkeypatch.setattr(arrow_csv, "_BLOCK_BYTES", 256)
    rows = [good("ACME", m) for m in range(12)]
    ragged = write(tmp_path, [HEADER, *rows[:7], "ACME,2024-03-04 15:00:00,10,11", *rows[7:]])
    # Chunks of 3 rows: Arrow reads the first two, pandas the rest from line 8 on.
    assert_same(ragged, rows=3, arrow_reads="some")
    broken = write(
        tmp_path,
        [
            "ticker,time,open,high,low,close,volume,name",
            *(r + ",x" for r in rows[:4]),
            rows[4] + ',"two\nlines"',
            *(r + ",x" for r in rows[5:]),
        ],
        name="broken.csv",
    )
    assert_same(broken, rows=3, arrow_reads="some")
    too_many = write(tmp_path, [HEADER, rows[0] + ",extra", *rows[1:]], name="many.csv")
    assert_same(too_many, rows=3, arrow_reads="none")


def test_gzip_and_other_delimiters(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "timestamp;o;h;l;c;v",
            "2024-03-04T09:30:00;10;11;9;10.5;5",
            "2024-03-04T09:31:00;10;11;9;10,5;5",  # a decimal comma: not a number
            "2024-03-04T09:32:00;10;11;9;10.5;5",
        ]
    )
    path = tmp_path / "bars.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(text + "\n")
    rejected = assert_same(path, rows=2, ticker="initech", tz="America/New_York")
    assert rejected["line"].tolist() == [3]


def test_many_rows_of_random_numbers(tmp_path: Path) -> None:
    """Floats with up to 17 significant digits parse to the same doubles both ways."""
    rng = np.random.default_rng(7)
    n = 20_000
    close = rng.uniform(1, 1e4, n)
    digits = rng.integers(0, 13, n)
    close = np.array([round(c, int(d)) for c, d in zip(close, digits, strict=True)])
    frame = pd.DataFrame(
        {
            "ticker": rng.choice(["AAA", "BBB", "CCC"], n),
            "time": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta(rng.permutation(n), unit="min"),
            "open": close,
            "high": close * (1 + rng.uniform(0, 0.01, n)),
            "low": close * (1 - rng.uniform(0, 0.01, n)),
            "close": close,
            "volume": rng.uniform(0, 1e6, n),
        }
    )
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.17g")
    path = tmp_path / "random.csv"
    path.write_text(buffer.getvalue())
    rejected = assert_same(path, rows=4_096)
    assert rejected.empty


@pytest.mark.parametrize("rows", [1, 5, 1_000])
def test_chunk_sizes_do_not_change_the_outcome(tmp_path: Path, rows: int) -> None:
    lines = [HEADER]
    for m in range(30):
        lines.append(good("ACME" if m % 3 else "BETA", m % 20))
        if m % 7 == 0:
            lines.append("")
    assert_same(write(tmp_path, lines), rows=rows)
