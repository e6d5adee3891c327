"""Reading OHLCV CSV files with Arrow's multi-threaded CSV reader, into the chunks that
workers.validation checks, with the pandas reader (workers.files) as the reference.

Every field is read as text, so no value can make the reader fail; the text is then
converted column by column with Arrow (prices to float64, times to timestamps, or numbers
when they are epochs, tickers to a dictionary), and a column that does not convert whole is
handed on as text, to be parsed by workers.validation exactly as the pandas reader's output
is. The rejects keep the text as written in the file.

Rows and line numbers are those of the pandas reader: a blank line (or one with every
mapped field empty) is skipped but counted, and line n is the (n - 1)th row after the
header. Anything Arrow cannot read as such rows (a ragged row, bad UTF-8, a broken quote, a
line break inside quotes) ends the Arrow reading at the start of the chunk it falls in, and
the pandas reader goes on from that chunk: the rows, chunks and errors are then the pandas
reader's.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from workers.validation import VALUES, ColumnMap

#: Per source column, its text at the given rows (for the rejects).
TextOf = Callable[[str, npt.NDArray[np.intp]], npt.NDArray[np.object_]]
#: A chunk as workers.files.RawChunk holds it: frame, line numbers, progress, text.
Chunk = tuple[pd.DataFrame, npt.NDArray[np.int64], int, TextOf]

#: Arrow's unit of parallel parsing: its default (1, 4 and 16 MB read the benchmark's 72 MB
#: file alike here); tests make it small to end the Arrow reading part way through a file.
_BLOCK_BYTES = 1 << 20


class ArrowCsvUnreadable(Exception):
    """Arrow could not read the file's rows as the pandas reader does (see the module)."""


