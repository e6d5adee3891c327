"""What the GraphQL layer needs to know about each indicator, in one table.

For every indicator: its inputs, parameters (defaults and bounds), output names, `validate`,
`lookback` (TA-Lib's count of leading NaN) and `warmup_bars`: how many bars before a range
start must be read so that, after trimming, every value in the range equals the value computed
over the whole history to within 1e-12 + 1e-9 * max|value|.

Windowed indicators (SMA, WMA, BBANDS, STOCH, ROC) only see their window: warm-up = lookback.
Recursive ones (EMA, RSI, ATR, MACD) never forget their seed, but its influence shrinks by the
smoothing factor a every bar; they read lookback + K bars, K being the first count with
a**K <= DECAY (times K+1 for MACD, whose signal EMA smooths an input that is itself still
converging). DECAY sits six orders below the 1e-9 tolerance, leaving room for a seed that is
off by up to a million times the values compared (a volatile history before a quiet range).
`None` means the whole history: OBV and cumulative VWAP are running sums. Session VWAP depends
on the bars since 00:00 UTC of each bar's day: `warmup_to_session_start` says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from numpy.typing import ArrayLike

from indicators._common import MAX_PERIOD, FloatArray, check_float, check_int
from indicators.averages import (
    KAMA_SLOW,
    MA_TYPES,
    check_matype,
    dema,
    kama,
    ma_lookback,
    t3,
    tema,
    trima,
)
from indicators.channels import MAX_MULTIPLIER, donchian, ichimoku, keltner, supertrend
from indicators.directional import MAX_ACCELERATION, adx, adxr, dx, minus_di, plus_di, sar
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
from indicators.statistics import linearreg, linearreg_slope, midpoint, midprice
from indicators.volatility import MAX_NBDEV, atr, bbands, natr, stddev, trange, var
from indicators.volume import ANCHORS, ad, adosc, anchored_vwap, obv, vwap, vwap_bands

#: The seed's remaining influence that the warm-up of recursive indicators aims for.
DECAY = 1e-15

ParamValue = int | float | str | datetime
Params = dict[str, ParamValue]


@dataclass(frozen=True)
class Param:
    """One parameter: its type, default and allowed values."""

    name: str
    default: ParamValue | None  # None: required
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    description: str = ""
    #: The name callers outside Python see (snake_case; the GraphQL API camel-cases it).
    #: TA-Lib's names (`timeperiod`, `nbdevup`) stay the keyword arguments of the kernels.
    argument: str = ""
    #: The type when the default does not say it (a required time has no default).
    type_: type | None = None

    @property
    def public_name(self) -> str:
        """`argument`, or the TA-Lib name when no other is given."""
        return self.argument or self.name

    @property
    def kind(self) -> type:
        """int, float, str or datetime (from the default unless `type_` says)."""
        return self.type_ or type(self.default)

    @property
    def required(self) -> bool:
        """True when the parameter has no default."""
        return self.default is None

    def check(self, value: object) -> ParamValue:
        """The value, normalised, or ValueError naming this parameter."""
        if self.kind is datetime:
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise ValueError(f"{self.name} must be a timezone-aware time, got {value!r}")
            return value
        if self.choices:
            if value not in self.choices:
                allowed = ", ".join(self.choices)
                raise ValueError(f"{self.name} must be one of {allowed}, got {value!r}")
            return str(value)
        assert self.minimum is not None and self.maximum is not None
        if self.kind is int:
            return check_int(self.name, value, int(self.minimum), int(self.maximum))
        return check_float(self.name, value, self.minimum, self.maximum)


def _period(
    name: str, default: int, minimum: int, description: str, argument: str = "period"
) -> Param:
    return Param(name, default, minimum, MAX_PERIOD, description=description, argument=argument)


@dataclass(frozen=True)
class Indicator:
    """An indicator's metadata and entry points (all of them validate the parameters)."""

    name: str
    description: str
    inputs: tuple[str, ...]
    params: tuple[Param, ...]
    outputs: tuple[str, ...]
    function: Callable[..., FloatArray | tuple[FloatArray, ...]]
    lookback_fn: Callable[[Params], int]
    warmup_fn: Callable[[Params], int | None]
    check_fn: Callable[[Params], None] | None = None
    session_reset_fn: Callable[[Params], bool] = field(default=lambda p: False)
    #: For each output: (output, GraphQL field, description). Empty: one output, `value`.
    output_fields: tuple[tuple[str, str, str], ...] = ()
    #: Name of the GraphQL result type when there are several outputs.
    type_name: str = ""
    #: Where the values start depending on the bars (a time parameter, as anchored VWAP's);
    #: the bars from there on are read, whatever the warm-up says.
    anchor_fn: Callable[[Params], datetime | None] = field(default=lambda p: None)
    #: Where the definition comes from, for indicators TA-Lib does not have.
    source: str = ""

    def defaults(self) -> Params:
        """Every parameter that has a default, at its default."""
        return {p.name: p.default for p in self.params if p.default is not None}

    def validate(self, params: Mapping[str, object] | None = None) -> Params:
        """Parameters with defaults filled in; ValueError naming the offending parameter."""
        given = {k: v for k, v in dict(params or {}).items() if v is not None}
        known = {p.name for p in self.params}
        unknown = sorted(set(given) - known)
        if unknown:
            expected = ", ".join(p.name for p in self.params) or "none"
            raise ValueError(
                f"unknown parameter {unknown[0]!r} for {self.name}; expected: {expected}"
            )
        result: Params = {}
        for p in self.params:
            if p.name in given:
                result[p.name] = p.check(given[p.name])
            elif p.default is None:
                raise ValueError(f"{p.name} is required for {self.name}")
            else:
                result[p.name] = p.default
        if self.check_fn is not None:
            self.check_fn(result)
        return result

    def lookback(self, params: Mapping[str, object] | None = None) -> int:
        """Number of leading NaN outputs on NaN-free input (TA-Lib's lookback)."""
        return self.lookback_fn(self.validate(params))

    def warmup_bars(self, params: Mapping[str, object] | None = None) -> int | None:
        """Bars to read before a range start so the range matches a whole-history computation."""
        return self.warmup_fn(self.validate(params))

    def anchor(self, params: Mapping[str, object] | None = None) -> datetime | None:
        """The time from which the values are computed, when a parameter sets one."""
        return self.anchor_fn(self.validate(params))

    def warmup_to_session_start(self, params: Mapping[str, object] | None = None) -> bool:
        """True when values depend exactly on the bars since 00:00 UTC of the same day."""
        return self.session_reset_fn(self.validate(params))

    def compute(
        self, data: Mapping[str, ArrayLike], params: Mapping[str, object] | None = None
    ) -> dict[str, FloatArray]:
        """Outputs by name; `data` maps each name in `inputs` to an array (times: see VWAP)."""
        values = self.validate(params)
        missing = [name for name in self.inputs if name not in data]
        if missing:
            raise ValueError(f"{self.name} needs input {missing[0]!r}")
        result = self.function(*(data[name] for name in self.inputs), **values)
        parts = result if isinstance(result, tuple) else (result,)
        return dict(zip(self.outputs, parts, strict=True))


