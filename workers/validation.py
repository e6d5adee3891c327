"""Mapping columns of OHLCV files and validating their rows, vectorized over whole chunks."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
import pandas as pd

from core import metrics
from core.bar import BAR_FIELDS, BarField
from core.calendars import normalize_calendar
from core.tickers import ticker_problem


#: Accepted column names (compared case-insensitively, after trimming), in order of preference.
def aliases(fields: tuple[BarField, ...] = BAR_FIELDS) -> dict[str, tuple[str, ...]]:
    """Accepted source names per field: the time, each bar value column, then symbol info."""
    return {
        "time": ("time", "timestamp", "datetime", "date", "ts", "t"),
        **{f.name: (f.name, *f.aliases) for f in fields},
        "ticker": ("ticker", "symbol"),
        "name": ("name",),
        "exchange": ("exchange",),
        "currency": ("currency",),
        "asset_class": ("asset_class", "assetclass", "asset class"),
        "calendar": ("calendar",),
    }


def clean_columns(fields: tuple[BarField, ...] = BAR_FIELDS) -> tuple[str, ...]:
    """Columns of a validated chunk."""
    return ("ticker", "ts", *(f.name for f in fields))


ALIASES = aliases()
#: The bar's value columns, each checked on its own by its core.bar rule.
VALUES = tuple(f.name for f in BAR_FIELDS)
REQUIRED = ("time", *VALUES)
PRICES = tuple(f.name for f in BAR_FIELDS if f.rule == "positive")
CLEAN_COLUMNS = clean_columns()
_SYMBOL_INFO = ("ticker", "name", "exchange", "currency", "asset_class", "calendar")
_OFFSET_SUFFIX = r"\d:\d\d(?::\d\d(?:\.\d+)?)?\s*(?:[zZ]|[+-]\d\d(?::?\d\d)?)$"


class NotOhlcvError(ValueError):
    """The input is not an OHLCV table at all (nothing of it is written)."""


@dataclass(frozen=True)
class ColumnMap:
    """Which source column holds each field: `time`, `values` (one per bar value column,
    keyed by its name) and the optional symbol info (None: absent)."""

    time: str
    values: dict[str, str]
    ticker: str | None = None
    name: str | None = None
    exchange: str | None = None
    currency: str | None = None
    asset_class: str | None = None
    calendar: str | None = None  # exchange calendar code (core.calendars)

    def source(self, field: str) -> str | None:
        """The source column of a field of ALIASES."""
        if field in self.values:
            return self.values[field]
        return getattr(self, field)

    def source_columns(self) -> list[str]:
        """The source columns to read, in a fixed order."""
        fields = (*REQUIRED, *_SYMBOL_INFO)
        return [c for c in (self.source(f) for f in fields) if c is not None]


@dataclass
class ValidatedChunk:
    """The good rows (CLEAN_COLUMNS plus optional symbol info) and the rejected ones."""

    bars: pd.DataFrame
    rejected: pd.DataFrame  # line, reason, then the raw values of the mapped columns


def map_columns(names: Sequence[object], *, ticker_given: bool = False) -> ColumnMap:
    """Map source column names to fields; NotOhlcvError naming what is missing."""
    by_key: dict[str, str] = {}
    for name in names:
        by_key.setdefault(str(name).strip().lower(), str(name))
    found: dict[str, str | None] = {}
    for field, aliases in ALIASES.items():
        found[field] = next((by_key[a] for a in aliases if a in by_key), None)
    missing = [f for f in REQUIRED if found[f] is None]
    if not ticker_given and found["ticker"] is None:
        missing.append("ticker (or give one)")
    if missing:
        shown = ", ".join(str(n) for n in list(names)[:12]) or "none"
        raise NotOhlcvError(
            f"not an OHLCV table: no column for {', '.join(missing)} (columns found: {shown})"
        )
    return ColumnMap(
        found["time"],  # type: ignore[arg-type]
        {f: found[f] for f in VALUES},  # type: ignore[misc]
        **{f: found[f] for f in _SYMBOL_INFO},
    )


def _calendar_ok(code: str) -> bool:
    if not code:
        return True  # none given: the symbol keeps (or derives) its calendar
    try:
        normalize_calendar(code)
    except ValueError:
        return False
    return True


def check_timezone(tz: str) -> str:
    """The time zone name, or ValueError if it is unknown."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}") from None
    return tz


