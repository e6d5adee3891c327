"""Technical indicators as pure numpy functions, matching TA-Lib's definitions and defaults.

Inputs are float64 arrays (open/high/low/close/volume; for VWAP also bar start times in UTC);
every output is a float64 array of the input's length, NaN where the value is not defined
(the GraphQL layer maps NaN to null). No database and no GraphQL here.

    from indicators import get_indicator
    spec = get_indicator("MACD")
    params = spec.validate({"fastperiod": 12})        # ValueError names a bad parameter
    read_from = start_index - spec.warmup_bars(params)  # None: read the whole history
    out = spec.compute({"close": close}, params)      # {"macd": ..., "macdsignal": ..., ...}

NaN handling is described in `indicators._common`; warm-up in `registry`.
"""

from indicators._common import MAX_PERIOD
from indicators.momentum import macd, roc, rsi, stoch
from indicators.moving import ema, sma, wma
from indicators.registry import (
    DECAY,
    INDICATORS,
    Indicator,
    Param,
    describe,
    get_indicator,
)
from indicators.volatility import atr, bbands
from indicators.volume import obv, utc_days, vwap

__all__ = [
    "DECAY",
    "INDICATORS",
    "MAX_PERIOD",
    "Indicator",
    "Param",
    "atr",
    "bbands",
    "describe",
    "ema",
    "get_indicator",
    "macd",
    "obv",
    "roc",
    "rsi",
    "sma",
    "stoch",
    "utc_days",
    "vwap",
    "wma",
]
