"""Oscillators with TA-Lib's definitions: MOM, CMO, APO, PPO, TRIX, STOCHF, STOCHRSI, WILLR,
CCI, MFI, ULTOSC, BOP, AROON, AROONOSC.

Zero tests follow TA-Lib (`_common.EPSILON`): where TA-Lib divides only by a sum that is not
"zero" and writes 0 otherwise, so do these.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from indicators._common import (
    FloatArray,
    apply,
    as_series,
    check_int,
    is_zero,
    nans,
)
from indicators._kernels import CHUNK, window_extreme, window_sum
from indicators._loops import (
    balance_of_power,
    chande,
    ema_chain,
    extreme_age,
    ultimate,
    window_high_low,
)
from indicators.averages import check_matype, ma_lookback, moving_average
from indicators.momentum import _rsi_core

HLC = ("high", "low", "close")


def _shift_diff(x: FloatArray, n: int) -> FloatArray:
    if len(x) <= n:
        return nans(len(x))
    out = np.empty(len(x))
    out[:n] = np.nan
    np.subtract(x[n:], x[:-n], out=out[n:])
    return out


def mom_core(x: FloatArray, n: int) -> tuple[FloatArray]:
    return (_shift_diff(x, n),)


def cmo_core(x: FloatArray, n: int) -> tuple[FloatArray]:
    # Wilder-smoothed gains G and losses L seeded as RSI's; CMO = 100 (G - L) / (G + L).
    m = len(x)
    out = nans(m)
    if m > n:
        chande(x, n, out)
    return (out,)


def po_core(x: FloatArray, fast: int, slow: int, matype: int, percent: bool) -> tuple[FloatArray]:
    # TA-Lib's TA_INT_PO swaps the periods so that `fast` is the shorter; unlike MACD, both
    # averages start on the first bar.
    if slow < fast:
        fast, slow = slow, fast
    m = len(x)
    lb_slow = ma_lookback(slow, matype)
    out = nans(m)
    if m <= lb_slow:
        return (out,)
    slow_ma = moving_average(x, slow, matype)
    fast_ma = moving_average(x, fast, matype)
    diff = fast_ma[lb_slow:] - slow_ma[lb_slow:]
    if percent:
        base = slow_ma[lb_slow:]
        with np.errstate(divide="ignore", invalid="ignore"):
            diff /= base
        diff *= 100.0
        diff[is_zero(base)] = 0.0
    out[lb_slow:] = diff
    return (out,)


def trix_core(x: FloatArray, n: int) -> tuple[FloatArray]:
    return (ema_chain(x, n, np.array([0.0, 0.0, 1.0]), True),)


#: STOCHRSI: an RSI window whose range is below this (RSI points) counts as flat. Where the
#: close stops moving, Wilder's averages of gains and of moves decay at the same rate, so the
#: RSI stays put up to rounding; its stochastic is then 0/0 made of rounding noise (TA-Lib
#: returns anything from 0 to 100 there). We return 0, TA-Lib's value for a flat window.
RSI_FLAT = 1e-9


def _fast_k(
    high: FloatArray, low: FloatArray, close: FloatArray, n: int, flat: float = 0.0
) -> FloatArray:
    """100 (close - lowest low) / (highest high - lowest low) over n bars, 0 on a window whose
    range is not above `flat`."""
    m = len(close)
    out = nans(m)
    if m < n:
        return out
    for lo in range(n - 1, m, CHUNK):
        hi = min(m, lo + CHUNK)
        first = lo - n + 1
        span = window_extreme(high[first:hi], n, np.maximum)
        lowest = window_extreme(low[first:hi], n, np.minimum)
        span -= lowest
        span /= 100.0  # TA-Lib's operation order
        k = close[lo:hi] - lowest
        with np.errstate(divide="ignore", invalid="ignore"):
            k /= span
        k[span <= flat / 100.0] = 0.0
        out[lo:hi] = k
    return out


def stochf_core(
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    fastk: int,
    fastd: int,
    matype: int,
    flat: float = 0.0,
) -> tuple[FloatArray, FloatArray]:
    m = len(close)
    lookback = fastk - 1 + ma_lookback(fastd, matype)
    if m <= lookback:
        return nans(m), nans(m)
    k = _fast_k(high, low, close, fastk, flat)
    d = nans(m)
    d[fastk - 1 :] = moving_average(k[fastk - 1 :], fastd, matype)
    k[:lookback] = np.nan
    return k, d


def stochrsi_core(
    x: FloatArray, n: int, fastk: int, fastd: int, matype: int
) -> tuple[FloatArray, FloatArray]:
    m = len(x)
    lookback = n + fastk - 1 + ma_lookback(fastd, matype)
    if m <= lookback:
        return nans(m), nans(m)
    r = _rsi_core(x, n)[0][n:]
    k, d = stochf_core(r, r, r, fastk, fastd, matype, RSI_FLAT)
    out_k, out_d = nans(m), nans(m)
    out_k[n:], out_d[n:] = k, d
    return out_k, out_d


def willr_core(high: FloatArray, low: FloatArray, close: FloatArray, n: int) -> tuple[FloatArray]:
    m = len(close)
    out = nans(m)
    if m >= n:
        window_high_low(high, low, close, n, 1, out[n - 1 :])
    return (out,)


def cci_core(high: FloatArray, low: FloatArray, close: FloatArray, n: int) -> tuple[FloatArray]:
    m = len(close)
    out = nans(m)
    if m < n:
        return (out,)
    tp = high + low
    tp += close
    tp /= 3.0
    for lo in range(n - 1, m, CHUNK):
        hi = min(m, lo + CHUNK)
        part = tp[lo - n + 1 : hi]
        mean = window_sum(part, n, 1.0 / n)
        # Mean absolute deviation from the window's own mean: n passes over the chunk.
        dev = np.zeros(hi - lo)
        for j in range(n):
            dev += np.abs(part[j : j + hi - lo] - mean)
        dev /= n
        num = tp[lo:hi] - mean
        with np.errstate(divide="ignore", invalid="ignore"):
            r = num / (0.015 * dev)
        # A window of one typical price is 0/0: 0, TA-Lib's value for it. (TA-Lib itself gives
        # +/-66.7 on some such windows: its mean of n equal values can be off by an ulp.)
        flat = window_extreme(part, n, np.maximum) == window_extreme(part, n, np.minimum)
        r[(num == 0.0) | (dev == 0.0) | flat] = 0.0
        out[lo:hi] = r
    return (out,)


def mfi_core(
    high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray, n: int
) -> tuple[FloatArray]:
    m = len(close)
    out = nans(m)
    if m <= n:
        return (out,)
    tp = high + low
    tp += close
    tp /= 3.0
    flow = tp[1:] * volume[1:]
    # TA-Lib counts a typical price within rounding of the previous one as unchanged.
    change = tp[1:] - tp[:-1]
    same = is_zero(change)
    up = (change > 0) & ~same
    down = (change < 0) & ~same
    pos = window_sum(np.where(up, flow, 0.0), n)
    neg = window_sum(np.where(down, flow, 0.0), n)
    total = pos + neg
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 100.0 * (pos / total)
    r[is_zero(total)] = 0.0
    out[n:] = r
    return (out,)


def ultosc_core(
    high: FloatArray, low: FloatArray, close: FloatArray, p1: int, p2: int, p3: int
) -> tuple[FloatArray]:
    # TA-Lib sorts the periods: the shortest gets weight 4, the middle 2, the longest 1.
    short, middle, longest = sorted((p1, p2, p3))
    out = nans(len(close))
    if len(close) > longest:
        ultimate(high, low, close, short, middle, longest, out)
    return (out,)


def bop_core(
    open_: FloatArray, high: FloatArray, low: FloatArray, close: FloatArray
) -> tuple[FloatArray]:
    out = np.empty(len(close))
    balance_of_power(open_, high, low, close, out)
    return (out,)


def _latest_extreme_age(x: FloatArray, n: int, op: np.ufunc) -> FloatArray:
    """Bars since the latest highest (op=maximum) or lowest value in each window of n+1."""
    age = np.empty(len(x) - n)
    extreme_age(x, n, op is np.maximum, age)
    return age


def aroon_core(high: FloatArray, low: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:
    m = len(high)
    down, up = nans(m), nans(m)
    if m <= n:
        return down, up
    factor = 100.0 / n
    down[n:] = factor * (n - _latest_extreme_age(low, n, np.minimum))
    up[n:] = factor * (n - _latest_extreme_age(high, n, np.maximum))
    return down, up


def aroonosc_core(high: FloatArray, low: FloatArray, n: int) -> tuple[FloatArray]:
    m = len(high)
    out = nans(m)
    if m <= n:
        return (out,)
    # TA-Lib: factor * (highestIdx - lowestIdx).
    diff = _latest_extreme_age(low, n, np.minimum) - _latest_extreme_age(high, n, np.maximum)
    out[n:] = (100.0 / n) * diff
    return (out,)


# --- public functions -------------------------------------------------------------------


def _close(close: ArrayLike) -> list[FloatArray]:
    return as_series(close, names=("close",))


def mom(close: ArrayLike, timeperiod: int = 10) -> FloatArray:
    """Momentum, close - close n bars back (TA-Lib MOM)."""
    n = check_int("timeperiod", timeperiod, 1)
    return apply(lambda x: mom_core(x, n), _close(close), poison=False)[0]


def cmo(close: ArrayLike, timeperiod: int = 14) -> FloatArray:
    """Chande momentum oscillator with Wilder smoothing, -100..100 (TA-Lib CMO)."""
    n = check_int("timeperiod", timeperiod, 2)
    return apply(lambda x: cmo_core(x, n), _close(close))[0]


def apo(
    close: ArrayLike, fastperiod: int = 12, slowperiod: int = 26, matype: int = 1
) -> FloatArray:
    """Absolute price oscillator, fast MA - slow MA (TA-Lib APO)."""
    f = check_int("fastperiod", fastperiod, 2)
    s = check_int("slowperiod", slowperiod, 2)
    t = check_matype("matype", matype)
    return apply(lambda x: po_core(x, f, s, t, False), _close(close))[0]


def ppo(
    close: ArrayLike, fastperiod: int = 12, slowperiod: int = 26, matype: int = 1
) -> FloatArray:
    """Percentage price oscillator, 100 (fast MA - slow MA) / slow MA (TA-Lib PPO)."""
    f = check_int("fastperiod", fastperiod, 2)
    s = check_int("slowperiod", slowperiod, 2)
    t = check_matype("matype", matype)
    return apply(lambda x: po_core(x, f, s, t, True), _close(close))[0]


def trix(close: ArrayLike, timeperiod: int = 30) -> FloatArray:
    """One-bar rate of change (percent) of a triple EMA (TA-Lib TRIX)."""
    n = check_int("timeperiod", timeperiod, 1)
    return apply(lambda x: trix_core(x, n), _close(close))[0]


def stochf(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    fastk_period: int = 5,
    fastd_period: int = 3,
    fastd_matype: int = 0,
) -> tuple[FloatArray, FloatArray]:
    """Fast stochastic %K and %D (TA-Lib STOCHF)."""
    fk = check_int("fastk_period", fastk_period, 1)
    fd = check_int("fastd_period", fastd_period, 1)
    t = check_matype("fastd_matype", fastd_matype)
    series = as_series(high, low, close, names=HLC)
    k, d = apply(lambda h, lo, c: stochf_core(h, lo, c, fk, fd, t), series)
    return k, d


def stochrsi(
    close: ArrayLike,
    timeperiod: int = 14,
    fastk_period: int = 5,
    fastd_period: int = 3,
    fastd_matype: int = 0,
) -> tuple[FloatArray, FloatArray]:
    """Fast stochastic of the RSI (TA-Lib STOCHRSI)."""
    n = check_int("timeperiod", timeperiod, 2)
    fk = check_int("fastk_period", fastk_period, 1)
    fd = check_int("fastd_period", fastd_period, 1)
    t = check_matype("fastd_matype", fastd_matype)
    k, d = apply(lambda x: stochrsi_core(x, n, fk, fd, t), _close(close))
    return k, d


def willr(high: ArrayLike, low: ArrayLike, close: ArrayLike, timeperiod: int = 14) -> FloatArray:
    """Williams' %R, -100..0 (TA-Lib WILLR)."""
    n = check_int("timeperiod", timeperiod, 2)
    return apply(lambda h, lo, c: willr_core(h, lo, c, n), as_series(high, low, close, names=HLC))[
        0
    ]