def decay_bars(factor: float, polynomial: bool = False) -> int:
    """Smallest K with factor**K <= DECAY, or (K + 1) * factor**K <= DECAY if `polynomial`."""
    if factor <= 0.0:
        return 0
    log_f, log_d = math.log(factor), math.log(DECAY)
    k = math.ceil(log_d / log_f)
    if polynomial:
        while math.log(k + 1) + k * log_f > log_d:
            k += max(1, math.ceil(math.log(k + 1) / -log_f / 4))
    return k


def chain_decay_bars(factor: float, depth: int) -> int:
    """Smallest K with C(K + depth - 1, depth - 1) * factor**K <= DECAY: a seed error that
    passes through `depth` chained smoothings with the same factor (DEMA, TEMA, T3, TRIX)."""
    if factor <= 0.0:
        return 0
    if depth <= 1:
        return decay_bars(factor)
    log_f, log_d = math.log(factor), math.log(DECAY)
    k = decay_bars(factor)
    while True:
        log_c = math.lgamma(k + depth) - math.lgamma(depth) - math.lgamma(k + 1)
        if log_c + k * log_f <= log_d:
            return k
        k += max(1, math.ceil((log_c + k * log_f - log_d) / -log_f / 2))


def _int(params: Params, name: str) -> int:
    value = params[name]
    assert isinstance(value, int | float)
    return int(value)


def _time(params: Params, name: str) -> datetime | None:
    value = params.get(name)
    return value if isinstance(value, datetime) else None


def _ema_factor(period: int) -> float:
    return 1.0 - 2.0 / (period + 1)


def _wilder_factor(period: int) -> float:
    return (period - 1) / period


def _macd_lookback(p: Params) -> int:
    return _int(p, "slowperiod") - 1 + _int(p, "signalperiod") - 1


def _macd_warmup(p: Params) -> int:
    factor = max(_ema_factor(_int(p, "slowperiod")), _ema_factor(_int(p, "signalperiod")))
    return _macd_lookback(p) + decay_bars(factor, polynomial=True)


def _macd_check(p: Params) -> None:
    fast, slow = _int(p, "fastperiod"), _int(p, "slowperiod")
    if fast >= slow:
        raise ValueError(f"fastperiod ({fast}) must be less than slowperiod ({slow})")


def _stoch_lookback(p: Params) -> int:
    return _int(p, "fastk_period") + _int(p, "slowk_period") + _int(p, "slowd_period") - 3


_AVERAGED = "Bars averaged."
_SMOOTHING = "Smoothing period."

# --- the catalogue beyond the first eleven ----------------------------------------------

_PERIOD = "Bars in the window."


