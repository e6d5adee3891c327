"""The types of `indicatorUpdates`: which indicators to follow, and the values pushed.

The indicator names and their parameters come from the registry (indicators/registry.py),
named as on `IndicatorSet`: the enum value is the registry name, the parameters are the
arguments of the `IndicatorSet` field of the same indicator, with the same defaults.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.utils.str_converters import to_camel_case

from core.errors import BadUserInput
from graphql_api.live.indicators import IndicatorBar, SpecKey
from graphql_api.types.common import Interval
from graphql_api.types.indicators import _public_names, graphql_field_name
from indicators import INDICATORS, Indicator

_NAMES: type[enum.Enum] = enum.Enum(  # type: ignore[misc]
    "IndicatorName",
    {
        name: strawberry.enum_value(name, description=spec.description)
        for name, spec in INDICATORS.items()
    },
)
IndicatorName = strawberry.enum(
    _NAMES,
    description="An indicator of the registry (the `IndicatorSet` field of the same name in "
    "camel case: `PLUS_DI` is `plusDi`).",
)


@strawberry.input(description="One indicator to follow, with its parameters.")
class LiveIndicator:
    name: IndicatorName = strawberry.field(  # type: ignore[valid-type]
        description="Which indicator."
    )
    params: JSON | None = strawberry.field(
        default=None,
        description="Its parameters as an object keyed by the arguments of its `IndicatorSet` "
        'field, e.g. `{"period": 14}` for RSI; missing ones take the same defaults. Times '
        'are ISO 8601 with a UTC offset; choices are the enum value names (`"SESSION"`).',
    )
    label: str | None = strawberry.field(
        default=None,
        description="The name its values carry in `IndicatorUpdate.values` (default: its "
        "`IndicatorSet` field name, e.g. `rsi`); unique within the subscription.",
    )


@strawberry.type(description="One output of one followed indicator at one bar.")
class IndicatorValue:
    label: str = strawberry.field(description="The indicator's label (`LiveIndicator.label`).")
    indicator: str = strawberry.field(description="The indicator's registry name, e.g. `MACD`.")
    output: str = strawberry.field(
        description="Which output: `value` for single-line indicators, else the field name on "
        "its `IndicatorSet` result type (e.g. `macd`, `signal`, `hist`)."
    )
    value: float | None = strawberry.field(
        description="The value; null where `Symbol.indicators` has none (warm-up)."
    )


@strawberry.type(
    description="The indicator values of one bar of a subscribed symbol, computed over the "
    "bars as stored at `version`: equal to what `Symbol.indicators` returns for that bar "
    "(same warm-up rules, within 1e-12 + 1e-9 x the magnitude of the values)."
)
class IndicatorUpdate:
    ticker: str = strawberry.field(description="Ticker of the symbol.")
    interval: Interval = strawberry.field(description="Interval of the bar (as subscribed).")
    time: datetime = strawberry.field(description="Start of the bar.")
    closed: bool = strawberry.field(
        description="False while the bar is forming (its interval is not yet filled by stored "
        "bars), as `Bar.closed`."
    )
    version: float = strawberry.field(
        description="Data version of the stored series the values were computed from (an "
        "integer, as on `BarUpdate`)."
    )
    replayed: bool = strawberry.field(
        description="True for the values sent when the subscription starts (the newest bar's, "
        "or with `since` every bar's from it on), false for live updates."
    )
    recomputed_from: datetime | None = strawberry.field(
        description="Set when an older bar was revised: the start of that bar. The values of "
        "it and of every later bar are sent again, recomputed; null for a new or forming bar."
    )
    values: list[IndicatorValue] = strawberry.field(
        description="Every output of every followed indicator, in the order asked for."
    )


@dataclass(frozen=True)
class Followed:
    """One indicator of a subscription: its label, state key and outputs (registry name,
    public name)."""

    label: str
    key: SpecKey
    outputs: tuple[tuple[str, str], ...]


def _outputs(spec: Indicator) -> tuple[tuple[str, str], ...]:
    if spec.output_fields:
        return tuple((output, public) for output, public, _ in spec.output_fields)
    return tuple((name, name) for name in spec.outputs)


def _param_value(spec: Indicator, name: str, value: Any) -> Any:
    param = next(p for p in spec.params if p.name == name)
    if param.kind is datetime and isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value  # the registry's check names the parameter
    if param.choices and isinstance(value, str) and value.lower() in param.choices:
        return value.lower()
    return value


def followed(requests: list[LiveIndicator], limit: int) -> list[Followed]:
    """The subscription's indicators, validated; BadUserInput naming `indicators`."""
    if not requests:
        raise BadUserInput("`indicators` must name at least one indicator", argument="indicators")
    if len(requests) > limit:
        raise BadUserInput(
            f"at most {limit} indicators per subscription, got {len(requests)}",
            argument="indicators",
        )
    out: list[Followed] = []
    for i, request in enumerate(requests):
        chosen: enum.Enum = request.name
        spec = INDICATORS[chosen.value]
        where = f"indicators[{i}] ({spec.name})"
        given: object = request.params if request.params is not None else {}
        if not isinstance(given, dict):
            raise BadUserInput(f"{where}: `params` must be an object", argument="indicators")
        public = {to_camel_case(p.public_name): p.name for p in spec.params}
        unknown = sorted(set(given) - set(public))
        if unknown:
            expected = ", ".join(public) or "none"
            raise BadUserInput(
                f"{where}: unknown parameter {unknown[0]!r}; expected: {expected}",
                argument="indicators",
            )
        params = {public[k]: _param_value(spec, public[k], v) for k, v in given.items()}
        try:
            checked = spec.validate(params)
        except ValueError as exc:
            message = _public_names(str(exc), spec)
            raise BadUserInput(f"{where}: {message}", argument="indicators") from None
        label = request.label or graphql_field_name(spec)
        out.append(Followed(label, (spec.name, tuple(sorted(checked.items()))), _outputs(spec)))
    labels = [f.label for f in out]
    duplicate = next((x for x in labels if labels.count(x) > 1), None)
    if duplicate is not None:
        raise BadUserInput(
            f"label {duplicate!r} names two indicators: give them distinct `label`s",
            argument="indicators",
        )
    return out


def indicator_update(item: IndicatorBar, ticker: str, wanted: list[Followed]) -> IndicatorUpdate:
    """The GraphQL object of one bar's values, with the subscription's indicators."""
    values = []
    for f in wanted:
        outputs = item.values.get(f.key, {})
        for output, public in f.outputs:
            values.append(
                IndicatorValue(
                    label=f.label, indicator=f.key[0], output=public, value=outputs.get(output)
                )
            )
    return IndicatorUpdate(
        ticker=ticker,
        interval=Interval.of(item.interval),
        time=item.time,
        closed=item.closed,
        version=float(item.version),
        replayed=item.replayed,
        recomputed_from=item.recomputed_from,
        values=values,
    )