def cci(high: ArrayLike, low: ArrayLike, close: ArrayLike, timeperiod: int = 14) -> FloatArray:
    """Commodity channel index with Lambert's 0.015 constant (TA-Lib CCI)."""
    n = check_int("timeperiod", timeperiod, 2)
    return apply(lambda h, lo, c: cci_core(h, lo, c, n), as_series(high, low, close, names=HLC))[0]


def mfi(
    high: ArrayLike, low: ArrayLike, close: ArrayLike, volume: ArrayLike, timeperiod: int = 14
) -> FloatArray:
    """Money flow index, 0..100 (TA-Lib MFI)."""
    n = check_int("timeperiod", timeperiod, 2)
    series = as_series(high, low, close, volume, names=(*HLC, "volume"))
    return apply(lambda h, lo, c, v: mfi_core(h, lo, c, v, n), series)[0]


def ultosc(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    timeperiod1: int = 7,
    timeperiod2: int = 14,
    timeperiod3: int = 28,
) -> FloatArray:
    """Ultimate oscillator, 0..100 (TA-Lib ULTOSC)."""
    p1 = check_int("timeperiod1", timeperiod1, 1)
    p2 = check_int("timeperiod2", timeperiod2, 1)
    p3 = check_int("timeperiod3", timeperiod3, 1)
    series = as_series(high, low, close, names=HLC)
    return apply(lambda h, lo, c: ultosc_core(h, lo, c, p1, p2, p3), series)[0]


def bop(open: ArrayLike, high: ArrayLike, low: ArrayLike, close: ArrayLike) -> FloatArray:
    """Balance of power, (close - open) / (high - low) (TA-Lib BOP)."""
    series = as_series(open, high, low, close, names=("open", *HLC))
    return apply(bop_core, series, poison=False)[0]


def aroon(high: ArrayLike, low: ArrayLike, timeperiod: int = 14) -> tuple[FloatArray, FloatArray]:
    """Aroon down and up, 0..100 (TA-Lib AROON, in its output order)."""
    n = check_int("timeperiod", timeperiod, 2)
    series = as_series(high, low, names=("high", "low"))
    down, up = apply(lambda h, lo: aroon_core(h, lo, n), series)
    return down, up


def aroonosc(high: ArrayLike, low: ArrayLike, timeperiod: int = 14) -> FloatArray:
    """Aroon up - Aroon down (TA-Lib AROONOSC)."""
    n = check_int("timeperiod", timeperiod, 2)
    series = as_series(high, low, names=("high", "low"))
    return apply(lambda h, lo: aroonosc_core(h, lo, n), series)[0]
