"""Volume indicators: On-Balance Volume, Chaikin's A/D line and oscillator (as TA-Lib), and
VWAP (not in TA-Lib).

VWAP is the volume-weighted mean of the typical price (high + low + close) / 3, either over the
whole input ("cumulative") or restarting at 00:00 UTC of every day ("session"). It is NaN while
the volume summed so far is 0. In session mode a NaN bar makes the rest of its own day NaN and
the next day starts clean, since a session's value depends on nothing before it; in cumulative
mode the package-wide policy applies (leading NaN skipped, NaN from the first later NaN on).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from indicators._common import FloatArray, apply, as_series, check_float, check_int, nans
from indicators._kernels import cumsum_blocked, segmented_cumsum
from indicators._loops import chaikin

TimeUnit = Literal["s", "ms", "us", "ns"]

ANCHORS = ("session", "cumulative")
_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def _obv_core(close: FloatArray, volume: FloatArray) -> tuple[FloatArray]:
    m = len(close)
    out = np.empty(m)
    if m == 0:
        return (out,)
    out[0] = volume[0]  # TA-Lib: the first value is that bar's volume
    signed = out[1:]
    np.subtract(close[1:], close[:-1], out=signed)
    np.sign(signed, out=signed)
    signed *= volume[1:]
    return (cumsum_blocked(out, out=out),)


def _vwap_cumulative_core(
    high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray
) -> tuple[FloatArray]:
    out = high + low
    out += close
    out /= 3.0
    out *= volume
    cumsum_blocked(out, out=out)
    den = cumsum_blocked(volume)
    with np.errstate(divide="ignore", invalid="ignore"):
        out /= den
    out[den == 0.0] = np.nan
    return (out,)


def utc_days(times: ArrayLike, time_unit: TimeUnit = "ms") -> NDArray[np.int64]:
    """Days since 1970-01-01 UTC of each time: datetime64, or integer epoch in `time_unit`."""
    t = np.asarray(times)
    if np.issubdtype(t.dtype, np.datetime64):
        if np.isnat(t).any():
            raise ValueError("times must not contain NaT")
        days: NDArray[np.int64] = t.astype("datetime64[D]").astype(np.int64)
        return days
    if not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"times must be datetime64 or integer epoch values, got dtype {t.dtype}")
    if time_unit not in _PER_DAY:
        raise ValueError(f"time_unit must be one of {sorted(_PER_DAY)}, got {time_unit!r}")
    result: NDArray[np.int64] = np.floor_divide(t.astype(np.int64), _PER_DAY[time_unit])
    return result


def _vwap_session(
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    volume: FloatArray,
    days: NDArray[np.int64],
) -> FloatArray:
    n = len(close)
    if len(days) != n:
        raise ValueError(f"times must have the same length as the prices, got {len(days)} and {n}")
    if n == 0:
        return nans(0)
    if np.any(days[1:] < days[:-1]):
        raise ValueError("times must be in ascending order")
    starts = np.concatenate(([0], np.flatnonzero(np.diff(days) != 0) + 1)).astype(np.intp)
    sums = np.empty((2, n))
    np.multiply((high + low + close) / 3.0, volume, out=sums[0])
    sums[1] = volume
    bad = ~np.isfinite(sums).all(axis=0)  # an infinity is a missing value too
    if bad.any():
        sums[:, bad] = 0.0
    num, den = segmented_cumsum(sums, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = num / den
    out[den == 0.0] = np.nan
    if bad.any():
        seg = np.zeros(n, dtype=np.intp)
        seg[starts[1:]] = 1
        np.cumsum(seg, out=seg)
        last_bad = np.maximum.accumulate(np.where(bad, seg, -1))
        out[last_bad == seg] = np.nan
    return out


def obv(close: ArrayLike, volume: ArrayLike) -> FloatArray:
    """On-balance volume: running sum of volume signed by the close's direction (TA-Lib OBV)."""
    series = as_series(close, volume, names=("close", "volume"))
    # Not `propagates`: an infinite close changes only the sign of two steps, so the last
    # output stays finite and would hide it.
    return apply(_obv_core, series)[0]


def vwap(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    volume: ArrayLike,
    times: ArrayLike | None = None,
    anchor: str = "session",
    time_unit: TimeUnit = "ms",
) -> FloatArray:
    """Volume-weighted typical price reset at each UTC day (needs `times`), or cumulative."""
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be one of {', '.join(ANCHORS)}, got {anchor!r}")
    series = as_series(high, low, close, volume, names=("high", "low", "close", "volume"))
    if anchor == "cumulative":
        return apply(_vwap_cumulative_core, series, propagates=True)[0]
    if times is None:
        raise ValueError("times is required when anchor is 'session'")
    high_, low_, close_, volume_ = series
    return _vwap_session(high_, low_, close_, volume_, utc_days(times, time_unit))


def ad_core(
    high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray
) -> tuple[FloatArray]:
    out = np.empty(len(close))
    chaikin(high, low, close, volume, 2, 2, False, out)
    return (out,)


def adosc_core(
    high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray, fast: int, slow: int
) -> tuple[FloatArray]:
    # TA-Lib seeds both EMAs with the first A/D value, not with an average.
    out = np.empty(len(close))
    chaikin(high, low, close, volume, fast, slow, True, out)
    return (out,)


_HLCV = ("high", "low", "close", "volume")


def ad(high: ArrayLike, low: ArrayLike, close: ArrayLike, volume: ArrayLike) -> FloatArray:
    """Chaikin accumulation/distribution line over the whole input (TA-Lib AD)."""
    series = as_series(high, low, close, volume, names=_HLCV)
    return apply(ad_core, series)[0]


