"""Technical indicators on a symbol's bars, computed on the server with TA-Lib's conventions."""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry.types.field import StrawberryField
from strawberry.utils.str_converters import capitalize_first, to_camel_case

from core.adjustments import Adjust
from core.errors import BadUserInput
from core.intervals import Interval as CoreInterval
from graphql_api.bar_queries import Rule
from graphql_api.context import Info
from graphql_api.types.common import Interval
from indicators import INDICATORS, Indicator, Param
from loaders.buckets import NO_SPAN
from loaders.indicators import TIME_ONLY, IndicatorKey, IndicatorResult
from loaders.rows import StoredSeries

#: Symbol.indicators' `significantDigits` argument.
SIGNIFICANT_DIGITS = strawberry.argument(
    description="Round every value to this many significant digits (1-15) for a smaller "
    "response; null (the default) keeps full double precision."
)
MAX_DIGITS = 15

#: The per-indicator `time` column: kept so that released clients keep working.
_TIME_DOC = (
    "Bar start times, oldest first. Kept for compatibility: `IndicatorSet.time` carries the "
    "same column once for every indicator selected."
)


@strawberry.type(description="One indicator value at one bar.")
class IndicatorPoint:
    time: datetime = strawberry.field(description="Start of the bar.")
    value: float | None = strawberry.field(description="The value; null while warming up.")


@strawberry.type(description="A single-line indicator over the requested bars, as columns.")
class LineIndicator:
    time: list[datetime] = strawberry.field(description=_TIME_DOC)
    value: list[float | None] = strawberry.field(
        description="Values aligned with `time`; null where the indicator is not yet defined."
    )
    valid_from: datetime | None = strawberry.field(
        description="First bar with a value (null if none): earlier bars lack history."
    )

    @strawberry.field(description="The same values as (time, value) pairs.")
    def points(self) -> list[IndicatorPoint]:
        return [IndicatorPoint(time=t, value=v) for t, v in zip(self.time, self.value, strict=True)]


@strawberry.enum(description="Where VWAP accumulation restarts.")
class VwapAnchor(enum.Enum):
    SESSION = strawberry.enum_value("session", description="At 00:00 UTC every day.")
    CUMULATIVE = strawberry.enum_value("cumulative", description="Never: the whole history.")


@dataclass(frozen=True)
class _Output:
    """A GraphQL result type and, for each of its series attributes, the registry output."""

    type: type
    fields: Mapping[str, str]

    def build(self, result: IndicatorResult | None) -> Any:
        if result is None:
            return self.type(time=[], valid_from=None, **{name: [] for name in self.fields})
        series = {name: result.outputs[output] for name, output in self.fields.items()}
        return self.type(time=result.time, valid_from=result.valid_from, **series)


_LINE = _Output(LineIndicator, {"value": "value"})


def _result_type(spec: Indicator) -> _Output:
    """The columns type of an indicator with several outputs, from its registry entry."""
    annotations: dict[str, Any] = {"time": list[datetime]}
    namespace: dict[str, Any] = {"time": strawberry.field(description=_TIME_DOC)}
    fields = {}
    for output, public, description in spec.output_fields:
        attribute = f"out_{output}"
        annotations[attribute] = list[float | None]
        namespace[attribute] = strawberry.field(name=public, description=description)
        fields[attribute] = output
    annotations["valid_from"] = datetime | None
    namespace["valid_from"] = strawberry.field(description="First bar with all values.")
    namespace["__annotations__"] = annotations
    cls = type(spec.type_name, (), namespace)
    description = f"{spec.description} Columns aligned with `time`."
    return _Output(strawberry.type(cls, description=description), fields)


#: Result types of the indicators with several outputs, generated once from the registry.
_OUTPUTS = {spec.name: _result_type(spec) for spec in INDICATORS.values() if spec.output_fields}

#: Enums that describe each of their values; other choice parameters get a generated enum.
_ENUMS: dict[tuple[str, str], type[enum.Enum]] = {
    ("VWAP", "anchor"): VwapAnchor,
    ("VWAP_BANDS", "anchor"): VwapAnchor,
}


def _output(spec: Indicator) -> _Output:
    if spec.name in _OUTPUTS:
        return _OUTPUTS[spec.name]
    if spec.outputs == ("value",):
        return _LINE
    if spec.output_fields:
        return _result_type(spec)
    raise TypeError(f"{spec.name} has outputs {spec.outputs}: give it output_fields")


def _argument(spec: Indicator, param: Param) -> tuple[Any, Any]:
    """The GraphQL argument's type and default (`inspect.Parameter.empty`: required)."""
    if param.required:
        return param.kind, inspect.Parameter.empty
    if not param.choices:
        return param.kind, param.default
    choices = _ENUMS.get((spec.name, param.name))
    if choices is None:
        name = capitalize_first(to_camel_case(spec.name.lower())) + capitalize_first(
            to_camel_case(param.public_name)
        )
        generated = enum.Enum(name, {c.upper(): c for c in param.choices})  # type: ignore[misc]
        choices = strawberry.enum(generated, description=param.description)
    return choices, choices(param.default)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def field_name(spec: Indicator) -> str:
    """The `IndicatorSet` field's Python name (GraphQL's: `graphql_field_name`)."""
    return spec.name.lower()


