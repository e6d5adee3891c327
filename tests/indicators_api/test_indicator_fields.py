"""`IndicatorSet`'s fields come from the indicator registry: one entry there is one field here."""

# No `from __future__ import annotations`: the types below are local to a function.
from typing import Any

import numpy as np
import strawberry
from graphql import Undefined
from strawberry.utils.str_converters import to_camel_case

from graphql_api.types.indicators import LineIndicator, indicator_fields
from indicators import INDICATORS, Indicator, Param
from loaders.indicators import IndicatorResult

KAMA = Indicator(
    name="KAMA",
    description="Kaufman adaptive moving average.",
    inputs=("close",),
    params=(
        Param("timeperiod", 10, 2, 100, description="Efficiency window.", argument="period"),
        Param("fastlimit", 0.5, 0.0, 1.0, description="Fastest smoothing.", argument="fast_limit"),
        Param("mode", "close", choices=("close", "typical"), description="Price used."),
    ),
    outputs=("value",),
    function=lambda close, **params: np.asarray(close, dtype=float),
    lookback_fn=lambda p: int(p["timeperiod"]) - 1,
    warmup_fn=lambda p: int(p["timeperiod"]) - 1,
)


def _schema(registry: dict[str, Indicator], calls: list[tuple[str, dict[str, Any]]]) -> Any:
    @strawberry.type(description="Indicators.")
    @indicator_fields(registry)
    class IndicatorSet:
        async def _load(
            self, info: Any, spec: Indicator, params: dict[str, Any]
        ) -> IndicatorResult | None:
            calls.append((spec.name, spec.validate(params)))
            return None

    @strawberry.type
    class Query:
        @strawberry.field
        def indicators(self) -> IndicatorSet:
            return IndicatorSet()

    return strawberry.Schema(query=Query, types=[LineIndicator])


def test_a_registered_indicator_becomes_a_field_with_its_parameters() -> None:
    registry = {**INDICATORS, "KAMA": KAMA}
    calls: list[tuple[str, dict[str, Any]]] = []
    schema = _schema(registry, calls)

    printed = str(schema)
    assert (
        '''  """Kaufman adaptive moving average."""
  kama(
    """Efficiency window."""
    period: Int! = 10

    """Fastest smoothing."""
    fastLimit: Float! = 0.5

    """Price used."""
    mode: KamaMode! = CLOSE
  ): LineIndicator!'''
        in printed
    )
    assert "enum KamaMode" in printed
    # The registry's indicators are all there, in its order, and nothing else.
    names = [f.name for f in schema.get_type_by_name("IndicatorSet").fields]
    assert names == [spec.name.lower() for spec in registry.values()]


async def test_arguments_reach_the_registry_under_talib_names() -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    schema = _schema({**INDICATORS, "KAMA": KAMA}, calls)
    query = "{ indicators { kama(period: 20, mode: TYPICAL) { value validFrom } macd { macd } } }"
    result = await schema.execute(query)
    assert result.errors is None
    assert result.data == {
        "indicators": {"kama": {"value": [], "validFrom": None}, "macd": {"macd": []}}
    }
    assert calls == [
        ("KAMA", {"timeperiod": 20, "fastlimit": 0.5, "mode": "typical"}),
        ("MACD", {"fastperiod": 12, "slowperiod": 26, "signalperiod": 9}),
    ]


def test_the_served_schema_shows_the_registry() -> None:
    from graphql_api.schema import schema

    fields = schema._schema.type_map["IndicatorSet"].fields  # type: ignore[attr-defined]
    public = {spec.name: to_camel_case(spec.name.lower()) for spec in INDICATORS.values()}
    assert [name for name in fields if name not in ("interval", "time")] == list(public.values())
    for spec in INDICATORS.values():
        field = fields[public[spec.name]]
        assert field.description == spec.description
        assert len(field.args) == len(spec.params)
        for param, (name, arg) in zip(spec.params, field.args.items(), strict=True):
            assert arg.description == param.description, (spec.name, name)
            default = arg.default_value
            if param.required:
                assert default is Undefined and str(arg.type).endswith("!"), (spec.name, name)
                continue
            assert getattr(default, "value", default) == param.default, (spec.name, name)
        # Several outputs: a generated type whose fields are the registry's output fields.
        result_type = field.type.of_type
        if spec.output_fields:
            assert result_type.name == spec.type_name
            names = [name for name in result_type.fields if name not in ("time", "validFrom")]
            assert names == [public_name for _, public_name, _ in spec.output_fields]
            for _, public_name, text in spec.output_fields:
                assert result_type.fields[public_name].description == text
        else:
            assert result_type.name == "LineIndicator"