def validate_chunk(
    raw: pd.DataFrame,
    columns: ColumnMap,
    lines: npt.NDArray[np.int64],
    *,
    tz: str = "UTC",
    ticker: str | None = None,
    text: Callable[[str, npt.NDArray[np.intp]], npt.NDArray[np.object_]] | None = None,
) -> ValidatedChunk:
    """Parse and check every row of `raw` at once; `lines` are their line numbers for reports.

    `text`, when the reader kept the file's text (workers.arrow_csv), gives a source
    column's text at some rows: the rejects then show the values as written. A reader may
    hand over a column already parsed (floats, times, a categorical ticker) or as text;
    both give the same rows, reasons and values.

    A naive time is local to `tz`; a time with an offset (or a tz-aware column) is converted.
    `ticker`, when given, applies to every row (a ticker column is then ignored). Of rows that
    repeat a (ticker, time) the first good one is kept and the later ones are rejected.
    """
    n = len(raw)
    reasons = _Reasons(n)
    codes, tickers = _tickers(raw, columns, ticker)
    problems = np.array([ticker_problem(t) or "" for t in tickers], dtype=object)  # per distinct
    for problem in ("missing ticker", "ticker too long", "ticker has unprintable characters"):
        reasons.add((problems == problem)[codes], problem)

    if columns.calendar is not None:
        # Checked per distinct value: a row naming an unknown calendar is refused alone.
        cal = raw[columns.calendar].astype("string").fillna("").str.strip()
        known = {c: _calendar_ok(c) for c in cal.unique()}
        reasons.add(~cal.map(known).to_numpy(dtype=bool), "unknown calendar")

    ts, unparseable, nonexistent = parse_times(raw[columns.time], tz)
    reasons.add(unparseable, "unparseable time")
    reasons.add(nonexistent, f"ambiguous or nonexistent local time in {tz}")

    values = {}
    for bar_field in BAR_FIELDS:
        name = bar_field.name
        col = pd.to_numeric(raw[columns.values[name]], errors="coerce")
        arr = np.asarray(col, dtype=np.float64)
        values[name] = arr
        finite = np.isfinite(arr)
        reasons.add(~finite, f"{name} is not a number")
        if bar_field.rule == "positive":
            reasons.add(finite & (arr <= 0), f"{name} is not positive")
    # Rules across the price columns, then the non-negative ones: the order reasons are
    # reported in, which rejected-row reports and tests compare.
    o, h, lo, c = (values[f] for f in ("open", "high", "low", "close"))
    with np.errstate(invalid="ignore"):
        # Consistency only among valid prices: one bad price is reported once, not thrice.
        prices_ok = np.logical_and.reduce([values[f] > 0 for f in PRICES])
        reasons.add(prices_ok & (h < np.maximum(o, c)), "high below max(open, close)")
        reasons.add(prices_ok & (lo > np.minimum(o, c)), "low above min(open, close)")
        for bar_field in BAR_FIELDS:
            if bar_field.rule == "non_negative":
                reasons.add(values[bar_field.name] < 0, f"{bar_field.name} is negative")

    good = ~reasons.any
    repeated, first_lines = _repeats(codes, ts, lines, good)
    if repeated.any():
        reasons.add_each(repeated, [f"duplicate time (first on line {f})" for f in first_lines])
        good &= ~repeated

    bars = pd.DataFrame(
        {
            # Categorical: one string per distinct ticker, not one per row.
            "ticker": pd.Categorical.from_codes(codes[good], categories=pd.Index(tickers)),
            "ts": ts[good],
            **{f: values[f][good] for f in VALUES},
        }
    )
    for extra in ("name", "exchange", "currency", "asset_class", "calendar"):
        col = getattr(columns, extra)
        if col is not None:
            bars[extra] = raw[col].astype("string").fillna("").str.strip().to_numpy()[good]
    bad = ~good
    rejected = pd.DataFrame({"line": lines[bad], "reason": reasons.text[bad]})
    bad_rows = np.flatnonzero(bad)
    for field in (*REQUIRED, "ticker"):
        source = columns.source(field)
        if source is not None:
            rejected[field] = (
                text(source, bad_rows) if text is not None else raw[source].to_numpy()[bad]
            )
    metrics.ingest_rejected(len(rejected))
    return ValidatedChunk(bars=bars, rejected=rejected)


