"""The demo's corporate actions and the GraphiQL example: AAPL raw vs adjusted around its
2005-02-28 split."""

from __future__ import annotations

from graphql_api.graphiql import EXAMPLE_QUERY
from tests.api.helpers import data_of
from tests.conftest import GraphQL


def test_example_query_shows_aapl_raw_and_adjusted_around_the_split(gql: GraphQL) -> None:
    data = data_of(gql(EXAMPLE_QUERY))
    aapl = data["appleSplit"]
    raw, adjusted = aapl["raw"], aapl["adjusted"]
    assert raw["time"] == adjusted["time"]
    days = [t[:10] for t in raw["time"]]
    before, after = days.index("2005-02-25"), days.index("2005-02-28")
    # As printed: the close halves over the split (88.99 -> 44.86 in the bokeh file).
    assert raw["close"][before] == 88.99 and raw["close"][after] == 44.86
    # Adjusted: the factor before the split is half the factor after it (the later
    # dividends apply to both alike), and volume doubles where prices halve.
    f_before = adjusted["close"][before] / raw["close"][before]
    f_after = adjusted["close"][after] / raw["close"][after]
    assert abs(f_before / f_after - 0.5) < 1e-12
    assert adjusted["volume"][before] == 2 * raw["volume"][before]
    assert adjusted["volume"][after] == raw["volume"][after]
    kinds = [(a["kind"], a["exDate"]) for a in aapl["corporateActions"]]
    assert ("SPLIT", "2000-06-21") in kinds and ("SPLIT", "2005-02-28") in kinds
    assert sum(k == "DIVIDEND" for k, _ in kinds) == 3


def test_msft_split_and_dividends_in_the_demo(gql: GraphQL) -> None:
    q = """{ symbol(ticker: "MSFT") { corporateActions { kind exDate ratio amount } } }"""
    actions = data_of(gql(q))["symbol"]["corporateActions"]
    assert actions[0] == {"kind": "SPLIT", "exDate": "2003-02-18", "ratio": 2.0, "amount": None}
    assert len(actions) == 5
