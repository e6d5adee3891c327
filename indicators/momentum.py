"""Momentum indicators: RSI, ROC, MACD, STOCH, with TA-Lib's defaults and conventions."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from indicators._common import FloatArray, apply, as_series, check_int, nans
from indicators._kernels import (
    CHUNK,
    Smoother,
    mean_of,
    window_extreme,
    window_sum,
)
from indicators._loops import macd_lines

_TINY = float(np.finfo(np.float64).tiny)


def _rsi_core(x: FloatArray, n: int) -> tuple[FloatArray]:
    m = len(x)
    if m <= n:
        return (nans(m),)
    out = np.empty(m)
    out[:n] = np.nan
    # Wilder smoothing seeded with the mean gain and mean loss of the first n changes.
    first = np.diff(x[: n + 1])
    gain0 = np.maximum(first, 0.0)
    loss0 = gain0 - first
    mean_gain, mean_loss = mean_of(gain0), mean_of(loss0)
    # Smoothed gains + smoothed losses = the smoothed absolute change (the smoothing is
    # linear): RSI = 100 * G / A with G the smoothed gains (times 100, folded into the
    # smoothing) and A the smoothed |change|. No movement at all would be 0/0: TA-Lib gives
    # 0 (not 50). G is 0 whenever A is, so dividing by max(A, tiny) gives that 0 without a
    # masked division, and only A below ~2e-308 (subnormal) is affected at all.
    total0 = mean_gain + mean_loss
    out[n] = 100.0 * mean_gain / max(total0, _TINY)
    gains = Smoother(1.0 / n, mean_gain, scale=100.0)
    totals = Smoother(1.0 / n, total0)
    size = min(CHUNK, m - n - 1)
    move, gain, total = np.empty(size), np.empty(size), np.empty(size)
    for lo in range(n + 1, m, CHUNK):
        hi = min(m, lo + CHUNK)
        w = hi - lo
        np.subtract(x[lo:hi], x[lo - 1 : hi - 1], out=move[:w])
        np.maximum(move[:w], 0.0, out=gain[:w])
        smoothed_gain = gains.feed(gain[:w], out[lo:hi], overwrite_x=True)
        np.abs(move[:w], out=move[:w])
        smoothed_total = totals.feed(move[:w], total[:w], overwrite_x=True)
        np.maximum(smoothed_total, _TINY, out=smoothed_total)
        np.divide(smoothed_gain, smoothed_total, out=smoothed_gain)
    return (out,)


def _roc_core(x: FloatArray, n: int) -> tuple[FloatArray]:
    m = len(x)
    if m <= n:
        return (nans(m),)
    out = np.empty(m)
    out[:n] = np.nan
    prev, res = x[:-n], out[n:]
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(x[n:], prev, out=res)
    res -= 1.0
    res *= 100.0
    res[prev == 0.0] = 0.0  # TA-Lib's choice for a zero base
    return (out,)


def _macd_core(x: FloatArray, fast: int, slow: int, signal: int) -> tuple[FloatArray, ...]:
    m = len(x)
    lookback = slow - 1 + signal - 1
    if m <= lookback:
        return nans(m), nans(m), nans(m)
    # TA-Lib starts the fast EMA late (slow - fast bars in) so both are seeded on bar slow-1.
    line, sig = np.empty(m), np.empty(m)
    macd_lines(x, fast, slow, signal, line, sig)
    line[:lookback] = np.nan
    sig[:lookback] = np.nan
    return line, sig, line - sig


def _stoch_core(
    high: FloatArray, low: FloatArray, close: FloatArray, fastk: int, slowk: int, slowd: int
) -> tuple[FloatArray, FloatArray]:
    m = len(close)
    lookback = fastk - 1 + slowk - 1 + slowd - 1
    if m <= lookback:
        return nans(m), nans(m)
    out_k, out_d = np.empty(m), np.empty(m)
    out_k[:lookback] = np.nan
    out_d[:lookback] = np.nan
    # Chunks of output bars [lo, hi) read raw bars from lo - lookback: temporaries stay small.
    for lo in range(lookback, m, CHUNK):
        hi = min(m, lo + CHUNK)
        first = lo - lookback
        highest = window_extreme(high[first:hi], fastk, np.maximum)
        lowest = window_extreme(low[first:hi], fastk, np.minimum)
        span = highest
        span -= lowest
        span /= 100.0  # same operation order as TA-Lib
        fast = close[first + fastk - 1 : hi] - lowest
        with np.errstate(divide="ignore", invalid="ignore"):
            fast /= span
        fast[span == 0.0] = 0.0  # TA-Lib: a window with high == low gives 0
        k_line = window_sum(fast, slowk, 1.0 / slowk)
        out_k[lo:hi] = k_line[slowd - 1 :]
        window_sum(k_line, slowd, 1.0 / slowd, out=out_d[lo:hi])
    return out_k, out_d


def rsi(close: ArrayLike, timeperiod: int = 14) -> FloatArray:
    """Wilder's relative strength index; the first timeperiod values are NaN (TA-Lib RSI)."""
    n = check_int("timeperiod", timeperiod, 2)
    series = as_series(close, names=("close",))
    return apply(lambda x: _rsi_core(x, n), series, propagates=True)[0]


def roc(close: ArrayLike, timeperiod: int = 10) -> FloatArray:
    """Rate of change in percent, (x / x[-n] - 1) * 100; 0 when x[-n] is 0 (TA-Lib ROC)."""
    n = check_int("timeperiod", timeperiod, 1)
    return apply(lambda x: _roc_core(x, n), as_series(close, names=("close",)), poison=False)[0]


def macd(
    close: ArrayLike, fastperiod: int = 12, slowperiod: int = 26, signalperiod: int = 9
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """MACD line, signal line and histogram, NaN for the first slow+signal-2 bars (TA-Lib MACD)."""
    fast = check_int("fastperiod", fastperiod, 2)
    slow = check_int("slowperiod", slowperiod, 2)
    signal = check_int("signalperiod", signalperiod, 1)
    if fast >= slow:
        raise ValueError(f"fastperiod ({fast}) must be less than slowperiod ({slow})")
    series = as_series(close, names=("close",))
    line, sig, hist = apply(lambda x: _macd_core(x, fast, slow, signal), series, propagates=True)
    return line, sig, hist


def stoch(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    fastk_period: int = 5,
    slowk_period: int = 3,
    slowd_period: int = 3,
) -> tuple[FloatArray, FloatArray]:
    """Slow stochastic %K and %D with SMA smoothing (TA-Lib STOCH with its default MA types)."""
    fk = check_int("fastk_period", fastk_period, 1)
    sk = check_int("slowk_period", slowk_period, 1)
    sd = check_int("slowd_period", slowd_period, 1)
    series = as_series(high, low, close, names=("high", "low", "close"))
    k_line, d_line = apply(lambda h, lo, c: _stoch_core(h, lo, c, fk, sk, sd), series)
    return k_line, d_line
