"""Ingesting OHLCV files: read in chunks, validate, write the good rows, report the rejects."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import asyncpg
import pandas as pd

from core.intervals import parse_timeframe
from workers.files import OhlcvFile
from workers.runs import RunRecorder
from workers.validation import REQUIRED, ValidatedChunk, check_timezone, validate_chunk
from workers.writer import BarWriter

#: Columns of the reject file.
REJECT_COLUMNS = ("file", "line", "reason", "ticker", *REQUIRED)
MAX_EXAMPLES = 20

#: Called after each chunk with (position, size, rows read so far) of the file.
ProgressCallback = Callable[[int, int, int], None]


@dataclass
class FileReport:
    """What an ingest of one file did."""

    path: Path
    rows_read: int = 0
    rows_accepted: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[int, str]] = field(default_factory=list)  # (line, reason), first few
    seconds: float = 0.0


class RejectWriter:
    """Appends rejected rows (file, line, reason, raw values) to one CSV file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: TextIO = path.open("w", encoding="utf-8", newline="")
        self._fh.write(",".join(REJECT_COLUMNS) + "\n")

    def write(self, source: Path, rejected: pd.DataFrame) -> None:
        """Append one chunk's rejects."""
        if rejected.empty:
            return
        out = rejected.reindex(columns=list(REJECT_COLUMNS))
        out["file"] = str(source)
        out.to_csv(self._fh, header=False, index=False)

    def close(self) -> None:
        """Flush and close the file."""
        self._fh.close()


def open_files(paths: list[Path], *, ticker: str | None) -> list[OhlcvFile]:
    """Open (and so check) every file before anything is written: one bad file stops all."""
    return [OhlcvFile(p, ticker_given=ticker is not None) for p in paths]


async def ingest_file(
    conn: asyncpg.Connection,
    source: OhlcvFile | Path,
    *,
    timeframe: str,
    tz: str = "UTC",
    ticker: str | None = None,
    batch_rows: int = 100_000,
    rejects: RejectWriter | None = None,
    on_progress: ProgressCallback | None = None,
    recorder: RunRecorder | None = None,
) -> FileReport:
    """Ingest one file; good rows land batch by batch (one transaction each), rejects are counted.

    Raises NotOhlcvError before writing anything when the file is not an OHLCV table.
    """
    check_timezone(tz)
    timeframe = parse_timeframe(timeframe)
    file = source if isinstance(source, OhlcvFile) else OhlcvFile(source, ticker_given=bool(ticker))
    report = FileReport(file.path)
    writer = BarWriter(conn, timeframe, source=f"file:{file.path.name}", recorder=recorder)
    started = time.perf_counter()
    chunks = file.chunks(batch_rows, tz=tz)

    def read_next() -> tuple[ValidatedChunk, int] | None:
        chunk = next(chunks, None)
        if chunk is None:
            return None
        checked = validate_chunk(
            chunk.frame, file.columns, chunk.lines, tz=tz, ticker=ticker, text=chunk.text
        )
        return checked, chunk.position

    # Parsing the next chunk (in a thread) overlaps with writing this one (in the database).
    pending = asyncio.ensure_future(asyncio.to_thread(read_next))
    try:
        while (item := await pending) is not None:
            checked, position = item
            pending = asyncio.ensure_future(asyncio.to_thread(read_next))
            written = await writer.write(checked.bars, rejected=len(checked.rejected))
            _account(report, checked, written, rejects)
            if on_progress is not None:
                on_progress(position, file.size, report.rows_read)
    finally:
        # A thread cannot be cancelled: let the read in flight finish before closing the file.
        with contextlib.suppress(Exception):
            await pending
        with contextlib.suppress(Exception):
            chunks.close()
    report.seconds = time.perf_counter() - started
    return report


def _account(
    report: FileReport, checked: ValidatedChunk, written: int, rejects: RejectWriter | None
) -> None:
    rejected = checked.rejected
    report.rows_read += len(checked.bars) + len(rejected)
    report.rows_accepted += len(checked.bars)
    report.rows_written += written
    report.rows_rejected += len(rejected)
    if not rejected.empty:
        report.reasons.update(rejected["reason"].tolist())
        room = MAX_EXAMPLES - len(report.examples)
        if room > 0:
            head = rejected.head(room)
            report.examples.extend(zip(head["line"].tolist(), head["reason"].tolist(), strict=True))
        if rejects is not None:
            rejects.write(report.path, rejected)
