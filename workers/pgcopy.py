"""Bars as series of numpy columns, and PostgreSQL binary COPY of them (no Python tuples)."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import numpy.typing as npt
import pandas as pd

from core.bar import BAR_FIELDS, KEY_COLUMNS, BarField, value_columns
from core.intervals import Interval

#: The value columns, in storage order (all of them carried as float64 in `Series.values`).
PRICE_COLUMNS = value_columns()
BAR_COLUMNS = (*KEY_COLUMNS, *PRICE_COLUMNS)
TIMEFRAMES = tuple(i.value for i in Interval)

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # where PostgreSQL's binary timestamps start
_PG_EPOCH_US = int(_PG_EPOCH.timestamp()) * 1_000_000
_ONE_US = timedelta(microseconds=1)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_PIECE_ROWS = 16_384  # ~1 MB of COPY data


@dataclass
class Series:
    """Bars of one symbol and timeframe: times (µs since 2000, sorted, unique) and values."""

    symbol_id: int
    timeframe: str
    ts_us: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]  # shape (len(PRICE_COLUMNS), n), in that order

    def take(self, mask: npt.NDArray[np.bool_]) -> Series:
        """The rows where `mask` holds."""
        return Series(self.symbol_id, self.timeframe, self.ts_us[mask], self.values[:, mask])

    @property
    def first(self) -> datetime:
        """Time of the first bar."""
        return from_pg_us(self.ts_us[0])

    @property
    def last(self) -> datetime:
        """Time of the last bar."""
        return from_pg_us(self.ts_us[-1])


def from_pg_us(us: int | np.int64) -> datetime:
    """An aware datetime from microseconds since 2000-01-01 UTC."""
    return datetime.fromtimestamp((int(us) + _PG_EPOCH_US) / 1_000_000, tz=UTC)


def to_pg_us(ts: datetime) -> int:
    """Microseconds since 2000-01-01 UTC of an aware datetime."""
    return (ts - _PG_EPOCH) // _ONE_US


def split_series(
    symbol_ids: npt.ArrayLike,
    timeframe: str,
    ts: pd.DatetimeIndex,
    values: Sequence[npt.ArrayLike],
) -> list[Series]:
    """Rows cut into series, each sorted by time with repeated times removed (the last wins).

    `values` are the PRICE_COLUMNS, in that order; naive times are UTC.
    """
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe {timeframe!r}")
    ids = np.asarray(symbol_ids, dtype=np.int64)
    if len(ids) == 0:
        return []
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    ts_us = ts.as_unit("us").asi8 - _PG_EPOCH_US
    matrix = np.vstack([np.asarray(v, dtype=np.float64) for v in values])
    if not np.isfinite(matrix).all():
        # NaN passes the table's checks (NaN > 0 is true in PostgreSQL), so stop it here.
        raise ValueError("bar values must be finite numbers")
    if ids.min() == ids.max():
        groups = [np.arange(len(ids))]
    else:
        order = np.argsort(ids, kind="stable")
        groups = np.split(order, np.flatnonzero(np.diff(ids[order])) + 1)
    out = []
    for idx in groups:
        t, v = ts_us[idx], matrix[:, idx]
        if len(t) > 1 and not bool(np.all(t[1:] > t[:-1])):
            # Stable sort, then keep the last of equal times: a later row is the newer revision.
            order = np.argsort(t, kind="stable")
            t, v = t[order], v[:, order]
            keep = np.append(t[1:] != t[:-1], True)
            t, v = t[keep], v[:, keep]
        out.append(Series(int(ids[idx[0]]), timeframe, t, v))
    return out


async def copy_series(conn: asyncpg.Connection, table: str, series: Sequence[Series]) -> None:
    """COPY the series into `table` (which has the BAR_COLUMNS) in binary format."""

    async def payload() -> AsyncIterator[bytes]:
        # Bytes alone would be taken for a file path; an async iterable streams them as they are.
        yield _COPY_HEADER
        for s in series:
            # In pieces, so that the server stores one while the next is encoded.
            for start in range(0, len(s.ts_us), _PIECE_ROWS):
                yield _binary_tuples(s, slice(start, start + _PIECE_ROWS))
        yield _COPY_TRAILER

    await conn.copy_to_table(table, source=payload(), columns=BAR_COLUMNS, format="binary")


#: Binary COPY field of each value column's SQL type (big-endian, as the wire format has it).
_BINARY_TYPES = {"double precision": ">f8"}


def value_fields(fields: tuple[BarField, ...] = BAR_FIELDS) -> list[tuple[str, str]]:
    """The value columns of a binary COPY tuple: a length word, then the value, per column."""
    return [
        (f, t)
        for field in fields
        for f, t in ((f"{field.name}_len", ">i4"), (field.name, _BINARY_TYPES[field.sql_type]))
    ]


def insert_row_dtype(timeframe_len: int, fields: tuple[BarField, ...] = BAR_FIELDS) -> np.dtype:
    """A BAR_COLUMNS row in binary COPY input, for a timeframe code of `timeframe_len` bytes."""
    return np.dtype(
        [
            ("count", ">i2"),
            ("symbol_id_len", ">i4"),
            ("symbol_id", ">i4"),
            ("timeframe_len", ">i4"),
            ("timeframe", f"S{timeframe_len}"),
            ("ts_len", ">i4"),
            ("ts", ">i8"),
            *value_fields(fields),
        ]
    )


def _binary_tuples(s: Series, cut: slice = slice(None)) -> bytes:
    """The series' rows (those in `cut`) in PostgreSQL's binary COPY tuple format, built
    column-wise."""
    tf = s.timeframe.encode()
    ts_us = s.ts_us[cut]
    rows = np.empty(len(ts_us), dtype=insert_row_dtype(len(tf)))
    rows["count"] = len(BAR_COLUMNS)
    rows["symbol_id_len"] = 4
    rows["symbol_id"] = s.symbol_id
    rows["timeframe_len"] = len(tf)
    rows["timeframe"] = tf
    rows["ts_len"] = 8
    rows["ts"] = ts_us
    for i, name in enumerate(PRICE_COLUMNS):
        rows[f"{name}_len"] = 8
        rows[name] = s.values[i, cut]
    return rows.tobytes()


def keyed_row_dtype(fields: tuple[BarField, ...] = BAR_FIELDS) -> np.dtype:
    """A row of `SELECT <int4>, <timestamptz>, <value columns>` in binary COPY output."""
    return np.dtype(
        [
            ("count", ">i2"),
            ("key_len", ">i4"),
            ("key", ">i4"),
            ("ts_len", ">i4"),
            ("ts", ">i8"),
            *value_fields(fields),
        ]
    )


_STORED_ROW = keyed_row_dtype()
_HEADER_LEN = len(_COPY_HEADER)


async def copy_out_keyed_bars(
    conn: asyncpg.Connection, query: str, *args: object
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Run a `SELECT key int4, ts, <PRICE_COLUMNS>` (no NULLs) by binary COPY.

    Returns keys, times (µs since 2000) and values (one row per column), in the order received.
    """
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    await conn.copy_from_query(query, *args, output=sink, format="binary")
    buf = b"".join(chunks)
    if not buf.startswith(_COPY_HEADER) or not buf.endswith(_COPY_TRAILER):
        raise RuntimeError("unexpected binary COPY framing from the server")
    body = len(buf) - _HEADER_LEN - len(_COPY_TRAILER)
    if body % _STORED_ROW.itemsize:
        raise RuntimeError("binary COPY rows are not of the expected layout")
    rows = np.frombuffer(
        buf, dtype=_STORED_ROW, offset=_HEADER_LEN, count=body // _STORED_ROW.itemsize
    )
    if len(rows) and not (rows["count"] == 2 + len(PRICE_COLUMNS)).all():
        raise RuntimeError("binary COPY rows are not of the expected layout")
    values = np.vstack([rows[name].astype(np.float64) for name in PRICE_COLUMNS])
    return rows["key"].astype(np.int64), rows["ts"].astype(np.int64), values
