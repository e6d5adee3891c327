"""Statistics over a window, as TA-Lib computes them: LINEARREG, LINEARREG_SLOPE, MIDPOINT,
MIDPRICE.

The least-squares line through the last n closes is fitted against bar positions 0..n-1
(oldest to newest). Its sums are taken on the closes minus the first close of the input:
the slope is unchanged, the level is added back, and the products stay small at prices near
1e9 (TA-Lib works on the raw prices; the difference is rounding).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from indicators._common import FloatArray, apply, as_series, check_int, nans
from indicators._kernels import window_extreme, window_sum, window_weighted_sum


def _fit(x: FloatArray, n: int) -> tuple[FloatArray, FloatArray, float] | None:
    """Slope and intercept (at the oldest bar, shifted) of every window, and the shift."""
    if len(x) < n:
        return None
    shift = float(x[0])
    y = x - shift
    sum_y = window_sum(y, n)
    # Weights 1..n give sum((u + 1) y) = sum(u y) + sum(y), u = 0..n-1.
    sum_uy = window_weighted_sum(y, n) - sum_y
    sum_u = n * (n - 1) / 2.0
    sum_uu = n * (n - 1) * (2 * n - 1) / 6.0
    slope = (n * sum_uy - sum_u * sum_y) / (n * sum_uu - sum_u * sum_u)
    intercept = (sum_y - slope * sum_u) / n
    return slope, intercept, shift


def linearreg_core(x: FloatArray, n: int) -> tuple[FloatArray]:
    out = nans(len(x))
    fit = _fit(x, n)
    if fit is not None:
        slope, intercept, shift = fit
        out[n - 1 :] = intercept + slope * (n - 1) + shift
    return (out,)


def linearreg_slope_core(x: FloatArray, n: int) -> tuple[FloatArray]:
    out = nans(len(x))
    fit = _fit(x, n)
    if fit is not None:
        out[n - 1 :] = fit[0]
    return (out,)


def midpoint_core(x: FloatArray, n: int) -> tuple[FloatArray]:
    out = nans(len(x))
    if len(x) >= n:
        mid = window_extreme(x, n, np.maximum)
        mid += window_extreme(x, n, np.minimum)
        mid /= 2.0
        out[n - 1 :] = mid
    return (out,)


def midprice_core(high: FloatArray, low: FloatArray, n: int) -> tuple[FloatArray]:
    out = nans(len(high))
    if len(high) >= n:
        mid = window_extreme(high, n, np.maximum)
        mid += window_extreme(low, n, np.minimum)
        mid /= 2.0
        out[n - 1 :] = mid
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
