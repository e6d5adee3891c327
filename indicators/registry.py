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
from typing import Any

from numpy.typing import ArrayLike

from indicators._common import MAX_PERIOD, FloatArray, check_float, check_int
from indicators.momentum import macd, roc, rsi, stoch
from indicators.moving import ema, sma, wma
from indicators.volatility import MAX_NBDEV, atr, bbands
from indicators.volume import ANCHORS, obv, vwap

#: The seed's remaining influence that the warm-up of recursive indicators aims for.
DECAY = 1e-15

ParamValue = int | float | str
Params = dict[str, ParamValue]


@dataclass(frozen=True)
class Param:
    """One parameter: its type, default and allowed values."""

    name: str
    default: ParamValue
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    description: str = ""
    #: The name callers outside Python see (snake_case; the GraphQL API camel-cases it).
    #: TA-Lib's names (`timeperiod`, `nbdevup`) stay the keyword arguments of the kernels.
    argument: str = ""

    @property
    def public_name(self) -> str:
        """`argument`, or the TA-Lib name when no other is given."""
        return self.argument or self.name

    @property
    def kind(self) -> type:
        """int, float or str, from the default."""
        return type(self.default)

    def check(self, value: object) -> ParamValue:
        """The value, normalised, or ValueError naming this parameter."""
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

    def defaults(self) -> Params:
        """Every parameter at its default."""
        return {p.name: p.default for p in self.params}

    def validate(self, params: Mapping[str, object] | None = None) -> Params:
        """Parameters with defaults filled in; ValueError naming the offending parameter."""
        given = dict(params or {})
        known = {p.name for p in self.params}
        unknown = sorted(set(given) - known)
        if unknown:
            expected = ", ".join(p.name for p in self.params) or "none"
            raise ValueError(
                f"unknown parameter {unknown[0]!r} for {self.name}; expected: {expected}"
            )
        result: Params = {}
        for p in self.params:
            result[p.name] = p.check(given[p.name]) if p.name in given else p.default
        if self.check_fn is not None:
            self.check_fn(result)
        return result

    def lookback(self, params: Mapping[str, object] | None = None) -> int:
        """Number of leading NaN outputs on NaN-free input (TA-Lib's lookback)."""
        return self.lookback_fn(self.validate(params))

    def warmup_bars(self, params: Mapping[str, object] | None = None) -> int | None:
        """Bars to read before a range start so the range matches a whole-history computation."""
        return self.warmup_fn(self.validate(params))

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


def _int(params: Params, name: str) -> int:
    return int(params[name])


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


# The descriptions are the public API's (the GraphQL schema shows them as they are); the order
# of this table is the order of the schema's `IndicatorSet` fields.
_AVERAGED = "Bars averaged."
_SMOOTHING = "Smoothing period."

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
        ),
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
                }
                for p in spec.params
            ],
        }
        for spec in INDICATORS.values()
    ]
