"""Moving averages: SMA, EMA, WMA, with TA-Lib's defaults, seeding and leading NaN."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from indicators._common import FloatArray, apply, as_series, check_int, nans
from indicators._kernels import mean_of, smooth, window_sum
from indicators._loops import weighted_window


def _sma_core(x: FloatArray, n: int) -> tuple[FloatArray]:
    if len(x) < n:
        return (nans(len(x)),)
    out = np.empty(len(x))
    out[: n - 1] = np.nan
    window_sum(x, n, 1.0 / n, out=out[n - 1 :])
    return (out,)


def _ema_core(x: FloatArray, n: int) -> tuple[FloatArray]:
    if len(x) < n:
        return (nans(len(x)),)
    return (smooth(x, 2.0 / (n + 1), n - 1, mean_of(x[:n])),)


def _wma_core(x: FloatArray, n: int) -> tuple[FloatArray]:
    if len(x) < n:
        return (nans(len(x)),)
    out = np.empty(len(x))
    out[: n - 1] = np.nan
    weighted_window(x, n, 2.0 / (n * (n + 1)), out[n - 1 :])
    return (out,)


def sma(close: ArrayLike, timeperiod: int = 30) -> FloatArray:
    """Simple moving average; the first timeperiod-1 values are NaN (TA-Lib SMA)."""
    n = check_int("timeperiod", timeperiod, 1)
    return apply(lambda x: _sma_core(x, n), as_series(close, names=("close",)))[0]


def ema(close: ArrayLike, timeperiod: int = 30) -> FloatArray:
    """Exponential moving average, k = 2/(n+1), seeded with the SMA of the first n (TA-Lib EMA)."""
    n = check_int("timeperiod", timeperiod, 1)
    series = as_series(close, names=("close",))
    return apply(lambda x: _ema_core(x, n), series, propagates=True)[0]


def wma(close: ArrayLike, timeperiod: int = 30) -> FloatArray:
    """Linearly weighted moving average, weights 1..n with the newest heaviest (TA-Lib WMA)."""
    n = check_int("timeperiod", timeperiod, 1)
    return apply(lambda x: _wma_core(x, n), as_series(close, names=("close",)))[0]