def _ma_warmup(n: int, matype: int) -> int:
    """Bars before a value that TA-Lib's TA_MA of this type needs (see the module doc)."""
    lookback = ma_lookback(n, matype)
    if n == 1 or matype in (0, 2, 5):
        return lookback
    factor = _ema_factor(n)
    match matype:
        case 1:
            return lookback + decay_bars(factor)
        case 3:
            return lookback + chain_decay_bars(factor, 2)
        case 4:
            return lookback + chain_decay_bars(factor, 3)
        case 6:
            return lookback + decay_bars(1.0 - KAMA_SLOW * KAMA_SLOW)
    return lookback + chain_decay_bars(factor, 6)


def _matype(name: str, default: int, argument: str) -> Param:
    kinds = ", ".join(f"{k} {v}" for k, v in MA_TYPES.items())
    return Param(name, default, 0, 8, description=f"TA-Lib MA type: {kinds}.", argument=argument)


def _check_matypes(*names: str) -> Callable[[Params], None]:
    def check(p: Params) -> None:
        for name in names:
            check_matype(name, p[name])

    return check


def _wilder_warmup(p: Params, extra: int = 0) -> int:
    n = _int(p, "timeperiod")
    return n + extra + decay_bars(_wilder_factor(n))


def _po_lookback(p: Params) -> int:
    slow = max(_int(p, "fastperiod"), _int(p, "slowperiod"))
    return ma_lookback(slow, _int(p, "matype"))


def _po_warmup(p: Params) -> int:
    t = _int(p, "matype")
    return max(_ma_warmup(_int(p, "fastperiod"), t), _ma_warmup(_int(p, "slowperiod"), t))


def _stochf_lookback(p: Params) -> int:
    return (
        _int(p, "fastk_period") - 1 + ma_lookback(_int(p, "fastd_period"), _int(p, "fastd_matype"))
    )


def _stochf_warmup(p: Params) -> int:
    return (
        _int(p, "fastk_period") - 1 + _ma_warmup(_int(p, "fastd_period"), _int(p, "fastd_matype"))
    )


def _adx_warmup(p: Params) -> int:
    n = _int(p, "timeperiod")
    return 2 * n - 1 + decay_bars(_wilder_factor(n), polynomial=True)


def _keltner_lookback(p: Params) -> int:
    return max(_int(p, "timeperiod") - 1, _int(p, "atr_period"))


def _keltner_warmup(p: Params) -> int:
    n, a = _int(p, "timeperiod"), _int(p, "atr_period")
    return max(n - 1 + decay_bars(_ema_factor(n)), a + decay_bars(_wilder_factor(a)))


def _ichimoku_lookback(p: Params) -> int:
    t, k = _int(p, "tenkan_period"), _int(p, "kijun_period")
    b, s = _int(p, "senkou_b_period"), _int(p, "displacement")
    return max(t - 1, k - 1, max(t, k) - 1 + s, b - 1 + s)


def _close_one(
    name: str,
    description: str,
    function: Callable[..., Any],
    default: int,
    minimum: int,
    lookback: Callable[[int], int],
    warmup: Callable[[int], int | None] | None = None,
    period_text: str = _PERIOD,
    inputs: tuple[str, ...] = ("close",),
) -> Indicator:
    """An indicator with one `timeperiod` parameter and one output."""
    warm = warmup or lookback
    return Indicator(
        name=name,
        description=description,
        inputs=inputs,
        params=(_period("timeperiod", default, minimum, period_text),),
        outputs=("value",),
        function=function,
        lookback_fn=lambda p: lookback(_int(p, "timeperiod")),
        warmup_fn=lambda p: warm(_int(p, "timeperiod")),
    )


_HLC = ("high", "low", "close")
_HLCV = ("high", "low", "close", "volume")
_TIMES = (*_HLCV, "time")
_BANDS = (
    ("upperband", "upper", "Upper band."),
    ("middleband", "middle", "Middle line."),
    ("lowerband", "lower", "Lower band."),
)

