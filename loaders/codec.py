"""Compact byte encodings of loader results for the field cache (orjson, never pickle)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from core.bar import BAR_FIELDS
from core.intervals import Interval
from loaders.columns import Column
from loaders.rows import BarPage, BarRow, SeriesColumns

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(ts: datetime) -> int:
    return (ts - _EPOCH) // timedelta(microseconds=1)


def _ts(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def encode_page(page: BarPage) -> bytes:
    """A bars page as bytes."""
    return orjson.dumps(
        [
            page.has_more,
            [[_us(r[0]), *r[1:]] for r in page.rows],
        ]
    )


def decode_page(data: bytes) -> BarPage:
    """The page `encode_page` encoded."""
    has_more, rows = orjson.loads(data)
    return BarPage([BarRow(_ts(r[0]), *r[1:]) for r in rows], has_more)


def encode_series(cols: SeriesColumns) -> bytes:
    """A columnar series as bytes (times as Unix microseconds)."""
    return orjson.dumps(
        [
            cols.interval.value,
            _column(Column.of(cols.ts, "M")).view(np.int64),
            *(_column(getattr(cols, f.name)) for f in BAR_FIELDS),
            _column(cols.closed),
        ],
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def _column(values: Any) -> Any:
    return values.array if isinstance(values, Column) else values


def decode_series(data: bytes) -> SeriesColumns:
    """The series `encode_series` encoded, as numpy columns (loaders.columns)."""
    interval, ts, *values, closed = orjson.loads(data)
    times = Column(np.array(ts, dtype=np.int64).view("datetime64[us]"))
    # SeriesColumns' value fields follow core.bar's order (tests/foundation/test_bar.py checks).
    return SeriesColumns(  # type: ignore[call-arg]
        Interval(interval),
        times,
        *(Column(np.array(v, dtype=np.float64)) for v in values),
        Column(np.array(closed, dtype=np.bool_)),
    )