def _tickers(
    raw: pd.DataFrame, columns: ColumnMap, ticker: str | None
) -> tuple[npt.NDArray[np.intp], list[str]]:
    """Per row the index of its ticker, and the distinct tickers (upper case, trimmed)."""
    if ticker is not None:
        return np.zeros(len(raw), dtype=np.intp), [ticker.strip().upper()]
    assert columns.ticker is not None
    column = raw[columns.ticker]
    if isinstance(column.dtype, pd.CategoricalDtype):
        # Each distinct value normalised once, then spread by the codes (-1, missing: "").
        categories = pd.Series(column.cat.categories, dtype="string")
        normal = pd.concat([categories, pd.Series([""], dtype="string")], ignore_index=True)
        per_category, uniques = pd.factorize(normal.fillna("").str.strip().str.upper())
        per_row = np.asarray(per_category, dtype=np.intp)[column.cat.codes.to_numpy()]
        # Renumbered in order of first appearance, as factorizing the rows would.
        first_seen = np.asarray(pd.unique(per_row), dtype=np.intp)
        renumber = np.empty(len(uniques), dtype=np.intp)
        renumber[first_seen] = np.arange(len(first_seen))
        names = [str(u) for u in uniques]
        return renumber[per_row], [names[i] for i in first_seen]
    text = column.astype("string").fillna("").str.strip().str.upper()
    codes, uniques = pd.factorize(text)
    return np.asarray(codes, dtype=np.intp), [str(u) for u in uniques]


