"""Wilder's directional movement system and Parabolic SAR, as TA-Lib computes them: PLUS_DI,
MINUS_DI, DX, ADX, ADXR, SAR.

+DM and -DM compare today's high rise with today's low fall; whichever is larger and positive
counts, the other is 0 (TA-Lib's ta_DX.c and siblings). They and the true range are summed
over the first n-1 moves, then smoothed as S = S - S/n + v from bar n on, in one compiled pass
(`_loops.directional_index`), so TA-Lib's absolute zero test sees the same sums.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from indicators._common import (
    FloatArray,
    apply,
    as_series,
    check_float,
    check_int,
    forward_fill_invalid,
    nans,
)
from indicators._loops import directional_index, parabolic_sar, wilder_skipping

HLC = ("high", "low", "close")


def di_core(
    high: FloatArray, low: FloatArray, close: FloatArray, n: int, plus: bool
) -> tuple[FloatArray]:
    m = len(close)
    out = nans(m)
    if m > n:
        out[n:] = directional_index(high, low, close, n, 0 if plus else 1)[0]
    return (out,)


def _raw_dx(
    high: FloatArray, low: FloatArray, close: FloatArray, n: int
) -> tuple[FloatArray, np.ndarray]:
    """DX at bars n..m-1 and where it is defined (TR and +DI + -DI not zero)."""
    dx, valid = directional_index(high, low, close, n, 2)
    return dx, valid


def dx_core(high: FloatArray, low: FloatArray, close: FloatArray, n: int) -> tuple[FloatArray]:
    m = len(close)
    out = nans(m)
    if m <= n:
        return (out,)
    dx, valid = _raw_dx(high, low, close, n)
    forward_fill_invalid(dx, ~valid, 0.0)  # TA-Lib repeats the previous DX (0 at first)
    out[n:] = dx
    return (out,)


def adx_core(high: FloatArray, low: FloatArray, close: FloatArray, n: int) -> tuple[FloatArray]:
    m = len(close)
    if m <= 2 * n - 1:
        return (nans(m),)
    dx, valid = _raw_dx(high, low, close, n)
    out = nans(m)
    out[n:] = wilder_skipping(dx, valid, n, n - 1)
    return (out,)


def adxr_core(high: FloatArray, low: FloatArray, close: FloatArray, n: int) -> tuple[FloatArray]:
    m = len(close)
    lookback = 3 * n - 2
    out = nans(m)
    if m <= lookback:
        return (out,)
    adx = adx_core(high, low, close, n)[0]
    out[lookback:] = (adx[lookback:] + adx[lookback - n + 1 : m - n + 1]) / 2.0
    return (out,)


def _hlc(high: ArrayLike, low: ArrayLike, close: ArrayLike) -> list[FloatArray]:
    return as_series(high, low, close, names=HLC)


def plus_di(high: ArrayLike, low: ArrayLike, close: ArrayLike, timeperiod: int = 14) -> FloatArray:
    """Plus directional indicator, 0..100 (TA-Lib PLUS_DI)."""
    n = check_int("timeperiod", timeperiod, 2)
    return apply(lambda h, lo, c: di_core(h, lo, c, n, True), _hlc(high, low, close))[0]


def minus_di(high: ArrayLike, low: ArrayLike, close: ArrayLike, timeperiod: int = 14) -> FloatArray:
    """Minus directional indicator, 0..100 (TA-Lib MINUS_DI)."""
    n = check_int("timeperiod", timeperiod, 2)
    return apply(lambda h, lo, c: di_core(h, lo, c, n, False), _hlc(high, low, close))[0]


def dx(high: ArrayLike, low: ArrayLike, close: ArrayLike, timeperiod: int = 14) -> FloatArray:
    """Directional movement index, 100 |+DI - -DI| / (+DI + -DI) (TA-Lib DX)."""
    n = check_int("timeperiod", timeperiod, 2)
    return apply(lambda h, lo, c: dx_core(h, lo, c, n), _hlc(high, low, close))[0]


def adx(high: ArrayLike, low: ArrayLike, close: ArrayLike, timeperiod: int = 14) -> FloatArray:
    """Average directional movement index, Wilder-smoothed DX (TA-Lib ADX)."""
    n = check_int("timeperiod", timeperiod, 2)
    return apply(lambda h, lo, c: adx_core(h, lo, c, n), _hlc(high, low, close))[0]


def adxr(high: ArrayLike, low: ArrayLike, close: ArrayLike, timeperiod: int = 14) -> FloatArray:
    """ADX rating, the mean of today's ADX and the ADX n-1 bars back (TA-Lib ADXR)."""
    n = check_int("timeperiod", timeperiod, 2)
    return apply(lambda h, lo, c: adxr_core(h, lo, c, n), _hlc(high, low, close))[0]


#: Largest acceleration factor or maximum accepted (TA-Lib takes any non-negative number).
MAX_ACCELERATION = 1.0


def sar(
    high: ArrayLike, low: ArrayLike, acceleration: float = 0.02, maximum: float = 0.2
) -> FloatArray:
    """Wilder's Parabolic SAR (TA-Lib SAR); the first bar has no value."""
    a = check_float("acceleration", acceleration, 0.0, MAX_ACCELERATION)
    top = check_float("maximum", maximum, 0.0, MAX_ACCELERATION)
    series = as_series(high, low, names=("high", "low"))
    return apply(lambda h, lo: (parabolic_sar(h, lo, a, top),), series)[0]
