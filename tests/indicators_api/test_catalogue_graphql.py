"""The catalogue over GraphQL: values equal TA-Lib over the whole stored history from any
`from`, one shared `time` column, anchored VWAP reads from its anchor, errors name arguments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib
import talib.abstract

from tests.conftest import GraphQL
from tests.indicators_api.test_indicators_graphql import _assert_matches
from workers.demo import daily_stocks, synthetic_minutes

# (GraphQL selection, TA-Lib function, TA-Lib parameters, outputs in TA-Lib's order)
FIELDS: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
    ("dema(period: 10) { value }", "DEMA", {"timeperiod": 10}, ("dema.value",)),
    ("tema { value }", "TEMA", {}, ("tema.value",)),
    ("trima { value }", "TRIMA", {}, ("trima.value",)),
    ("kama(period: 10) { value }", "KAMA", {"timeperiod": 10}, ("kama.value",)),
    ("t3(vFactor: 0.5) { value }", "T3", {"vfactor": 0.5}, ("t3.value",)),
    ("mom { value }", "MOM", {}, ("mom.value",)),
    ("cmo { value }", "CMO", {}, ("cmo.value",)),
    ("apo(maType: 0) { value }", "APO", {"matype": 0}, ("apo.value",)),
    ("ppo { value }", "PPO", {}, ("ppo.value",)),
    ("trix(period: 15) { value }", "TRIX", {"timeperiod": 15}, ("trix.value",)),
    ("stochf { k d }", "STOCHF", {}, ("stochf.k", "stochf.d")),
    ("stochrsi { k d }", "STOCHRSI", {}, ("stochrsi.k", "stochrsi.d")),
    ("willr { value }", "WILLR", {}, ("willr.value",)),
    ("cci { value }", "CCI", {}, ("cci.value",)),
    ("mfi { value }", "MFI", {}, ("mfi.value",)),
    ("adx { value }", "ADX", {}, ("adx.value",)),
    ("adxr { value }", "ADXR", {}, ("adxr.value",)),
    ("dx { value }", "DX", {}, ("dx.value",)),
    ("plusDi { value }", "PLUS_DI", {}, ("plusDi.value",)),
    ("minusDi { value }", "MINUS_DI", {}, ("minusDi.value",)),
    ("aroon { down up }", "AROON", {}, ("aroon.down", "aroon.up")),
    ("aroonosc { value }", "AROONOSC", {}, ("aroonosc.value",)),
    ("ultosc { value }", "ULTOSC", {}, ("ultosc.value",)),
    ("bop { value }", "BOP", {}, ("bop.value",)),
    ("natr { value }", "NATR", {}, ("natr.value",)),
    ("trange { value }", "TRANGE", {}, ("trange.value",)),
    (
        "stddev(period: 20, nbdev: 2) { value }",
        "STDDEV",
        {"timeperiod": 20, "nbdev": 2.0},
        ("stddev.value",),
    ),
    ("var { value }", "VAR", {}, ("var.value",)),
    ("sar { value }", "SAR", {}, ("sar.value",)),
    ("ad { value }", "AD", {}, ("ad.value",)),
    ("adosc { value }", "ADOSC", {}, ("adosc.value",)),
    ("linearreg { value }", "LINEARREG", {}, ("linearreg.value",)),
    ("linearregSlope { value }", "LINEARREG_SLOPE", {}, ("linearregSlope.value",)),
    ("midpoint { value }", "MIDPOINT", {}, ("midpoint.value",)),
    ("midprice { value }", "MIDPRICE", {}, ("midprice.value",)),
]


def _aapl() -> pd.DataFrame:
    stocks = daily_stocks()
    return stocks[stocks.ticker == "AAPL"].sort_values("ts").reset_index(drop=True)


@pytest.mark.parametrize("start", ["2000-03-01", "2004-11-15", "2008-09-15", "2013-01-02"])
def test_catalogue_equals_whole_history_talib_from_any_start(gql: GraphQL, start: str) -> None:
    end = (pd.Timestamp(start) + pd.Timedelta(days=150)).strftime("%Y-%m-%d")
    selection = " ".join(f[0] for f in FIELDS)
    body = gql(
        f'{{ symbol(ticker: "AAPL") {{ indicators(from: "{start}T00:00:00Z", '
        f'to: "{end}T00:00:00Z") {{ time {selection} }} }} }}'
    )
    assert "errors" not in body, body
    got = body["data"]["symbol"]["indicators"]
    aapl = _aapl()
    ts = aapl.ts
    in_range = (
        (ts >= pd.Timestamp(start, tz="UTC")) & (ts < pd.Timestamp(end, tz="UTC"))
    ).to_numpy()
    assert [datetime.fromisoformat(t) for t in got["time"]] == list(ts[in_range].dt.to_pydatetime())
    inputs = {k: aapl[k].to_numpy(float) for k in ("open", "high", "low", "close", "volume")}
    for _, name, params, paths in FIELDS:
        ref = talib.abstract.Function(name)(inputs, **params)
        refs = ref if isinstance(ref, list) else [ref]
        for path, r in zip(paths, refs, strict=True):
            field, output = path.split(".")
            _assert_matches(got[field][output], r[in_range], f"{path} from {start}")


def test_shared_time_equals_each_indicators_time(gql: GraphQL) -> None:
    body = gql(
        '{ symbol(ticker: "IBM") { indicators(from: "2010-01-04T00:00:00Z") { time '
        "sma { time } aroon { time } ichimoku { time senkouA } } } }"
    )
    assert "errors" not in body, body
    ind = body["data"]["symbol"]["indicators"]
    assert len(ind["time"]) > 100
    assert ind["time"] == ind["sma"]["time"] == ind["aroon"]["time"] == ind["ichimoku"]["time"]


def test_anchored_vwap_reads_from_its_anchor(gql: GraphQL) -> None:
    anchor = "2024-03-04T16:17:00Z"
    body = gql(
        '{ symbol(ticker: "GLOBX") { indicators(interval: M1, from: "2024-03-06T15:00:00Z", '
        f'to: "2024-03-06T17:00:00Z") {{ time anchoredVwap(anchor: "{anchor}") {{ value }} '
        "vwapBands(multiplier: 2) { upper vwap lower } } } }"
    )
    assert "errors" not in body, body
    ind = body["data"]["symbol"]["indicators"]
    bars = synthetic_minutes("GLOBX", 1, 120.0)
    typical = (bars.high + bars.low + bars.close) / 3
    after = bars.ts >= pd.Timestamp(anchor)
    pv = (typical * bars.volume).where(after, 0.0).cumsum()
    vol = bars.volume.where(after, 0.0).cumsum()
    mask = ((bars.ts >= "2024-03-06T15:00:00Z") & (bars.ts < "2024-03-06T17:00:00Z")).to_numpy()
    assert len(ind["time"]) == mask.sum() > 0
    _assert_matches(ind["anchoredVwap"]["value"], (pv / vol)[mask].to_numpy(), "anchored")
    day = bars.ts.dt.floor("D")
    session = (typical * bars.volume).groupby(day).cumsum() / bars.volume.groupby(day).cumsum()
    _assert_matches(ind["vwapBands"]["vwap"], session[mask].to_numpy(), "bands vwap")
    spread = np.array(ind["vwapBands"]["upper"], dtype=float) - session[mask].to_numpy()
    assert np.all(spread >= 0) and np.allclose(
        spread, session[mask].to_numpy() - np.array(ind["vwapBands"]["lower"], dtype=float)
    )


@pytest.mark.parametrize(
    ("field", "fragment"),
    [
        ("apo(maType: 7) { value }", "maType must be one of"),
        ("t3(vFactor: 2) { value }", "vFactor must be between 0 and 1"),
        ("keltner(atrPeriod: 0) { upper }", "atrPeriod must be between 1"),
        ("ichimoku(displacement: -3) { tenkan }", "displacement must be between 0"),
        ('anchoredVwap(anchor: "2024-01-01T00:00:00") { value }', "anchor must be"),
    ],
)
def test_invalid_catalogue_parameters_name_the_argument(
    gql: GraphQL, field: str, fragment: str
) -> None:
    body = gql(f'{{ symbol(ticker: "AAPL") {{ indicators {{ {field} }} }} }}')
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert fragment in error["message"]


def test_anchored_vwap_needs_its_anchor(gql: GraphQL) -> None:
    body = gql('{ symbol(ticker: "AAPL") { indicators { anchoredVwap { value } } } }')
    assert "anchor" in body["errors"][0]["message"]


def test_significant_digits_round_every_value(gql: GraphQL, client: Any) -> None:
    query = (
        '{ symbol(ticker: "AAPL") { indicators(from: "2010-01-04T00:00:00Z", '
        'to: "2010-06-01T00:00:00Z"%s) { rsi { value } macd { signal } } } }'
    )
    full = gql(query % "")["data"]["symbol"]["indicators"]
    body = client.post("/graphql", json={"query": query % ", significantDigits: 6"})
    short = body.json()["data"]["symbol"]["indicators"]
    for got, ref in (
        (short["rsi"]["value"], full["rsi"]["value"]),
        (short["macd"]["signal"], full["macd"]["signal"]),
    ):
        assert [g is None for g in got] == [r is None for r in ref]
        pairs = [(g, r) for g, r in zip(got, ref, strict=True) if r is not None]
        assert pairs
        for g, r in pairs:
            assert abs(g - r) <= 5e-6 * abs(r) + 1e-300, (g, r)
            assert len(f"{abs(g):.15g}".replace(".", "").lstrip("0").rstrip("0")) <= 6, g
    # Full-precision values take more room: the rounded body is smaller.
    assert len(body.content) < len(client.post("/graphql", json={"query": query % ""}).content)


@pytest.mark.parametrize("digits", [0, 16])
def test_significant_digits_out_of_range_are_bad_user_input(gql: GraphQL, digits: int) -> None:
    body = gql(
        f'{{ symbol(ticker: "AAPL") {{ indicators(significantDigits: {digits}) '
        "{ rsi { value } } } }"
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "significantDigits must be between 1 and 15" in body["errors"][0]["message"]


def test_every_indicator_field_is_sized_by_points_in_the_cost_rules() -> None:
    from graphql_api.cost import CostRules
    from graphql_api.schema import schema

    fields = schema._schema.type_map["IndicatorSet"].fields  # type: ignore[attr-defined]
    rules = CostRules(default_page_size=10)
    assert {"plusDi", "linearregSlope", "vwapBands", "anchoredVwap"} <= rules.point_fields
    assert {name for name in fields if name not in ("interval", "time")} <= rules.point_fields


@pytest.mark.parametrize("start", ["2001-06-15", "2009-03-02", "2012-11-01"])
def test_beyond_talib_equal_the_loop_references_from_any_start(gql: GraphQL, start: str) -> None:
    from tests.test_indicators_catalogue import (
        loop_donchian,
        loop_ichimoku,
        loop_keltner,
        loop_supertrend,
    )

    end = (pd.Timestamp(start) + pd.Timedelta(days=120)).strftime("%Y-%m-%d")
    body = gql(
        f'{{ symbol(ticker: "AAPL") {{ indicators(from: "{start}T00:00:00Z", '
        f'to: "{end}T00:00:00Z") {{ keltner {{ upper middle lower }} donchian {{ upper lower }} '
        "supertrend { value direction } ichimoku { tenkan kijun senkouA senkouB chikou } } } }"
    )
    assert "errors" not in body, body
    got = body["data"]["symbol"]["indicators"]
    aapl = _aapl()
    bars = {k: aapl[k].to_numpy(float) for k in ("open", "high", "low", "close", "volume")}
    ts = aapl.ts
    mask = ((ts >= pd.Timestamp(start, tz="UTC")) & (ts < pd.Timestamp(end, tz="UTC"))).to_numpy()
    refs = {
        "keltner": dict(
            zip(("upper", "middle", "lower"), loop_keltner(bars, 20, 10, 2.0), strict=True)
        ),
        "donchian": dict(zip(("upper", "middle", "lower"), loop_donchian(bars, 20), strict=True)),
        "supertrend": dict(
            zip(("value", "direction"), loop_supertrend(bars, 10, 3.0), strict=True)
        ),
        "ichimoku": dict(
            zip(
                ("tenkan", "kijun", "senkouA", "senkouB", "chikou"),
                loop_ichimoku(bars, 9, 26, 52, 26),
                strict=True,
            )
        ),
    }
    for field, outputs in got.items():
        for output, values in outputs.items():
            ref = np.array(refs[field][output], dtype=float)[mask]
            _assert_matches(values, ref, f"{field}.{output} from {start}")