_MORE: tuple[Indicator, ...] = (
    _close_one(
        "DEMA",
        "Double exponential moving average, 2 EMA - EMA(EMA).",
        dema,
        30,
        1,
        lambda n: 2 * (n - 1),
        lambda n: 2 * (n - 1) + chain_decay_bars(_ema_factor(n), 2),
        _SMOOTHING,
    ),
    _close_one(
        "TEMA",
        "Triple exponential moving average, 3 EMA - 3 EMA(EMA) + EMA(EMA(EMA)).",
        tema,
        30,
        1,
        lambda n: 3 * (n - 1),
        lambda n: 3 * (n - 1) + chain_decay_bars(_ema_factor(n), 3),
        _SMOOTHING,
    ),
    _close_one(
        "TRIMA",
        "Triangular moving average (an SMA of an SMA).",
        trima,
        30,
        1,
        lambda n: n - 1,
        period_text=_AVERAGED,
    ),
    _close_one(
        "KAMA",
        "Kaufman adaptive moving average (fast 2, slow 30 bars).",
        kama,
        30,
        2,
        lambda n: n,
        lambda n: n + decay_bars(1.0 - KAMA_SLOW * KAMA_SLOW),
        "Efficiency-ratio window.",
    ),
    Indicator(
        name="T3",
        description="Tillson T3: six chained EMAs combined by the volume factor.",
        inputs=("close",),
        params=(
            _period("timeperiod", 5, 1, _SMOOTHING),
            Param("vfactor", 0.7, 0.0, 1.0, description="Volume factor, 0-1.", argument="v_factor"),
        ),
        outputs=("value",),
        function=t3,
        lookback_fn=lambda p: 6 * (_int(p, "timeperiod") - 1),
        warmup_fn=lambda p: (
            6 * (_int(p, "timeperiod") - 1)
            + chain_decay_bars(_ema_factor(_int(p, "timeperiod")), 6)
        ),
    ),
    _close_one(
        "MOM",
        "Momentum: close minus the close `period` bars back.",
        mom,
        10,
        1,
        lambda n: n,
        period_text="Bars back.",
    ),
    _close_one(
        "CMO",
        "Chande momentum oscillator (Wilder smoothing), -100 to 100.",
        cmo,
        14,
        2,
        lambda n: n,
        lambda n: n + decay_bars(_wilder_factor(n)),
        _SMOOTHING,
    ),
    *(
        Indicator(
            name=name,
            description=text,
            inputs=("close",),
            params=(
                _period("fastperiod", 12, 2, "Fast MA period.", argument="fast"),
                _period("slowperiod", 26, 2, "Slow MA period.", argument="slow"),
                _matype("matype", 1, "ma_type"),
            ),
            outputs=("value",),
            function=function,
            lookback_fn=_po_lookback,
            warmup_fn=_po_warmup,
            check_fn=_check_matypes("matype"),
        )
        for name, text, function in (
            ("APO", "Absolute price oscillator: fast MA minus slow MA.", apo),
            ("PPO", "Percentage price oscillator: 100 (fast MA - slow MA) / slow MA.", ppo),
        )
    ),
    _close_one(
        "TRIX",
        "One-bar rate of change (percent) of a triple EMA.",
        trix,
        30,
        1,
        lambda n: 3 * (n - 1) + 1,
        lambda n: 3 * (n - 1) + 1 + chain_decay_bars(_ema_factor(n), 3),
        _SMOOTHING,
    ),
    Indicator(
        name="STOCHF",
        description="Fast stochastic oscillator %K and %D.",
        inputs=_HLC,
        params=(
            _period("fastk_period", 5, 1, "%K look-back.", argument="fast_k"),
            _period("fastd_period", 3, 1, "%D smoothing.", argument="fast_d"),
            _matype("fastd_matype", 0, "fast_d_ma_type"),
        ),
        outputs=("fastk", "fastd"),
        function=stochf,
        lookback_fn=_stochf_lookback,
        warmup_fn=_stochf_warmup,
        check_fn=_check_matypes("fastd_matype"),
        output_fields=(
            ("fastk", "k", "Fast %K (0-100)."),
            ("fastd", "d", "Fast %D: moving average of %K."),
        ),
        type_name="StochFastIndicator",
    ),
    Indicator(
        name="STOCHRSI",
        description="Stochastic RSI: the fast stochastic of the RSI.",
        inputs=("close",),
        params=(
            _period("timeperiod", 14, 2, "RSI period."),
            _period("fastk_period", 5, 1, "%K look-back.", argument="fast_k"),
            _period("fastd_period", 3, 1, "%D smoothing.", argument="fast_d"),
            _matype("fastd_matype", 0, "fast_d_ma_type"),
        ),
        outputs=("fastk", "fastd"),
        function=stochrsi,
        lookback_fn=lambda p: _int(p, "timeperiod") + _stochf_lookback(p),
        warmup_fn=lambda p: _wilder_warmup(p) + _stochf_warmup(p),
        check_fn=_check_matypes("fastd_matype"),
        output_fields=(
            ("fastk", "k", "%K of the RSI (0-100)."),
            ("fastd", "d", "%D: moving average of %K."),
        ),
        type_name="StochRsiIndicator",
    ),
    _close_one("WILLR", "Williams' %R, -100 to 0.", willr, 14, 2, lambda n: n - 1, inputs=_HLC),
    _close_one("CCI", "Commodity channel index.", cci, 14, 2, lambda n: n - 1, inputs=_HLC),
    _close_one("MFI", "Money flow index, 0-100.", mfi, 14, 2, lambda n: n, inputs=_HLCV),
    Indicator(
        name="ADX",
        description="Average directional movement index (Wilder).",
        inputs=_HLC,
        params=(_period("timeperiod", 14, 2, _SMOOTHING),),
        outputs=("value",),
        function=adx,
        lookback_fn=lambda p: 2 * _int(p, "timeperiod") - 1,
        warmup_fn=_adx_warmup,
    ),
    Indicator(
        name="ADXR",
        description="ADX rating: mean of the ADX and the ADX period-1 bars back.",
        inputs=_HLC,
        params=(_period("timeperiod", 14, 2, _SMOOTHING),),
        outputs=("value",),
        function=adxr,
        lookback_fn=lambda p: 3 * _int(p, "timeperiod") - 2,
        warmup_fn=lambda p: _adx_warmup(p) + _int(p, "timeperiod") - 1,
    ),
    *(
        _close_one(
            name,
            text,
            function,
            14,
            2,
            lambda n: n,
            lambda n: n + decay_bars(_wilder_factor(n)),
            _SMOOTHING,
            _HLC,
        )
        for name, text, function in (
            ("DX", "Directional movement index, 0-100.", dx),
            ("PLUS_DI", "Plus directional indicator, 0-100.", plus_di),
            ("MINUS_DI", "Minus directional indicator, 0-100.", minus_di),
        )
    ),
    Indicator(
        name="AROON",
        description="Aroon down and up, 0-100.",
        inputs=("high", "low"),
        params=(_period("timeperiod", 14, 2, _PERIOD),),
        outputs=("aroondown", "aroonup"),
        function=aroon,
        lookback_fn=lambda p: _int(p, "timeperiod"),
        warmup_fn=lambda p: _int(p, "timeperiod"),
        output_fields=(
            ("aroondown", "down", "100 (period - bars since the lowest low) / period."),
            ("aroonup", "up", "100 (period - bars since the highest high) / period."),
        ),
        type_name="AroonIndicator",
    ),
    _close_one(
        "AROONOSC",
        "Aroon oscillator: Aroon up minus Aroon down.",
        aroonosc,
        14,
        2,
        lambda n: n,
        inputs=("high", "low"),
    ),
    Indicator(
        name="ULTOSC",
        description="Ultimate oscillator, 0-100 (the shortest period weighs 4, the next 2).",
        inputs=_HLC,
        params=(
            _period("timeperiod1", 7, 1, "First period.", argument="period1"),
            _period("timeperiod2", 14, 1, "Second period.", argument="period2"),
            _period("timeperiod3", 28, 1, "Third period.", argument="period3"),
        ),
        outputs=("value",),
        function=ultosc,
        lookback_fn=lambda p: max(_int(p, f"timeperiod{i}") for i in (1, 2, 3)),
        warmup_fn=lambda p: max(_int(p, f"timeperiod{i}") for i in (1, 2, 3)),
    ),
    Indicator(
        name="BOP",
        description="Balance of power: (close - open) / (high - low).",
        inputs=("open", *_HLC),
        params=(),
        outputs=("value",),
        function=bop,
        lookback_fn=lambda p: 0,
        warmup_fn=lambda p: 0,
    ),
    _close_one(
        "NATR",
        "Normalized ATR: ATR as a percentage of the close.",
        natr,
        14,
        2,
        lambda n: n,
        lambda n: n + decay_bars(_wilder_factor(n)),
        _SMOOTHING,
        _HLC,
    ),
    Indicator(
        name="TRANGE",
        description="True range: max(high, previous close) - min(low, previous close).",
        inputs=_HLC,
        params=(),
        outputs=("value",),
        function=trange,
        lookback_fn=lambda p: 1,
        warmup_fn=lambda p: 1,
    ),
    *(
        Indicator(
            name=name,
            description=text,
            inputs=("close",),
            params=(
                _period("timeperiod", 5, minimum, _PERIOD),
                Param("nbdev", 1.0, -MAX_NBDEV, MAX_NBDEV, description=dev_text),
            ),
            outputs=("value",),
            function=function,
            lookback_fn=lambda p: _int(p, "timeperiod") - 1,
            warmup_fn=lambda p: _int(p, "timeperiod") - 1,
        )
        for name, text, function, minimum, dev_text in (
            (
                "STDDEV",
                "Population standard deviation of the close, times nbdev.",
                stddev,
                2,
                "Multiplier.",
            ),
            (
                "VAR",
                "Population variance of the close.",
                var,
                1,
                "Accepted and unused, as in TA-Lib.",
            ),
        )
    ),
    Indicator(
        name="SAR",
        description="Parabolic SAR (Wilder). History matters: computed from the first stored bar.",
        inputs=("high", "low"),
        params=(
            Param("acceleration", 0.02, 0.0, MAX_ACCELERATION, description="Acceleration step."),
            Param("maximum", 0.2, 0.0, MAX_ACCELERATION, description="Largest acceleration."),
        ),
        outputs=("value",),
        function=sar,
        lookback_fn=lambda p: 1,
        warmup_fn=lambda p: None,
    ),
    Indicator(
        name="AD",
        description="Chaikin accumulation/distribution line over the whole stored history.",
        inputs=_HLCV,
        params=(),
        outputs=("value",),
        function=ad,
        lookback_fn=lambda p: 0,
        warmup_fn=lambda p: None,
    ),
    Indicator(
        name="ADOSC",
        description="Chaikin A/D oscillator: fast EMA minus slow EMA of the A/D line.",
        inputs=_HLCV,
        params=(
            _period("fastperiod", 3, 2, "Fast EMA period.", argument="fast"),
            _period("slowperiod", 10, 2, "Slow EMA period.", argument="slow"),
        ),
        outputs=("value",),
        function=adosc,
        lookback_fn=lambda p: max(_int(p, "fastperiod"), _int(p, "slowperiod")) - 1,
        warmup_fn=lambda p: (
            max(_int(p, "fastperiod"), _int(p, "slowperiod"))
            - 1
            + decay_bars(_ema_factor(max(_int(p, "fastperiod"), _int(p, "slowperiod"))))
        ),
    ),
    _close_one(
        "LINEARREG",
        "End point of the least-squares line through the last closes.",
        linearreg,
        14,
        2,
        lambda n: n - 1,
    ),
    _close_one(
        "LINEARREG_SLOPE",
        "Slope (per bar) of the least-squares line.",
        linearreg_slope,
        14,
        2,
        lambda n: n - 1,
    ),
    _close_one("MIDPOINT", "(Highest + lowest close) / 2.", midpoint, 14, 2, lambda n: n - 1),
    _close_one(
        "MIDPRICE",
        "(Highest high + lowest low) / 2.",
        midprice,
        14,
        2,
        lambda n: n - 1,
        inputs=("high", "low"),
    ),
    # Beyond TA-Lib: the definitions and their sources are in indicators/channels.py and
    # indicators/volume.py.
    Indicator(
        name="KELTNER",
        description="Keltner channels: EMA of the close +/- multiplier x ATR.",
        inputs=_HLC,
        params=(
            _period("timeperiod", 20, 1, "EMA period."),
            _period("atr_period", 10, 1, "ATR period.", argument="atr_period"),
            Param("multiplier", 2.0, 0.0, MAX_MULTIPLIER, description="ATRs from the middle."),
        ),
        outputs=("upperband", "middleband", "lowerband"),
        function=keltner,
        lookback_fn=_keltner_lookback,
        warmup_fn=_keltner_warmup,
        output_fields=_BANDS,
        type_name="KeltnerIndicator",
        source="StockCharts ChartSchool, Keltner Channels (Raschke's EMA/ATR form)",
    ),
    Indicator(
        name="DONCHIAN",
        description="Donchian channels: highest high, mid-range and lowest low.",
        inputs=("high", "low"),
        params=(_period("timeperiod", 20, 1, _PERIOD),),
        outputs=("upperband", "middleband", "lowerband"),
        function=donchian,
        lookback_fn=lambda p: _int(p, "timeperiod") - 1,
        warmup_fn=lambda p: _int(p, "timeperiod") - 1,
        output_fields=_BANDS,
        type_name="DonchianIndicator",
        source="StockCharts ChartSchool, Donchian Channels",
    ),
    Indicator(
        name="SUPERTREND",
        description="Supertrend line and direction. History matters: computed from the first "
        "stored bar.",
        inputs=_HLC,
        params=(
            _period("timeperiod", 10, 1, "ATR period."),
            Param("multiplier", 3.0, 0.0, MAX_MULTIPLIER, description="ATRs from the mid-price."),
        ),
        outputs=("supertrend", "direction"),
        function=supertrend,
        lookback_fn=lambda p: _int(p, "timeperiod"),
        warmup_fn=lambda p: None,
        output_fields=(
            ("supertrend", "value", "The line: lower band in an uptrend, upper in a downtrend."),
            ("direction", "direction", "1 in an uptrend, -1 in a downtrend."),
        ),
        type_name="SupertrendIndicator",
        source="TradingView Pine Script v5 reference, ta.supertrend",
    ),
    Indicator(
        name="ICHIMOKU",
        description="Ichimoku Kinko Hyo. Senkou spans are shifted forward by `displacement` "
        "(the value at a bar is the cloud drawn there); the chikou span is this bar's close, "
        "to be drawn `displacement` bars back.",
        inputs=_HLC,
        params=(
            _period("tenkan_period", 9, 1, "Conversion line period.", argument="tenkan"),
            _period("kijun_period", 26, 1, "Base line period.", argument="kijun"),
            _period("senkou_b_period", 52, 1, "Leading span B period.", argument="senkou_b"),
            Param("displacement", 26, 0, MAX_PERIOD, description="Forward shift of the spans."),
        ),
        outputs=("tenkan", "kijun", "senkou_a", "senkou_b", "chikou"),
        function=ichimoku,
        lookback_fn=_ichimoku_lookback,
        warmup_fn=_ichimoku_lookback,
        output_fields=(
            ("tenkan", "tenkan", "Tenkan-sen: mid-range of the last `tenkan` bars."),
            ("kijun", "kijun", "Kijun-sen: mid-range of the last `kijun` bars."),
            ("senkou_a", "senkouA", "Senkou span A, (tenkan + kijun) / 2, shifted forward."),
            ("senkou_b", "senkouB", "Senkou span B, `senkouB`-bar mid-range, shifted forward."),
            ("chikou", "chikou", "Chikou span: the close (drawn `displacement` bars back)."),
        ),
        type_name="IchimokuIndicator",
        source="Goichi Hosoda (1969); StockCharts ChartSchool, Ichimoku Cloud",
    ),
    Indicator(
        # The kernel's `time` input: datetime64, or integer epoch milliseconds.
        name="ANCHORED_VWAP",
        description="VWAP of the typical price accumulated from the first bar starting at or "
        "after `anchor`; null before it.",
        inputs=_TIMES,
        params=(
            Param("anchor", None, description="Time the accumulation starts.", type_=datetime),
        ),
        outputs=("value",),
        function=anchored_vwap,
        lookback_fn=lambda p: 0,
        warmup_fn=lambda p: 0,
        anchor_fn=lambda p: _time(p, "anchor"),
        source="Brian Shannon, Maximum Trading Gains With Anchored VWAP (2023)",
    ),
    Indicator(
        # The kernel's `time` input: datetime64, or integer epoch milliseconds.
        name="VWAP_BANDS",
        description="VWAP +/- multiplier volume-weighted standard deviations of the typical price.",
        inputs=_TIMES,
        params=(
            Param("anchor", "session", choices=ANCHORS, description="SESSION or CUMULATIVE."),
            Param("multiplier", 1.0, 0.0, MAX_MULTIPLIER, description="Standard deviations."),
        ),
        outputs=("upperband", "middleband", "lowerband"),
        function=vwap_bands,
        lookback_fn=lambda p: 0,
        warmup_fn=lambda p: None,
        session_reset_fn=lambda p: p["anchor"] == "session",
        output_fields=(
            ("upperband", "upper", "VWAP + multiplier standard deviations."),
            ("middleband", "vwap", "The VWAP."),
            ("lowerband", "lower", "VWAP - multiplier standard deviations."),
        ),
        type_name="VwapBandsIndicator",
        source="TradingView Pine Script v5 reference, ta.vwap with stdev_mult",
    ),
)


