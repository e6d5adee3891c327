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


#: Running window sums are summed afresh every RESYNC bars, so their rounding error stays that
#: of at most RESYNC updates however long the series (the weighted sum is about n^2/2 times the
#: prices, so each update's rounding is that large: 64 keeps a WMA-based APO on volatile data
#: inside the 1e-9 tolerance of tests/test_indicators_catalogue.py's warm-up test).
RESYNC = 64


@njit(cache=True, nogil=True)
def weighted_window(x: FloatArray, n: int, scale: float, out: FloatArray) -> None:
    """out[k] = scale * sum((u + 1) * x[k + u], u < n), for every k (len(out) = len(x) - n + 1).

    Running sums as TA-Lib's WMA keeps them (plain sum S and weighted sum T; the next window
    adds n * x_new to T and takes S off it), summed afresh every RESYNC windows.
    """
    m = len(x) - n + 1
    s = 0.0
    t = 0.0
    for k in range(m):
        if k % RESYNC == 0:
            s = 0.0
            t = 0.0
            for u in range(n):
                v = x[k + u]
                s += v
                t += (u + 1) * v
        else:
            new = x[k + n - 1]
            t += n * new - s
            s += new - x[k - 1]
        out[k] = t * scale


@njit(cache=True, nogil=True)
def wilder_true_range(
    high: FloatArray, low: FloatArray, close: FloatArray, n: int, out: FloatArray
) -> None:
    """TA-Lib's ATR: the mean true range of bars 1..n at bar n, then (prev (n-1) + tr) / n."""
    m = len(close)
    total = 0.0
    for t in range(1, n + 1):
        pc = close[t - 1]
        total += max(high[t] - low[t], abs(high[t] - pc), abs(low[t] - pc))
    y = total / n
    out[n] = y
    # (y (n-1) + tr) / n with the division taken out of the loop-carried chain (a divide's
    # latency would set the pace); the results differ from TA-Lib's by rounding only.
    keep = (n - 1) / n
    k = 1.0 / n
    for t in range(n + 1, m):
        pc = close[t - 1]
        tr = max(high[t] - low[t], abs(high[t] - pc), abs(low[t] - pc))
        y = y * keep + tr * k
        out[t] = y


@njit(cache=True, nogil=True)
def directional_sums(
    high: FloatArray, low: FloatArray, close: FloatArray, n: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Wilder's smoothed +DM, -DM and true-range sums at bars n..m-1, stepped as TA-Lib's
    ta_DX.c: summed over the first n-1 moves, then S = S - S/n + v."""
    m = len(close)
    plus = np.empty(m - n)
    minus = np.empty(m - n)
    trs = np.empty(m - n)
    sp = 0.0
    sm = 0.0
    st = 0.0
    keep = 1.0 - 1.0 / n  # S - S/n, without a divide in the loop-carried chain
    for t in range(1, m):
        diff_p = high[t] - high[t - 1]
        diff_m = low[t - 1] - low[t]
        dp = 0.0
        dm = 0.0
        if diff_m > 0 and diff_p < diff_m:
            dm = diff_m
        elif diff_p > 0 and diff_p > diff_m:
            dp = diff_p
        pc = close[t - 1]
        tr = max(high[t] - low[t], abs(high[t] - pc), abs(low[t] - pc))
        if t < n:
            sp += dp
            sm += dm
            st += tr
        else:
            sp = sp * keep + dp
            sm = sm * keep + dm
            st = st * keep + tr
            plus[t - n] = sp
            minus[t - n] = sm
            trs[t - n] = st
    return plus, minus, trs