def graphql_field_name(spec: Indicator) -> str:
    """The `IndicatorSet` field's GraphQL name: `plus_di` becomes `plusDi`."""
    return to_camel_case(field_name(spec))


def _field(spec: Indicator) -> StrawberryField:
    """`spec` as a field whose arguments are its parameters (public names, defaults, texts)."""
    output = _output(spec)
    public = {p.public_name: p.name for p in spec.params}

    async def resolve(self: Any, info: Info, **arguments: Any) -> Any:
        params = {public[name]: _plain(value) for name, value in arguments.items()}
        return output.build(await self._load(info, spec, params))

    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("info", keyword, annotation=Info),
    ]
    for param in spec.params:
        kind, default = _argument(spec, param)
        described = strawberry.argument(description=param.description)
        annotation = Annotated[kind, described]  # type: ignore[valid-type]
        parameters.append(
            inspect.Parameter(param.public_name, keyword, default=default, annotation=annotation)
        )
    # Strawberry reads the arguments from the signature and their types from __annotations__.
    resolve.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        parameters, return_annotation=output.type
    )
    resolve.__annotations__ = {p.name: p.annotation for p in parameters[1:]}
    resolve.__annotations__["return"] = output.type
    resolve.__name__ = resolve.__qualname__ = field_name(spec)
    return strawberry.field(resolver=resolve, description=spec.description)


_T = TypeVar("_T")


def indicator_fields(registry: Mapping[str, Indicator]) -> Callable[[type[_T]], type[_T]]:
    """Adds one field per indicator in `registry`, in its order, before `strawberry.type` runs.

    The class supplies `_load(info, spec, params)`.
    """

    def decorate(cls: type[_T]) -> type[_T]:
        for spec in registry.values():
            setattr(cls, field_name(spec), _field(spec))
        return cls

    return decorate


def _public_names(message: str, spec: Indicator) -> str:
    """A registry message with TA-Lib's parameter names replaced by the arguments' names."""
    for param in spec.params:
        public = to_camel_case(param.public_name)
        message = re.sub(rf"\b{re.escape(param.name)}\b", public, message)
    return message


@strawberry.type(
    description="Indicators over a symbol's bars at one interval, for bars starting in "
    "[from, to). Each value equals the value computed over the symbol's whole stored history "
    "(the server reads the warm-up before `from`). Parameters are TA-Lib's, with its defaults."
)
@indicator_fields(INDICATORS)
class IndicatorSet:
    interval: Interval = strawberry.field(description="The bar interval the indicators use.")
    symbol_id: strawberry.Private[int]
    base: strawberry.Private[StoredSeries | None]
    lo: strawberry.Private[datetime]
    hi: strawberry.Private[datetime]
    rule: strawberry.Private[Rule | None] = None  # bucketing and calendar (bar_queries)
    adjust: strawberry.Private[Adjust | None] = None  # corporate actions applied (None: raw)
    digits: strawberry.Private[int | None] = None

    async def _load(
        self, info: Info, spec: Indicator, params: dict[str, Any]
    ) -> IndicatorResult | None:
        try:
            checked = spec.validate(params)
        except ValueError as exc:
            raise BadUserInput(f"{spec.name}: {_public_names(str(exc), spec)}") from None
        if self.digits is not None and not 1 <= self.digits <= MAX_DIGITS:
            raise BadUserInput(
                f"significantDigits must be between 1 and {MAX_DIGITS}, got {self.digits}"
            )
        if self.base is None:
            return None
        key = IndicatorKey(
            self.symbol_id,
            self.base.timeframe,
            CoreInterval(self.interval.value),
            self.lo,
            self.hi,
            self.base.version,
            spec.name,
            tuple(sorted(checked.items())),
            self.digits,
            None if self.rule is None else self.rule.bucketing,
            NO_SPAN if self.rule is None else self.rule.span,
            self.adjust,
        )
        return await info.context.loaders.indicators.load(key)

    @strawberry.field(
        description="Bar start times, oldest first: the one time column that every indicator "
        "selected here is aligned with (read with them, so it costs no extra query)."
    )
    async def time(self, info: Info) -> list[datetime]:
        if self.base is None:
            return []
        key = IndicatorKey(
            self.symbol_id,
            self.base.timeframe,
            CoreInterval(self.interval.value),
            self.lo,
            self.hi,
            self.base.version,
            TIME_ONLY,
            (),
        )
        result = await info.context.loaders.indicators.load(key)
        return result.time
