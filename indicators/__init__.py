"""Technical indicators as pure numpy functions, matching TA-Lib's definitions and defaults.

Inputs are float64 arrays (open/high/low/close/volume; for VWAP also bar start times in UTC);
every output is a float64 array of the input's length, NaN where the value is not defined
(the GraphQL layer maps NaN to null). No database and no GraphQL here.

    from indicators import get_indicator
    spec = get_indicator("MACD")
    params = spec.validate({"fastperiod": 12})        # ValueError names a bad parameter
    read_from = start_index - spec.warmup_bars(params)  # None: read the whole history
    out = spec.compute({"close": close}, params)      # {"macd": ..., "macdsignal": ..., ...}

The catalogue (`INDICATORS`, in `registry`): TA-Lib's SMA, EMA, WMA, DEMA, TEMA, TRIMA, KAMA,
T3, RSI, ROC, MOM, CMO, APO, PPO, MACD, TRIX, STOCH, STOCHF, STOCHRSI, WILLR, CCI, MFI, ADX,
ADXR, DX, PLUS_DI, MINUS_DI, AROON, AROONOSC, ULTOSC, BOP, ATR, NATR, TRANGE, BBANDS, STDDEV,
VAR, SAR, OBV, AD, ADOSC, LINEARREG, LINEARREG_SLOPE, MIDPOINT, MIDPRICE; beyond TA-Lib, with
the published definition each follows cited where it is computed: VWAP, anchored VWAP, VWAP
bands (`volume`), Keltner and Donchian channels, Supertrend, Ichimoku (`channels`).

NaN handling is described in `indicators._common`; warm-up in `registry`.
"""

from indicators._common import MAX_PERIOD
from indicators.averages import dema, kama, t3, tema, trima
from indicators.channels import donchian, ichimoku, keltner, supertrend
from indicators.directional import adx, adxr, dx, minus_di, plus_di, sar
from indicators.momentum import macd, roc, rsi, stoch
from indicators.moving import ema, sma, wma
from indicators.oscillators import (
    apo,
    aroon,
    aroonosc,
    bop,
    cci,
    cmo,
    mfi,
    mom,
    ppo,
    stochf,
    stochrsi,
    trix,
    ultosc,
    willr,
)
from indicators.registry import (
    DECAY,
    INDICATORS,
    Indicator,
    Param,
    describe,
    get_indicator,
)
from indicators.statistics import linearreg, linearreg_slope, midpoint, midprice
from indicators.volatility import atr, bbands, natr, stddev, trange, var
from indicators.volume import ad, adosc, anchored_vwap, obv, utc_days, vwap, vwap_bands

__all__ = [
    "DECAY",
    "INDICATORS",
    "MAX_PERIOD",
    "Indicator",
    "Param",
    "ad",
    "adosc",
    "adx",
    "adxr",
    "anchored_vwap",
    "apo",
    "aroon",
    "aroonosc",
    "atr",
    "bbands",
    "bop",
    "cci",
    "cmo",
    "dema",
    "describe",
    "donchian",
    "dx",
    "ema",
    "get_indicator",
    "ichimoku",
    "kama",
    "keltner",
    "linearreg",
    "linearreg_slope",
    "macd",
    "mfi",
    "midpoint",
    "midprice",
    "minus_di",
    "mom",
    "natr",
    "obv",
    "plus_di",
    "ppo",
    "roc",
    "rsi",
    "sar",
    "sma",
    "stddev",
    "stoch",
    "stochf",
    "stochrsi",
    "supertrend",
    "t3",
    "tema",
    "trange",
    "trima",
    "trix",
    "ultosc",
    "utc_days",
    "var",
    "vwap",
    "vwap_bands",
    "willr",
    "wma",
]