def arrow_chunks(
    path: Path,
    *,
    compression: str | None,
    delimiter: str,
    names: list[str],
    columns: ColumnMap,
    rows: int,
    aware_times: bool,
) -> Iterator[tuple[Chunk, int]]:
    """The file's chunks of `rows` rows read by Arrow, each with the data rows consumed so
    far (blank ones included); raises ArrowCsvUnreadable where Arrow cannot go on, after
    the last whole chunk it read.

    `aware_times`: whether times with offsets may be parsed here (validation tells them
    from naive ones itself when naive times are not UTC).
    """
    mapped = columns.source_columns()
    if len(set(names)) != len(names) or not set(mapped) <= set(names):
        raise ArrowCsvUnreadable("header names Arrow would read differently")
    quoted = _may_have_quotes(path, compression)
    raw = pa.OSFile(str(path))
    stream: pa.NativeFile = pa.CompressedInputStream(raw, "gzip") if compression == "gzip" else raw
    try:
        reader = pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(
                use_threads=True,
                block_size=_BLOCK_BYTES,
                column_names=names,
                skip_rows=1,  # the header, already read (and its BOM dropped) by OhlcvFile
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter,
                # Kept as rows of empty fields, so that line numbers stay true.
                ignore_empty_lines=False,
                # A quote anywhere may hide a line break: parse serially where it may.
                newlines_in_values=quoted,
            ),
            convert_options=pa_csv.ConvertOptions(
                include_columns=mapped,
                column_types=dict.fromkeys(mapped, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowIOError) as exc:
        raw.close()
        raise ArrowCsvUnreadable(str(exc)) from None
    pending: list[pa.RecordBatch] = []
    held = 0  # rows in `pending`
    done = 0  # data rows (blank ones included) of the chunks yielded
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (pa.ArrowInvalid, pa.ArrowIOError, UnicodeDecodeError) as exc:
                raise ArrowCsvUnreadable(str(exc)) from None
            if batch.num_rows == 0:
                continue
            pending.append(batch)
            held += batch.num_rows
            while held >= rows:
                table = pa.Table.from_batches(pending)
                head, rest = table.slice(0, rows), table.slice(rows)
                pending, held = rest.to_batches(), rest.num_rows
                if quoted:
                    _refuse_line_breaks(head)
                yield _chunk(head, columns, done, raw.tell(), aware_times), done + rows
                done += rows
        if held:
            table = pa.Table.from_batches(pending)
            if quoted:
                _refuse_line_breaks(table)
            yield _chunk(table, columns, done, raw.tell(), aware_times), done + held
    finally:
        raw.close()


def _refuse_line_breaks(table: pa.Table) -> None:
    """A quoted line break makes a row of two lines, which the pandas reader counts as one:
    such a chunk is left to it, so that both number lines alike."""
    for column in table.columns:
        if pc.any(pc.match_substring_regex(column, "[\\r\\n]")).as_py():
            raise ArrowCsvUnreadable("a line break inside a quoted field")


def _may_have_quotes(path: Path, compression: str | None) -> bool:
    if compression is not None:
        return True  # not worth a pass of its own over the decompressed bytes
    with path.open("rb") as fh:
        if fh.seek(0, 2) == 0:
            return False
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return view.find(b'"') >= 0


def _chunk(
    table: pa.Table,
    columns: ColumnMap,
    first_row: int,
    position: int,
    aware_times: bool,
) -> Chunk:
    """One chunk as the frame validate_chunk takes, blank rows dropped, lines kept."""
    table = table.combine_chunks()
    lines = np.arange(first_row + 2, first_row + 2 + table.num_rows, dtype=np.int64)
    blank = None
    for name in table.column_names:
        empty = pc.equal(table[name], "")
        blank = empty if blank is None else pc.and_(blank, empty)
    if blank is not None and pc.any(blank).as_py():
        keep = pc.invert(blank)
        table = table.filter(keep)
        lines = lines[keep.to_numpy(zero_copy_only=False)]
    frame = pd.DataFrame(
        {name: _column(table[name], name, columns, aware_times) for name in table.column_names},
        copy=False,
    )
    return frame, lines, position, _text_of(table)


def _column(text: pa.ChunkedArray, name: str, columns: ColumnMap, aware_times: bool) -> object:
    """A column as the pandas reader would hand it to validation, or as text."""
    if name in (columns.values[v] for v in VALUES):
        try:
            return pc.cast(text, pa.float64()).to_numpy()
        except pa.ArrowInvalid:
            return _strings(text)  # validation parses it as it does the pandas reader's
    if name == columns.time:
        return _times(text, aware_times)
    if name == columns.ticker:
        # A dictionary: validation normalises each distinct ticker once.
        encoded = pc.dictionary_encode(text).combine_chunks()
        return pd.Categorical.from_codes(
            encoded.indices.to_numpy(zero_copy_only=False),
            categories=pd.Index(encoded.dictionary.to_pylist(), dtype=object),
        )
    return _strings(text)


def _times(text: pa.ChunkedArray, aware_times: bool) -> object:
    """ISO 8601 times, when every one has an offset (then UTC) or none has (then naive),
    as Arrow parses them; numbers (epochs) as numbers, as the pandas reader infers them;
    anything else is left as text for validation's parser."""
    trimmed = pc.utf8_trim_whitespace(text)
    targets = [pa.timestamp("ns")]
    if aware_times:
        targets.insert(0, pa.timestamp("ns", tz="UTC"))
    for target in targets:
        try:
            parsed = pc.cast(trimmed, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        values = parsed.combine_chunks().to_numpy(zero_copy_only=False)
        index = pd.DatetimeIndex(values.astype("datetime64[ns]"))
        return index.tz_localize("UTC") if target.tz else index
    strings = _strings(text)
    try:
        # A column of numbers is read as numbers by pandas (validation takes them as epochs).
        return pd.to_numeric(strings)
    except (ValueError, TypeError):
        return strings


def _strings(text: pa.ChunkedArray) -> npt.NDArray[np.object_]:
    """Text as the pandas reader gives it: an empty field is missing (NaN)."""
    out = np.asarray(text.to_pylist(), dtype=object)
    out[out == ""] = np.nan
    return out


def _text_of(table: pa.Table) -> TextOf:
    def text_of(name: str, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.object_]:
        return np.asarray(table[name].take(pa.array(rows)).to_pylist(), dtype=object)

    return text_of
