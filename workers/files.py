"""Reading OHLCV files (CSV, optionally gzipped, and Parquet) in chunks, never whole."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from workers.validation import ColumnMap, NotOhlcvError, map_columns

if TYPE_CHECKING:
    from workers.arrow_csv import TextOf

_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_DELIMITERS = (",", ";", "\t", "|")
#: How CSV files are read: Arrow's multi-threaded reader (falling back to pandas where it
#: cannot read a file as pandas does; see workers.arrow_csv), or pandas alone.
CsvEngine = Literal["arrow", "pandas"]


@dataclass
class RawChunk:
    """Rows as read (mapped columns only), their line numbers, and progress so far."""

    frame: pd.DataFrame
    lines: npt.NDArray[np.int64]
    position: int  # bytes read (CSV) or rows read (Parquet), comparable to OhlcvFile.size
    #: The mapped columns' text as written in the file, per row, when the reader kept it
    #: (the rejects show it); otherwise the frame's values are shown.
    text: TextOf | None = None


class OhlcvFile:
    """An opened OHLCV file: its format, column mapping and a chunk iterator.

    Opening checks that the file is an OHLCV table (NotOhlcvError otherwise) before any row
    is read. Line numbers are the file's line numbers for CSV (the header is line 1; assumes
    no line breaks inside quoted fields) and 1-based row numbers for Parquet.
    """

    def __init__(self, path: Path, *, ticker_given: bool = False) -> None:
        self.path = path
        try:
            with path.open("rb") as fh:
                magic = fh.read(4)
        except IsADirectoryError:
            raise NotOhlcvError(f"{path}: is a directory, not a file") from None
        self.format: Literal["csv", "parquet"] = "parquet" if magic == _PARQUET_MAGIC else "csv"
        self.compression: Literal["gzip"] | None = "gzip" if magic.startswith(_GZIP_MAGIC) else None
        self.delimiter = ","
        self.header_names: list[str] = []
        names = self._parquet_names() if self.format == "parquet" else self._csv_names()
        try:
            self.columns: ColumnMap = map_columns(names, ticker_given=ticker_given)
        except NotOhlcvError as exc:
            raise NotOhlcvError(f"{path}: {exc}") from None
        #: Total progress units: bytes for CSV, rows for Parquet.
        self.size = self._num_rows if self.format == "parquet" else path.stat().st_size

    def chunks(
        self, rows: int, *, tz: str = "UTC", engine: CsvEngine = "arrow"
    ) -> Generator[RawChunk, None, None]:
        """The file's rows, `rows` at a time; all-empty CSV lines are skipped.

        `tz` is the zone of naive times (validation's argument), which the Arrow reader
        needs to know whether it may parse times with offsets itself.
        """
        if self.format == "parquet":
            yield from self._parquet_chunks(rows)
        elif engine == "pandas":
            yield from self._csv_chunks(rows)
        else:
            yield from self._arrow_csv_chunks(rows, tz)

    def _arrow_csv_chunks(self, rows: int, tz: str) -> Iterator[RawChunk]:
        from workers.arrow_csv import ArrowCsvUnreadable, arrow_chunks

        done = 0
        try:
            for (frame, lines, position, text), through in arrow_chunks(
                self.path,
                compression=self.compression,
                delimiter=self.delimiter,
                names=self.header_names,
                columns=self.columns,
                rows=rows,
                aware_times=tz.upper() in ("UTC", "ETC/UTC", "Z"),
            ):
                yield RawChunk(frame, lines, position, text)
                done = through
        except ArrowCsvUnreadable:
            # The pandas reader goes on from the first row of the chunk Arrow could not read.
            yield from self._csv_chunks(rows, skip=done)

    def _csv_names(self) -> list[str]:
        try:
            with self._open_text() as text:
                header = text.readline()
        except (UnicodeDecodeError, OSError) as exc:
            raise NotOhlcvError(f"{self.path}: not a CSV or Parquet file ({exc})") from None
        if not header.strip():
            raise NotOhlcvError(f"{self.path}: empty file, no header row")
        self.delimiter = max(_DELIMITERS, key=header.count)
        try:
            names = pd.read_csv(
                self.path, nrows=0, sep=self.delimiter, compression=self.compression
            ).columns
        except (ValueError, UnicodeDecodeError) as exc:
            raise NotOhlcvError(f"{self.path}: not a readable CSV file ({exc})") from None
        self.header_names = [str(n) for n in names]
        return self.header_names

    @contextlib.contextmanager
    def _open_text(self) -> Iterator[IO[str]]:
        if self.compression == "gzip":
            import gzip

            with gzip.open(self.path, "rt", encoding="utf-8") as fh:
                yield fh
        else:
            with self.path.open(encoding="utf-8") as fh:
                yield fh

    def _csv_chunks(self, rows: int, *, skip: int = 0) -> Iterator[RawChunk]:
        """The pandas reader, from the `skip`th data row on (blank lines count as rows)."""
        columns = self.columns.source_columns()
        as_text = [c for c in (self.columns.ticker, self.columns.name) if c is not None]
        with self.path.open("rb") as raw:
            reader = pd.read_csv(
                raw,
                sep=self.delimiter,
                usecols=columns,
                chunksize=rows,
                compression=self.compression,
                keep_default_na=False,
                na_values=[""],
                dtype=dict.fromkeys(as_text, str),
                # Blank lines are kept as rows (then dropped here) so line numbers stay true.
                skip_blank_lines=False,
                # Lines after the header; the rows before `skip` were all one line each.
                skiprows=range(1, skip + 1) if skip else None,
            )
            next_line = 2 + skip
            with reader:
                for frame in reader:
                    lines = np.arange(next_line, next_line + len(frame), dtype=np.int64)
                    next_line += len(frame)
                    blank = frame.isna().all(axis=1).to_numpy()
                    if blank.any():
                        frame, lines = frame[~blank], lines[~blank]
                    yield RawChunk(frame.reset_index(drop=True), lines, raw.tell())

    def _parquet_file(self) -> object:
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise NotOhlcvError(f"{self.path}: not a readable Parquet file ({exc})") from None

    def _parquet_names(self) -> list[str]:
        pf = self._parquet_file()
        self._num_rows = int(pf.metadata.num_rows)  # type: ignore[attr-defined]
        return [str(n) for n in pf.schema_arrow.names]  # type: ignore[attr-defined]

    def _parquet_chunks(self, rows: int) -> Iterator[RawChunk]:
        pf = self._parquet_file()
        done = 0
        for batch in pf.iter_batches(  # type: ignore[attr-defined]
            batch_size=rows, columns=self.columns.source_columns()
        ):
            frame = batch.to_pandas()
            lines = np.arange(done + 1, done + 1 + len(frame), dtype=np.int64)
            done += len(frame)
            yield RawChunk(frame, lines, done)
