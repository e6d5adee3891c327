"""More moving averages with TA-Lib's definitions: DEMA, TEMA, TRIMA, KAMA, T3, and TA-Lib's
MA-type switch (`matype`) that APO, PPO, STOCHF and STOCHRSI take.

Every average is computed as TA-Lib computes it from the first bar it is given, so an average
whose input starts later (PPO's fast line, an EMA of an EMA) is simply applied to the later
slice: TA-Lib's functions behave the same way when called with a later start index.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from indicators._common import FloatArray, apply, as_series, check_float, check_int, nans
from indicators._kernels import window_sum
from indicators._loops import ema_chain, kaufman
from indicators.moving import _ema_core, _sma_core, _wma_core

#: TA-Lib's MA types (TA_MAType): 7 is MAMA, which this package does not implement.
MA_TYPES = {0: "SMA", 1: "EMA", 2: "WMA", 3: "DEMA", 4: "TEMA", 5: "TRIMA", 6: "KAMA", 8: "T3"}

#: KAMA's fastest and slowest smoothing constants (TA-Lib: 2/(2+1) and 2/(30+1)).
KAMA_FAST, KAMA_SLOW = 2.0 / 3.0, 2.0 / 31.0


def _ema_tail(x: FloatArray, n: int, start: int) -> FloatArray:
    """EMA of x[start:] placed at its own positions (NaN before start + n - 1)."""
    out = nans(len(x))
    if len(x) - start >= n:
        out[start:] = _ema_core(x[start:], n)[0]
    return out


def _ema_chain(x: FloatArray, n: int, depth: int) -> list[FloatArray]:
    """EMA, EMA of EMA, ... (`depth` of them), each seeded on its input's first n values."""
    chain = []
    current, start = x, 0
    for _ in range(depth):
        current = _ema_tail(current, n, start)
        start += n - 1
        chain.append(current)
    return chain


def dema_core(x: FloatArray, n: int) -> FloatArray:
    return ema_chain(x, n, np.array([2.0, -1.0]))


def tema_core(x: FloatArray, n: int) -> FloatArray:
    return ema_chain(x, n, np.array([3.0, -3.0, 1.0]))


def trima_core(x: FloatArray, n: int) -> FloatArray:
    # Triangular weights 1, 2, ..., 2, 1 are two boxes convolved: (n+1)/2 and (n+1)/2 bars for
    # odd n, n/2 and n/2 + 1 for even n (TA-Lib's ta_TRIMA.c).
    a = (n + 1) // 2
    b = n + 1 - a
    m = len(x)
    if m < n:
        return nans(m)
    out = nans(m)
    inner = window_sum(x, a)
    window_sum(inner, b, 1.0 / (a * b), out=out[n - 1 :])
    return out


def kama_core(x: FloatArray, n: int) -> FloatArray:
    m = len(x)
    out = nans(m)
    if m > n:
        kaufman(x, n, KAMA_FAST, KAMA_SLOW, out)
    return out


def t3_core(x: FloatArray, n: int, v: float) -> FloatArray:
    v2, v3 = v * v, v * v * v
    c1, c2 = -v3, 3.0 * v2 + 3.0 * v3
    c3, c4 = -6.0 * v2 - 3.0 * v - 3.0 * v3, 1.0 + 3.0 * v + v3 + 3.0 * v2
    return ema_chain(x, n, np.array([0.0, 0.0, c4, c3, c2, c1]))


def ma_lookback(n: int, matype: int) -> int:
    """TA-Lib's lookback of TA_MA for a period and an MA type."""
    if n == 1:
        return 0
    return {0: n - 1, 1: n - 1, 2: n - 1, 3: 2 * (n - 1), 4: 3 * (n - 1), 5: n - 1, 6: n}.get(
        matype, 6 * (n - 1)
    )


def moving_average(x: FloatArray, n: int, matype: int) -> FloatArray:
    """TA-Lib's TA_MA: the average of type `matype` over n bars (period 1: x itself)."""
    if n == 1:
        return x.copy()
    match matype:
        case 0:
            return _sma_core(x, n)[0]
        case 1:
            return _ema_core(x, n)[0] if len(x) >= n else nans(len(x))
        case 2:
            return _wma_core(x, n)[0]
        case 3:
            return dema_core(x, n)
        case 4:
            return tema_core(x, n)
        case 5:
            return trima_core(x, n)
        case 6:
            return kama_core(x, n)
        case 8:
            return t3_core(x, n, 0.7)
    raise ValueError(f"matype {matype} is not supported")


def check_matype(name: str, value: object) -> int:
    """The MA type as an int, or ValueError naming the parameter."""
    t = check_int(name, value, 0, 8)
    if t not in MA_TYPES:
        allowed = ", ".join(f"{k} ({v})" for k, v in MA_TYPES.items())
        raise ValueError(f"{name} must be one of {allowed}, got {t} (MAMA is not supported)")
    return t


def _single(core: object, close: ArrayLike) -> FloatArray:
    series = as_series(close, names=("close",))
    return apply(lambda x: (core(x),), series)[0]  # type: ignore[operator]


def dema(close: ArrayLike, timeperiod: int = 30) -> FloatArray:
    """Double EMA, 2*EMA - EMA(EMA) (TA-Lib DEMA)."""
    n = check_int("timeperiod", timeperiod, 1)
    return _single(lambda x: dema_core(x, n), close)


def tema(close: ArrayLike, timeperiod: int = 30) -> FloatArray:
    """Triple EMA, 3*EMA - 3*EMA(EMA) + EMA(EMA(EMA)) (TA-Lib TEMA)."""
    n = check_int("timeperiod", timeperiod, 1)
    return _single(lambda x: tema_core(x, n), close)


def trima(close: ArrayLike, timeperiod: int = 30) -> FloatArray:
    """Triangular moving average (TA-Lib TRIMA)."""
    n = check_int("timeperiod", timeperiod, 1)
    return _single(lambda x: trima_core(x, n), close)


def kama(close: ArrayLike, timeperiod: int = 30) -> FloatArray:
    """Kaufman adaptive moving average, fast 2 and slow 30 bars (TA-Lib KAMA)."""
    n = check_int("timeperiod", timeperiod, 2)
    return _single(lambda x: kama_core(x, n), close)


def t3(close: ArrayLike, timeperiod: int = 5, vfactor: float = 0.7) -> FloatArray:
    """Tillson's T3: six chained EMAs combined with volume factor v (TA-Lib T3)."""
    n = check_int("timeperiod", timeperiod, 1)
    v = check_float("vfactor", vfactor, 0.0, 1.0)
    return _single(lambda x: t3_core(x, n, v), close)