def _repeats(
    codes: npt.NDArray[np.intp],
    ts: pd.DatetimeIndex,
    lines: npt.NDArray[np.int64],
    good: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Good rows repeating an earlier good row's (ticker, time), and that earlier row's line.

    Among good rows only, so a bad row does not shadow a later good one.
    """
    rows = np.flatnonzero(good)
    order = np.lexsort((ts.asi8[rows], codes[rows]))  # stable: earlier rows first among equals
    c, t = codes[rows][order], ts.asi8[rows][order]
    repeat = np.zeros(len(rows), dtype=bool)
    repeat[1:] = (c[1:] == c[:-1]) & (t[1:] == t[:-1])
    mask = np.zeros(len(codes), dtype=bool)
    if not repeat.any():
        return mask, np.zeros(0, dtype=np.int64)
    group_start = np.maximum.accumulate(np.where(repeat, 0, np.arange(len(rows))))
    later = rows[order[repeat]]
    first = lines[rows[order[group_start[repeat]]]]
    by_row = np.argsort(later)
    mask[later] = True
    return mask, first[by_row]


def parse_times(
    col: pd.Series, tz: str
) -> tuple[pd.DatetimeIndex, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """UTC times of a column, with masks of unparseable and of ambiguous/nonexistent ones.

    Numbers are Unix epochs, their unit guessed from the magnitude (s, ms, µs or ns).
    """
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        out = pd.DatetimeIndex(col).tz_convert("UTC")
        bad = np.asarray(out.isna())
        return out, bad, np.zeros(len(col), dtype=bool)
    if pd.api.types.is_datetime64_dtype(col.dtype):
        return _localize(pd.DatetimeIndex(col), tz)
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        return _from_epoch(col)
    text = col.astype("string").str.strip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Naive strings come out as UTC wall time here and are re-read in `tz` below.
        parsed = pd.DatetimeIndex(pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601"))
        failed = np.asarray(parsed.isna()) & np.asarray((text.fillna("") != "").to_numpy(bool))
        if failed.any():
            # Not ISO 8601: let pandas infer one format (e.g. 03/04/2024 09:30) for the rest.
            retry = pd.to_datetime(text[failed], errors="coerce")
            if isinstance(retry.dtype, pd.DatetimeTZDtype | np.dtype) and retry.dtype.kind == "M":
                retry_idx = pd.DatetimeIndex(retry)
                retry_idx = (
                    retry_idx.tz_localize("UTC")
                    if retry_idx.tz is None
                    else retry_idx.tz_convert("UTC")
                )
                values = parsed.tz_localize(None).to_numpy(copy=True)
                values[failed] = retry_idx.tz_localize(None).to_numpy()
                parsed = pd.DatetimeIndex(values).tz_localize("UTC")
    nonexistent = np.zeros(len(col), dtype=bool)
    if tz.upper() not in ("UTC", "ETC/UTC", "Z"):
        has_offset = text.str.contains(_OFFSET_SUFFIX, regex=True).fillna(False)
        naive = ~np.asarray(has_offset.to_numpy(bool)) & np.asarray(parsed.notna())
        if naive.any():
            local, _, bad_local = _localize(parsed[naive].tz_localize(None), tz)
            values = parsed.tz_localize(None).to_numpy(copy=True)
            values[naive] = local.tz_localize(None).to_numpy()
            parsed = pd.DatetimeIndex(values).tz_localize("UTC")
            nonexistent[np.flatnonzero(naive)[bad_local]] = True
    unparseable = np.asarray(parsed.isna()) & ~nonexistent
    return parsed, unparseable, nonexistent


def _localize(
    wall: pd.DatetimeIndex, tz: str
) -> tuple[pd.DatetimeIndex, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    was_nat = np.asarray(wall.isna())
    local = wall.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").tz_convert("UTC")
    lost = np.asarray(local.isna()) & ~was_nat
    return local, was_nat, lost


def _from_epoch(
    col: pd.Series,
) -> tuple[pd.DatetimeIndex, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    numbers = pd.to_numeric(col, errors="coerce").astype(np.float64)
    finite = numbers[np.isfinite(numbers)]
    scale = float(np.median(np.abs(finite))) if len(finite) else 0.0
    unit: Literal["s", "ms", "us", "ns"] = (
        "s" if scale < 1e11 else "ms" if scale < 1e14 else "us" if scale < 1e17 else "ns"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = pd.DatetimeIndex(pd.to_datetime(numbers, unit=unit, errors="coerce", utc=True))
    return out, np.asarray(out.isna()), np.zeros(len(col), dtype=bool)


class _Reasons:
    """Rejection reasons per row, built rule by rule (never row by row)."""

    def __init__(self, n: int) -> None:
        self.text: npt.NDArray[np.object_] = np.full(n, "", dtype=object)
        self.any: npt.NDArray[np.bool_] = np.zeros(n, dtype=bool)

    def add(self, mask: npt.ArrayLike, reason: str) -> None:
        m = np.asarray(mask, dtype=bool)
        if m.any():
            self.add_each(m, [reason] * int(m.sum()))

    def add_each(self, mask: npt.NDArray[np.bool_], reasons: Sequence[str]) -> None:
        idx = np.flatnonzero(mask)
        old = self.text[idx]
        new = np.asarray(reasons, dtype=object)
        self.text[idx] = np.where(old == "", new, old + "; " + new)
        self.any[idx] = True
