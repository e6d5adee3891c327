"""Technical indicators on a symbol's bars, computed on the server with TA-Lib's conventions."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

import strawberry

from core.errors import BadUserInput
from core.intervals import Interval as CoreInterval
from graphql_api.context import Info
from graphql_api.types.common import Interval
from indicators import get_indicator
from loaders.indicators import IndicatorKey, IndicatorResult
from loaders.rows import StoredSeries


@strawberry.type(description="One indicator value at one bar.")
class IndicatorPoint:
    time: datetime = strawberry.field(description="Start of the bar.")
    value: float | None = strawberry.field(description="The value; null while warming up.")


@strawberry.type(description="A single-line indicator over the requested bars, as columns.")
class LineIndicator:
    time: list[datetime] = strawberry.field(description="Bar start times, oldest first.")
    value: list[float | None] = strawberry.field(
        description="Values aligned with `time`; null where the indicator is not yet defined."
    )
    valid_from: datetime | None = strawberry.field(
        description="First bar with a value (null if none): earlier bars lack history."
    )

    @strawberry.field(description="The same values as (time, value) pairs.")
    def points(self) -> list[IndicatorPoint]:
        return [IndicatorPoint(time=t, value=v) for t, v in zip(self.time, self.value, strict=True)]


@strawberry.type(description="MACD: line, signal and histogram, as columns.")
class MacdIndicator:
    time: list[datetime] = strawberry.field(description="Bar start times, oldest first.")
    macd: list[float | None] = strawberry.field(description="Fast EMA minus slow EMA.")
    signal: list[float | None] = strawberry.field(description="EMA of the MACD line.")
    histogram: list[float | None] = strawberry.field(description="MACD minus signal.")
    valid_from: datetime | None = strawberry.field(description="First bar with all values.")


@strawberry.type(description="Bollinger Bands (population standard deviation), as columns.")
class BandsIndicator:
    time: list[datetime] = strawberry.field(description="Bar start times, oldest first.")
    upper: list[float | None] = strawberry.field(description="Middle + nbdevUp standard devs.")
    middle: list[float | None] = strawberry.field(description="Simple moving average.")
    lower: list[float | None] = strawberry.field(description="Middle - nbdevDown standard devs.")
    valid_from: datetime | None = strawberry.field(description="First bar with all values.")


@strawberry.type(description="Slow stochastic oscillator %K and %D, as columns.")
class StochIndicator:
    time: list[datetime] = strawberry.field(description="Bar start times, oldest first.")
    k: list[float | None] = strawberry.field(description="Slow %K (0-100).")
    d: list[float | None] = strawberry.field(description="Slow %D: moving average of %K.")
    valid_from: datetime | None = strawberry.field(description="First bar with all values.")


@strawberry.enum(description="Where VWAP accumulation restarts.")
class VwapAnchor(enum.Enum):
    SESSION = strawberry.enum_value("session", description="At 00:00 UTC every day.")
    CUMULATIVE = strawberry.enum_value("cumulative", description="Never: the whole history.")


#: TA-Lib's parameter names and the GraphQL arguments that carry them, for error messages.
_ARGUMENT_NAMES = {
    "fastk_period": "fastK",
    "slowk_period": "slowK",
    "slowd_period": "slowD",
    "fastperiod": "fast",
    "slowperiod": "slow",
    "signalperiod": "signal",
    "timeperiod": "period",
    "nbdevup": "nbdevUp",
    "nbdevdn": "nbdevDown",
}


def _empty_line() -> LineIndicator:
    return LineIndicator(time=[], value=[], valid_from=None)


@strawberry.type(
    description="Indicators over a symbol's bars at one interval, for bars starting in "
    "[from, to). Each value equals the value computed over the symbol's whole stored history "
    "(the server reads the warm-up before `from`). Parameters are TA-Lib's, with its defaults."
)
class IndicatorSet:
    interval: Interval = strawberry.field(description="The bar interval the indicators use.")
    symbol_id: strawberry.Private[int]
    base: strawberry.Private[StoredSeries | None]
    lo: strawberry.Private[datetime]
    hi: strawberry.Private[datetime]

    async def _load(self, info: Info, name: str, params: dict[str, Any]) -> IndicatorResult | None:
        try:
            checked = get_indicator(name).validate(params)
        except ValueError as exc:
            message = str(exc)
            for talib_name, ours in _ARGUMENT_NAMES.items():
                message = message.replace(talib_name, ours)
            raise BadUserInput(f"{name}: {message}") from None
        if self.base is None:
            return None
        key = IndicatorKey(
            self.symbol_id,
            self.base.timeframe,
            CoreInterval(self.interval.value),
            self.lo,
            self.hi,
            self.base.version,
            name,
            tuple(sorted(checked.items())),
        )
        return await info.context.loaders.indicators.load(key)

    async def _line(self, info: Info, name: str, params: dict[str, Any]) -> LineIndicator:
        result = await self._load(info, name, params)
        if result is None:
            return _empty_line()
        return LineIndicator(
            time=result.time, value=result.outputs["value"], valid_from=result.valid_from
        )

    @strawberry.field(description="Simple moving average of the close.")
    async def sma(
        self,
        info: Info,
        period: Annotated[int, strawberry.argument(description="Bars averaged.")] = 30,
    ) -> LineIndicator:
        return await self._line(info, "SMA", {"timeperiod": period})

    @strawberry.field(
        description="Exponential moving average, seeded with the SMA of the first bars."
    )
    async def ema(
        self,
        info: Info,
        period: Annotated[int, strawberry.argument(description="Smoothing period.")] = 30,
    ) -> LineIndicator:
        return await self._line(info, "EMA", {"timeperiod": period})

    @strawberry.field(description="Linearly weighted moving average.")
    async def wma(
        self,
        info: Info,
        period: Annotated[int, strawberry.argument(description="Bars averaged.")] = 30,
    ) -> LineIndicator:
        return await self._line(info, "WMA", {"timeperiod": period})

    @strawberry.field(description="Relative strength index (Wilder smoothing), 0-100.")
    async def rsi(
        self,
        info: Info,
        period: Annotated[int, strawberry.argument(description="Smoothing period.")] = 14,
    ) -> LineIndicator:
        return await self._line(info, "RSI", {"timeperiod": period})

    @strawberry.field(description="Rate of change in percent over `period` bars.")
    async def roc(
        self,
        info: Info,
        period: Annotated[int, strawberry.argument(description="Bars back.")] = 10,
    ) -> LineIndicator:
        return await self._line(info, "ROC", {"timeperiod": period})

    @strawberry.field(description="Average true range (Wilder smoothing).")
    async def atr(
        self,
        info: Info,
        period: Annotated[int, strawberry.argument(description="Smoothing period.")] = 14,
    ) -> LineIndicator:
        return await self._line(info, "ATR", {"timeperiod": period})

    @strawberry.field(description="On-balance volume, accumulated over the whole stored history.")
    async def obv(self, info: Info) -> LineIndicator:
        return await self._line(info, "OBV", {})

    @strawberry.field(description="Volume-weighted average of the typical price (h+l+c)/3.")
    async def vwap(
        self,
        info: Info,
        anchor: Annotated[
            VwapAnchor, strawberry.argument(description="SESSION (default) or CUMULATIVE.")
        ] = VwapAnchor.SESSION,
    ) -> LineIndicator:
        return await self._line(info, "VWAP", {"anchor": anchor.value})

    @strawberry.field(description="Moving average convergence/divergence.")
    async def macd(
        self,
        info: Info,
        fast: Annotated[int, strawberry.argument(description="Fast EMA period.")] = 12,
        slow: Annotated[int, strawberry.argument(description="Slow EMA period.")] = 26,
        signal: Annotated[int, strawberry.argument(description="Signal EMA period.")] = 9,
    ) -> MacdIndicator:
        params = {"fastperiod": fast, "slowperiod": slow, "signalperiod": signal}
        result = await self._load(info, "MACD", params)
        if result is None:
            return MacdIndicator(time=[], macd=[], signal=[], histogram=[], valid_from=None)
        out = result.outputs
        return MacdIndicator(
            time=result.time,
            macd=out["macd"],
            signal=out["macdsignal"],
            histogram=out["macdhist"],
            valid_from=result.valid_from,
        )

    @strawberry.field(description="Bollinger Bands around an SMA of the close.")
    async def bbands(
        self,
        info: Info,
        period: Annotated[int, strawberry.argument(description="SMA period.")] = 20,
        nbdev_up: Annotated[float, strawberry.argument(description="Upper width in SDs.")] = 2.0,
        nbdev_down: Annotated[float, strawberry.argument(description="Lower width in SDs.")] = 2.0,
    ) -> BandsIndicator:
        params = {"timeperiod": period, "nbdevup": nbdev_up, "nbdevdn": nbdev_down}
        result = await self._load(info, "BBANDS", params)
        if result is None:
            return BandsIndicator(time=[], upper=[], middle=[], lower=[], valid_from=None)
        out = result.outputs
        return BandsIndicator(
            time=result.time,
            upper=out["upperband"],
            middle=out["middleband"],
            lower=out["lowerband"],
            valid_from=result.valid_from,
        )

    @strawberry.field(description="Slow stochastic oscillator (SMA smoothing).")
    async def stoch(
        self,
        info: Info,
        fast_k: Annotated[int, strawberry.argument(description="%K look-back.")] = 5,
        slow_k: Annotated[int, strawberry.argument(description="%K smoothing.")] = 3,
        slow_d: Annotated[int, strawberry.argument(description="%D smoothing.")] = 3,
    ) -> StochIndicator:
        params = {"fastk_period": fast_k, "slowk_period": slow_k, "slowd_period": slow_d}
        result = await self._load(info, "STOCH", params)
        if result is None:
            return StochIndicator(time=[], k=[], d=[], valid_from=None)
        out = result.outputs
        return StochIndicator(
            time=result.time, k=out["slowk"], d=out["slowd"], valid_from=result.valid_from
        )
