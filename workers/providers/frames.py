"""Turning provider bar rows into the canonical page frame, validating as it goes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from workers.providers.base import BAR_COLUMNS
from workers.providers.transport import JsonReply

TimeFormat = Literal["epoch_ms", "iso8601"]
_PRICE_COLUMNS = BAR_COLUMNS[1:]  # everything after `time`


def empty_bars() -> pd.DataFrame:
    """A page with no bars but the canonical columns and dtypes."""
    return pd.DataFrame(
        {
            "time": pd.Series([], dtype="datetime64[ns, UTC]"),
            **{c: pd.Series([], dtype=np.float64) for c in _PRICE_COLUMNS},
        }
    )


def _number(value: object) -> float:
    """A JSON number, or a decimal string (Binance sends prices as strings)."""
    # bool is an int subclass; a true/false price is a broken body, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"expected a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def rows_to_bars(
    reply: JsonReply,
    rows: object,
    fields: Mapping[str, str | int],
    time_format: TimeFormat,
) -> pd.DataFrame:
    """Validate bar rows (objects, or arrays indexed by position) into a canonical frame.

    `fields` maps each canonical column to the row's key or index. Anything off the
    documented shape is a ProviderError naming the provider, the bar and the field.
    """
    if not isinstance(rows, list):
        raise reply.malformed(f"expected a list of bars, got {type(rows).__name__}")
    if not rows:
        return empty_bars()
    times: list[object] = []
    values: dict[str, list[float]] = {c: [] for c in _PRICE_COLUMNS}
    for i, row in enumerate(rows):
        if not isinstance(row, dict | list):
            raise reply.malformed(f"bar {i} is a {type(row).__name__}, not an object or array")
        # Any: a str key on an array (or int on an object) fails below as a missing field.
        container: Any = row
        for column in BAR_COLUMNS:
            key = fields[column]
            try:
                raw = container[key]
            except (KeyError, IndexError, TypeError):
                raise reply.malformed(f"bar {i} has no field {key!r}") from None
            if column == "time":
                times.append(raw)
                continue
            try:
                values[column].append(_number(raw))
            except (TypeError, ValueError) as exc:
                raise reply.malformed(f"bar {i} field {key!r}: {exc}") from None
    index = _parse_times(reply, times, time_format)
    columns = {c: np.asarray(v, dtype=np.float64) for c, v in values.items()}
    return pd.DataFrame({"time": index, **columns})


def _parse_times(reply: JsonReply, raw: Sequence[object], time_format: TimeFormat) -> pd.Index:
    """Bar start times as a datetime64[ns, UTC] index."""
    if time_format == "epoch_ms":
        for i, value in enumerate(raw):
            if isinstance(value, bool) or not isinstance(value, int):
                raise reply.malformed(f"bar {i} time {value!r} is not integer epoch milliseconds")
        index = pd.to_datetime(np.asarray(raw, dtype=np.int64), unit="ms", utc=True)
    else:
        texts: list[str] = []
        for i, value in enumerate(raw):
            if not isinstance(value, str):
                raise reply.malformed(f"bar {i} time {value!r} is not an RFC 3339 string")
            texts.append(value)
        try:
            index = pd.to_datetime(texts, utc=True, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise reply.malformed(f"unparseable bar time: {exc}") from None
    # pandas 3 infers microsecond resolution; the contract is nanoseconds.
    return pd.DatetimeIndex(index).as_unit("ns")


def clip_bars(
    frame: pd.DataFrame, start: datetime, end: datetime, after: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Sorted, one bar per time (the last one sent wins), inside [start, end] and after `after`.

    `after` is the last time already yielded: pages arrive in ascending order, so a bar at
    or before it is a repeat across a page boundary.
    """
    if frame.empty:
        return frame
    frame = frame.sort_values("time", kind="stable")
    frame = frame.drop_duplicates(subset="time", keep="last")
    times = frame["time"]
    mask = (times >= pd.Timestamp(start)) & (times <= pd.Timestamp(end))
    if after is not None:
        mask &= times > after
    return frame.loc[mask].reset_index(drop=True)