# The descriptions are the public API's (the GraphQL schema shows them as they are); the order
# of this table is the order of the schema's `IndicatorSet` fields.

INDICATORS: dict[str, Indicator] = {
    spec.name: spec
    for spec in (
        Indicator(
            name="SMA",
            description="Simple moving average of the close.",
            inputs=("close",),
            params=(_period("timeperiod", 30, 1, _AVERAGED),),
            outputs=("value",),
            function=sma,
            lookback_fn=lambda p: _int(p, "timeperiod") - 1,
            warmup_fn=lambda p: _int(p, "timeperiod") - 1,
        ),
        Indicator(
            name="EMA",
            description="Exponential moving average, seeded with the SMA of the first bars.",
            inputs=("close",),
            params=(_period("timeperiod", 30, 1, _SMOOTHING),),
            outputs=("value",),
            function=ema,
            lookback_fn=lambda p: _int(p, "timeperiod") - 1,
            warmup_fn=lambda p: (
                _int(p, "timeperiod") - 1 + decay_bars(_ema_factor(_int(p, "timeperiod")))
            ),
        ),
        Indicator(
            name="WMA",
            description="Linearly weighted moving average.",
            inputs=("close",),
            params=(_period("timeperiod", 30, 1, _AVERAGED),),
            outputs=("value",),
            function=wma,
            lookback_fn=lambda p: _int(p, "timeperiod") - 1,
            warmup_fn=lambda p: _int(p, "timeperiod") - 1,
        ),
        Indicator(
            name="RSI",
            description="Relative strength index (Wilder smoothing), 0-100.",
            inputs=("close",),
            params=(_period("timeperiod", 14, 2, _SMOOTHING),),
            outputs=("value",),
            function=rsi,
            lookback_fn=lambda p: _int(p, "timeperiod"),
            warmup_fn=lambda p: (
                _int(p, "timeperiod") + decay_bars(_wilder_factor(_int(p, "timeperiod")))
            ),
        ),
        Indicator(
            name="ROC",
            description="Rate of change in percent over `period` bars.",
            inputs=("close",),
            params=(_period("timeperiod", 10, 1, "Bars back."),),
            outputs=("value",),
            function=roc,
            lookback_fn=lambda p: _int(p, "timeperiod"),
            warmup_fn=lambda p: _int(p, "timeperiod"),
        ),
        Indicator(
            name="ATR",
            description="Average true range (Wilder smoothing).",
            inputs=("high", "low", "close"),
            params=(_period("timeperiod", 14, 1, _SMOOTHING),),
            outputs=("value",),
            function=atr,
            lookback_fn=lambda p: _int(p, "timeperiod"),
            warmup_fn=lambda p: (
                _int(p, "timeperiod") + decay_bars(_wilder_factor(_int(p, "timeperiod")))
            ),
        ),
        Indicator(
            name="OBV",
            description="On-balance volume, accumulated over the whole stored history.",
            inputs=("close", "volume"),
            params=(),
            outputs=("value",),
            function=obv,
            lookback_fn=lambda p: 0,
            warmup_fn=lambda p: None,
        ),
        Indicator(
            # The kernel's `time` input: datetime64, or integer epoch milliseconds.
            name="VWAP",
            description="Volume-weighted average of the typical price (h+l+c)/3.",
            inputs=("high", "low", "close", "volume", "time"),
            params=(
                Param(
                    "anchor",
                    "session",
                    choices=ANCHORS,
                    description="SESSION (default) or CUMULATIVE.",
                ),
            ),
            outputs=("value",),
            function=vwap,
            lookback_fn=lambda p: 0,
            warmup_fn=lambda p: None,
            session_reset_fn=lambda p: p["anchor"] == "session",
        ),
        Indicator(
            name="MACD",
            description="Moving average convergence/divergence.",
            inputs=("close",),
            params=(
                _period("fastperiod", 12, 2, "Fast EMA period.", argument="fast"),
                _period("slowperiod", 26, 2, "Slow EMA period.", argument="slow"),
                _period("signalperiod", 9, 1, "Signal EMA period.", argument="signal"),
            ),
            outputs=("macd", "macdsignal", "macdhist"),
            function=macd,
            lookback_fn=_macd_lookback,
            warmup_fn=_macd_warmup,
            check_fn=_macd_check,
            output_fields=(
                ("macd", "macd", "Fast EMA minus slow EMA."),
                ("macdsignal", "signal", "EMA of the MACD line."),
                ("macdhist", "histogram", "MACD minus signal."),
            ),
            type_name="MacdIndicator",
        ),
        Indicator(
            name="BBANDS",
            description="Bollinger Bands around an SMA of the close.",
            inputs=("close",),
            params=(
                _period("timeperiod", 20, 2, "SMA period."),
                Param(
                    "nbdevup",
                    2.0,
                    0.0,
                    MAX_NBDEV,
                    description="Upper width in SDs.",
                    argument="nbdev_up",
                ),
                Param(
                    "nbdevdn",
                    2.0,
                    0.0,
                    MAX_NBDEV,
                    description="Lower width in SDs.",
                    argument="nbdev_down",
                ),
            ),
            outputs=("upperband", "middleband", "lowerband"),
            function=bbands,
            lookback_fn=lambda p: _int(p, "timeperiod") - 1,
            warmup_fn=lambda p: _int(p, "timeperiod") - 1,
            output_fields=(
                ("upperband", "upper", "Middle + nbdevUp standard devs."),
                ("middleband", "middle", "Simple moving average."),
                ("lowerband", "lower", "Middle - nbdevDown standard devs."),
            ),
            type_name="BandsIndicator",
        ),
        Indicator(
            name="STOCH",
            description="Slow stochastic oscillator (SMA smoothing).",
            inputs=("high", "low", "close"),
            params=(
                _period("fastk_period", 5, 1, "%K look-back.", argument="fast_k"),
                _period("slowk_period", 3, 1, "%K smoothing.", argument="slow_k"),
                _period("slowd_period", 3, 1, "%D smoothing.", argument="slow_d"),
            ),
            outputs=("slowk", "slowd"),
            function=stoch,
            lookback_fn=_stoch_lookback,
            warmup_fn=_stoch_lookback,
            output_fields=(
                ("slowk", "k", "Slow %K (0-100)."),
                ("slowd", "d", "Slow %D: moving average of %K."),
            ),
            type_name="StochIndicator",
        ),
        *_MORE,
    )
}


def get_indicator(name: str) -> Indicator:
    """The indicator called `name` (case-insensitive), or ValueError listing the known ones."""
    spec = INDICATORS.get(name.upper())
    if spec is None:
        raise ValueError(f"unknown indicator {name!r}; expected one of: {', '.join(INDICATORS)}")
    return spec


def describe() -> list[dict[str, Any]]:
    """Plain-data description of every indicator, e.g. for a GraphQL `indicators` query."""
    return [
        {
            "name": spec.name,
            "description": spec.description,
            "inputs": list(spec.inputs),
            "outputs": list(spec.outputs),
            "params": [
                {
                    "name": p.name,
                    "type": p.kind.__name__,
                    "default": p.default,
                    "minimum": p.minimum,
                    "maximum": p.maximum,
                    "choices": list(p.choices),
                    "description": p.description,
                    "argument": p.public_name,
                    "required": p.required,
                }
                for p in spec.params
            ],
        }
        for spec in INDICATORS.values()
    ]
