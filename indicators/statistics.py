"""Statistics over a window, as TA-Lib computes them: LINEARREG, LINEARREG_SLOPE, MIDPOINT,
MIDPRICE.

The least-squares line through the last n closes is fitted against bar positions 0..n-1
(oldest to newest), from running sums (`_loops.linear_fit`) taken on the closes minus a
recent close: the slope is unchanged, the level is added back, and the products stay small
at prices near 1e9 (TA-Lib works on the raw prices; the difference is rounding).
"""

from __future__ import annotations

from numpy.typing import ArrayLike

from indicators._common import FloatArray, apply, as_series, check_int, nans
from indicators._loops import linear_fit, window_high_low


def linearreg_core(x: FloatArray, n: int) -> tuple[FloatArray]:
    out = nans(len(x))
    if len(x) >= n:
        linear_fit(x, n, 0, out[n - 1 :])
    return (out,)


def linearreg_slope_core(x: FloatArray, n: int) -> tuple[FloatArray]:
    out = nans(len(x))
    if len(x) >= n:
        linear_fit(x, n, 1, out[n - 1 :])
    return (out,)


def midpoint_core(x: FloatArray, n: int) -> tuple[FloatArray]:
    out = nans(len(x))
    if len(x) >= n:
        window_high_low(x, x, x, n, 0, out[n - 1 :])
    return (out,)


def midprice_core(high: FloatArray, low: FloatArray, n: int) -> tuple[FloatArray]:
    out = nans(len(high))
    if len(high) >= n:
        window_high_low(high, low, high, n, 0, out[n - 1 :])
    return (out,)


def linearreg(close: ArrayLike, timeperiod: int = 14) -> FloatArray:
    """End point of the least-squares line through the last n closes (TA-Lib LINEARREG)."""
    n = check_int("timeperiod", timeperiod, 2)
    return apply(lambda x: linearreg_core(x, n), as_series(close, names=("close",)))[0]


def linearreg_slope(close: ArrayLike, timeperiod: int = 14) -> FloatArray:
    """Slope per bar of that line (TA-Lib LINEARREG_SLOPE)."""
    n = check_int("timeperiod", timeperiod, 2)
    return apply(lambda x: linearreg_slope_core(x, n), as_series(close, names=("close",)))[0]


def midpoint(close: ArrayLike, timeperiod: int = 14) -> FloatArray:
    """(highest + lowest close) / 2 over n bars (TA-Lib MIDPOINT)."""
    n = check_int("timeperiod", timeperiod, 2)
    return apply(lambda x: midpoint_core(x, n), as_series(close, names=("close",)))[0]


def midprice(high: ArrayLike, low: ArrayLike, timeperiod: int = 14) -> FloatArray:
    """(highest high + lowest low) / 2 over n bars (TA-Lib MIDPRICE)."""
    n = check_int("timeperiod", timeperiod, 2)
    series = as_series(high, low, names=("high", "low"))
    return apply(lambda h, lo: midprice_core(h, lo, n), series)[0]
