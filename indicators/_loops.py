"""Recursions that no array operation expresses, compiled with numba.

Each one is a state machine or a recursion whose coefficient changes every bar (Parabolic SAR,
Supertrend's ratcheting bands, KAMA's adaptive factor): numpy would evaluate them one Python
step per bar, hundreds of times slower than TA-Lib's C at 1,000,000 bars
(benchmarks/indicators.py measures the compiled versions). Everything around them stays numpy.
Functions are compiled on first use and cached on disk next to this file when it is writable.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from indicators._common import FloatArray


@njit(cache=True, nogil=True)
def adaptive_smooth(x: FloatArray, sc: FloatArray, seed_at: int, seed: float) -> FloatArray:
    """y[seed_at] = seed, then y[t] = y[t-1] + sc[t] * (x[t] - y[t-1]); NaN before seed_at."""
    n = len(x)
    out = np.empty(n)
    out[: min(seed_at, n)] = np.nan
    if seed_at >= n:
        return out
    y = seed
    out[seed_at] = y
    for t in range(seed_at + 1, n):
        y = (x[t] - y) * sc[t] + y  # TA-Lib KAMA's operation order
        out[t] = y
    return out


@njit(cache=True, nogil=True)
def parabolic_sar(
    high: FloatArray, low: FloatArray, acceleration: float, maximum: float
) -> FloatArray:
    """Wilder's Parabolic SAR stepped as TA-Lib's ta_SAR.c steps it (output from bar 1)."""
    n = len(high)
    out = np.empty(n)
    out[:] = np.nan
    if n < 2:
        return out
    if acceleration > maximum:
        acceleration = maximum
    af = acceleration
    # Direction from the -DM of the first two bars: short when the low fell more than the
    # high rose.
    diff_m = low[0] - low[1]
    diff_p = high[1] - high[0]
    is_long = not (diff_m > 0 and diff_p < diff_m)
    if is_long:
        ep = high[1]
        sar = low[0]
    else:
        ep = low[1]
        sar = high[0]
    new_low = low[1]
    new_high = high[1]
    for t in range(1, n):
        prev_low = new_low
        prev_high = new_high
        new_low = low[t]
        new_high = high[t]
        if is_long:
            if new_low <= sar:
                is_long = False
                sar = max(ep, prev_high, new_high)
                out[t] = sar
                af = acceleration
                ep = new_low
                sar = sar + af * (ep - sar)
                sar = max(sar, prev_high, new_high)
            else:
                out[t] = sar
                if new_high > ep:
                    ep = new_high
                    af = min(af + acceleration, maximum)
                sar = sar + af * (ep - sar)
                sar = min(sar, prev_low, new_low)
        elif new_high >= sar:
            is_long = True
            sar = min(ep, prev_low, new_low)
            out[t] = sar
            af = acceleration
            ep = new_high
            sar = sar + af * (ep - sar)
            sar = min(sar, prev_low, new_low)
        else:
            out[t] = sar
            if new_low < ep:
                ep = new_low
                af = min(af + acceleration, maximum)
            sar = sar + af * (ep - sar)
            sar = max(sar, prev_high, new_high)
    return out


@njit(cache=True, nogil=True)
def supertrend_bands(
    close: FloatArray, upper: FloatArray, lower: FloatArray, start: int
) -> tuple[FloatArray, FloatArray]:
    """Supertrend line and direction (+1 up, -1 down) from the basic bands, from `start` on.

    The ratchet (see `indicators.channels.supertrend`): the upper band only falls, and the
    lower band only rises, while the previous close stays inside them; a downtrend turns up
    when the close ends above this bar's final upper band, an uptrend down when it ends below
    the final lower band.
    """
    n = len(close)
    line = np.empty(n)
    direction = np.empty(n)
    line[:] = np.nan
    direction[:] = np.nan
    if start >= n:
        return line, direction
    fu = upper[start]
    fl = lower[start]
    trend = -1.0  # the first bar is a downtrend: the reference starts there
    line[start] = fu
    direction[start] = trend
    for t in range(start + 1, n):
        prev_close = close[t - 1]
        upper_t = upper[t] if (upper[t] < fu or prev_close > fu) else fu
        lower_t = lower[t] if (lower[t] > fl or prev_close < fl) else fl
        if trend < 0:
            trend = 1.0 if close[t] > upper_t else -1.0
        else:
            trend = -1.0 if close[t] < lower_t else 1.0
        fu = upper_t
        fl = lower_t
        line[t] = fl if trend > 0 else fu
        direction[t] = trend
    return line, direction


@njit(cache=True, nogil=True)
def wilder_skipping(x: FloatArray, valid: np.ndarray, n: int, seed_at: int) -> FloatArray:
    """TA-Lib ADX's smoothing of DX: the seed is the mean of x[seed_at-n+1 .. seed_at] (invalid
    values count as 0), then y = (y (n-1) + x) / n on valid bars and y unchanged on the others.
    """
    m = len(x)
    out = np.empty(m)
    out[:] = np.nan
    if seed_at >= m:
        return out
    total = 0.0
    for t in range(seed_at - n + 1, seed_at + 1):
        if valid[t]:
            total += x[t]
    y = total / n
    out[seed_at] = y
    for t in range(seed_at + 1, m):
        if valid[t]:
            y = (y * (n - 1) + x[t]) / n
        out[t] = y
    return out
