"""Ingesting OHLCV files: read in chunks, validate, write the good rows, report the rejects."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import asyncpg
import numpy as np
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
    more_connections: Sequence[asyncpg.Connection] = (),
) -> FileReport:
    """Ingest one file; good rows land batch by batch (one transaction each), rejects are counted.

    With `more_connections` (and no `recorder`, whose counts go with one connection's
    transactions), batches are written over several connections at once: a batch waits for
    the earlier batches in flight that hold any of its tickers, so each series is still
    written in file order (a row repeated in a later batch wins, change ids follow the file),
    while batches of different tickers go in parallel.

    Raises NotOhlcvError before writing anything when the file is not an OHLCV table.
    """
    check_timezone(tz)
    timeframe = parse_timeframe(timeframe)
    file = source if isinstance(source, OhlcvFile) else OhlcvFile(source, ticker_given=bool(ticker))
    report = FileReport(file.path)
    name = f"file:{file.path.name}"
    connections = [conn, *more_connections] if recorder is None else [conn]
    writers = [BarWriter(c, timeframe, source=name, recorder=recorder) for c in connections]
    for other in writers[1:]:
        other.ids = writers[0].ids  # one cache of symbol ids: each ticker resolved once
    idle = list(writers)
    in_flight: list[_Write] = []
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

    async def settle(done: _Write) -> None:
        in_flight.remove(done)
        report.rows_written += await done.task  # raises the batch's error, if any
        idle.append(done.writer)

    # Parsing the next chunk (in a thread) overlaps with writing this one (in the database).
    pending = asyncio.ensure_future(asyncio.to_thread(read_next))
    try:
        while (item := await pending) is not None:
            checked, position = item
            pending = asyncio.ensure_future(asyncio.to_thread(read_next))
            tickers = _tickers_of(checked.bars)
            # Earlier batches of the same series first; then any free connection.
            for earlier in [w for w in in_flight if w.tickers & tickers]:
                await settle(earlier)
            while not idle:
                await asyncio.wait([w.task for w in in_flight], return_when=asyncio.FIRST_COMPLETED)
                for done in [w for w in in_flight if w.task.done()]:
                    await settle(done)
            writer = idle.pop(0)
            task = asyncio.ensure_future(writer.write(checked.bars, rejected=len(checked.rejected)))
            in_flight.append(_Write(writer, tickers, task))
            _account(report, checked, rejects)
            if on_progress is not None:
                on_progress(position, file.size, report.rows_read)
        while in_flight:
            await settle(in_flight[0])
    finally:
        # Nothing is left running: a failed batch's siblings finish (or fail) before we return.
        for write in in_flight:
            with contextlib.suppress(BaseException):
                await write.task
        # A thread cannot be cancelled: let the read in flight finish before closing the file.
        with contextlib.suppress(Exception):
            await pending
        with contextlib.suppress(Exception):
            chunks.close()
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class _Write:
    """A batch being written: by which writer, for which tickers."""

    writer: BarWriter
    tickers: frozenset[str]
    task: asyncio.Future[int]


def _tickers_of(bars: pd.DataFrame) -> frozenset[str]:
    if bars.empty:
        return frozenset()
    column = bars["ticker"]
    if isinstance(column.dtype, pd.CategoricalDtype):
        used = np.unique(column.cat.codes.to_numpy())
        return frozenset(str(t) for t in column.cat.categories[used])
    return frozenset(str(t) for t in column.unique())


def _account(report: FileReport, checked: ValidatedChunk, rejects: RejectWriter | None) -> None:
    """Counts and rejects of a batch, in file order (its written rows are added when its
    write completes)."""
    rejected = checked.rejected
    report.rows_read += len(checked.bars) + len(rejected)
    report.rows_accepted += len(checked.bars)
    report.rows_rejected += len(rejected)
    if not rejected.empty:
        report.reasons.update(rejected["reason"].tolist())
        room = MAX_EXAMPLES - len(report.examples)
        if room > 0:
            head = rejected.head(room)
            report.examples.extend(zip(head["line"].tolist(), head["reason"].tolist(), strict=True))
        if rejects is not None:
            rejects.write(report.path, rejected)