def adosc(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    volume: ArrayLike,
    fastperiod: int = 3,
    slowperiod: int = 10,
) -> FloatArray:
    """Chaikin A/D oscillator, fast EMA - slow EMA of the A/D line (TA-Lib ADOSC)."""
    f = check_int("fastperiod", fastperiod, 2)
    s = check_int("slowperiod", slowperiod, 2)
    series = as_series(high, low, close, volume, names=_HLCV)
    return apply(lambda h, lo, c, v: adosc_core(h, lo, c, v, f, s), series)[0]


# --- anchored VWAP and VWAP bands (not in TA-Lib) ----------------------------------------
#
# Anchored VWAP (Brian Shannon, "Maximum Trading Gains With Anchored VWAP", 2023): the VWAP of
# the typical price accumulated from the first bar starting at or after a chosen time (the
# anchor); no value before it. VWAP bands: the VWAP +/- multiplier x the volume-weighted
# standard deviation of the typical price around it, sqrt(sum(v tp^2) / sum(v) - vwap^2), as
# the TradingView Pine Script v5 reference manual defines `ta.vwap(source, anchor,
# stdev_mult)` (it returns [vwap, upper, lower]); the anchor is SESSION (00:00 UTC, as VWAP
# here) or CUMULATIVE. The squares are summed on the typical price minus the first typical
# price of its session, which leaves the variance unchanged and keeps sum(v tp^2) from
# cancelling at prices near 1e9.


def _to_epoch(value: object, time_unit: TimeUnit) -> int:
    """An anchor time (datetime, datetime64 or an integer epoch in `time_unit`) as an integer."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("anchor must be timezone-aware")
        value = np.datetime64(value.astimezone(UTC).replace(tzinfo=None), "us")
    if isinstance(value, np.datetime64):
        return int(value.astype(f"datetime64[{time_unit}]").astype(np.int64))
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    raise ValueError(f"anchor must be a time, got {value!r}")


def _epochs(times: ArrayLike, time_unit: TimeUnit) -> NDArray[np.int64]:
    t = np.asarray(times)
    if np.issubdtype(t.dtype, np.datetime64):
        return t.astype(f"datetime64[{time_unit}]").astype(np.int64)
    if not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"times must be datetime64 or integer epoch values, got dtype {t.dtype}")
    return t.astype(np.int64)


def anchored_vwap(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    volume: ArrayLike,
    times: ArrayLike,
    anchor: object,
    time_unit: TimeUnit = "ms",
) -> FloatArray:
    """VWAP of the typical price from the first bar starting at or after `anchor` on."""
    series = as_series(high, low, close, volume, names=_HLCV)
    epochs = _epochs(times, time_unit)
    if len(epochs) != len(series[0]):
        raise ValueError("times must have the same length as the prices")
    start = int(np.searchsorted(epochs, _to_epoch(anchor, time_unit), side="left"))
    out = nans(len(epochs))
    if start < len(epochs):
        out[start:] = apply(_vwap_cumulative_core, [a[start:] for a in series])[0]
    return out


def _bands_core(
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    volume: FloatArray,
    starts: NDArray[np.intp],
    mult: float,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    n = len(close)
    tp = (high + low + close) / 3.0
    lengths = np.diff(np.append(starts, n))
    ref = np.repeat(np.where(np.isfinite(tp[starts]), tp[starts], 0.0), lengths)
    dev = tp - ref
    sums = np.empty((3, n))
    np.multiply(dev, volume, out=sums[0])
    np.multiply(sums[0], dev, out=sums[1])
    sums[2] = volume
    bad = ~np.isfinite(sums).all(axis=0)
    if bad.any():
        sums[:, bad] = 0.0
    num, sq, den = segmented_cumsum(sums, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = num / den
        spread = np.sqrt(np.maximum(sq / den - mean * mean, 0.0)) * mult
    middle = mean + ref
    middle[den == 0.0] = np.nan
    if bad.any():
        seg = np.zeros(n, dtype=np.intp)
        seg[starts[1:]] = 1
        np.cumsum(seg, out=seg)
        last_bad = np.maximum.accumulate(np.where(bad, seg, -1))
        middle[last_bad == seg] = np.nan
    return middle + spread, middle, middle - spread


def vwap_bands(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    volume: ArrayLike,
    times: ArrayLike | None = None,
    anchor: str = "session",
    multiplier: float = 1.0,
    time_unit: TimeUnit = "ms",
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """VWAP +/- multiplier volume-weighted standard deviations (upper, vwap, lower)."""
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be one of {', '.join(ANCHORS)}, got {anchor!r}")
    k = check_float("multiplier", multiplier, 0.0, 10.0)
    series = as_series(high, low, close, volume, names=_HLCV)
    n = len(series[0])
    if anchor == "cumulative":
        first = np.zeros(1, dtype=np.intp)
        upper, middle, lower = apply(lambda h, lo, c, v: _bands_core(h, lo, c, v, first, k), series)
        return upper, middle, lower
    if times is None:
        raise ValueError("times is required when anchor is 'session'")
    days = utc_days(times, time_unit)
    if len(days) != n:
        raise ValueError(f"times must have the same length as the prices, got {len(days)} and {n}")
    if n == 0:
        return nans(0), nans(0), nans(0)
    if np.any(days[1:] < days[:-1]):
        raise ValueError("times must be in ascending order")
    starts = np.concatenate(([0], np.flatnonzero(np.diff(days) != 0) + 1)).astype(np.intp)
    high_, low_, close_, volume_ = series
    return _bands_core(high_, low_, close_, volume_, starts, k)
