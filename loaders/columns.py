"""Columns of values held the way a response carries them: no Python object per value.

`Column`: a column of a series held as one numpy array. A 100,000-point series as Python
lists cost ~60-100 ms of driver decoding and ~25 ms of encoding (docs/performance.md, case
(f)); as arrays it is read by binary COPY (`loaders.sql.fetch_columns`), encoded to JSON by
orjson in C (`Column.json`, used by `graphql_api/fastpath.py`) and handed to Arrow without a
copy (`graphql_api/download.py`). Everything else reads a `Column` as the sequence of Python
values it stands for (floats, aware UTC datetimes, bools), so code written for lists (gap
fill, the reference execution path, the field cache) keeps working; it pays for the
conversion only when it runs.

`FloatColumn`, `TimeColumn`: indicator columns. A loader that builds a long column from
numpy knows, from one vectorised check, that every element is a finite float or None (or an
aware datetime); graphql_api/fastpath.py then passes such a column to the encoder as it is
instead of checking its elements one by one again in Python (80,000 values took ~6 ms there
when a column held nulls). They are plain lists to everything else (orjson encodes list
subclasses as lists).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, overload

import numpy as np
import orjson

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
#: datetime64 values are UTC instants: written with "+00:00", as `datetime.isoformat` writes
#: an aware UTC datetime (what Strawberry's DateTime serializer returns).
_NUMPY_UTC = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC


class Column(Sequence[Any]):
    """Values of one column: float64, datetime64[us] (UTC instants) or bool."""

    __slots__ = ("_values", "array")

    def __init__(self, array: np.ndarray) -> None:
        if array.dtype.kind == "M":
            array = array.astype("datetime64[us]", copy=False)
        # orjson serializes only C-contiguous native arrays.
        self.array = np.ascontiguousarray(array)
        self._values: list[Any] | None = None

    @classmethod
    def of(cls, values: Sequence[Any], kind: str) -> Column:
        """A column of Python values: "f" floats, "M" aware datetimes, "b" bools."""
        if isinstance(values, Column):
            return values
        if kind == "M":
            micros = [_micros(v) for v in values]
            return cls(np.array(micros, dtype=np.int64).view("datetime64[us]"))
        return cls(np.array(values, dtype=np.float64 if kind == "f" else np.bool_))

    @property
    def kind(self) -> str:
        """numpy's kind of the values: "f", "M" or "b"."""
        return str(self.array.dtype.kind)

    def values(self) -> list[Any]:
        """The values as Python objects (built once, on first use)."""
        if self._values is None:
            if self.kind == "M":
                naive = self.array.astype(object)
                self._values = [d.replace(tzinfo=UTC) for d in naive]
            else:
                self._values = self.array.tolist()
        return self._values

    def at(self, index: int) -> Any:
        """One value as a Python object, without converting the rest."""
        if self._values is not None:
            return self._values[index]
        value = self.array[index : index + 1]
        if self.kind == "M":
            return value.astype(object)[0].replace(tzinfo=UTC)
        return value.tolist()[0]

    def json(self) -> bytes | None:
        """The JSON array GraphQL would write for these values, or None where it would not
        write one (a NaN or an infinity is a field error in a `Float`)."""
        kind = self.kind
        if kind == "f":
            if not bool(np.isfinite(self.array).all()):
                return None
            return orjson.dumps(self.array, option=_NUMPY)
        if kind == "M":
            return orjson.dumps(self.array, option=_NUMPY_UTC)
        return orjson.dumps(self.array, option=_NUMPY)

    def __len__(self) -> int:
        return len(self.array)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        return self.values()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Column):
            return bool(np.array_equal(self.array, other.array))
        if isinstance(other, list | tuple):
            return self.values() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Column({self.array!r})"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(ts: datetime) -> int:
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class FloatColumn(list[float | None]):
    """Finite floats and None only (None where the source held NaN)."""

    __slots__ = ("has_null",)

    def __init__(self, values: list[float | None], has_null: bool) -> None:
        super().__init__(values)
        self.has_null = has_null


class TimeColumn(list[datetime]):
    """Aware datetimes only (no None)."""

    __slots__ = ()


def float_column(values: np.ndarray) -> list[float | None]:
    """`values` as a list with None for NaN: a FloatColumn, or a plain list when an infinity
    is present (the GraphQL layer then checks every element and reports the error)."""
    nan = np.isnan(values)
    if np.isinf(values).any():
        out: list[float | None] = values.tolist()
        for i in np.flatnonzero(nan).tolist():
            out[i] = None
        return out
    column = FloatColumn(values.tolist(), bool(nan.any()))
    # Patched in place by index: most values are numbers.
    for i in np.flatnonzero(nan).tolist():
        column[i] = None
    return column
