"""Fuzzing: schemathesis over the whole schema, hypothesis on cursors, time ranges and cost.

Schemathesis generates queries for every root field from the service's own introspection, in
positive mode (valid documents) and negative mode (documents that break the schema), with the
demo tickers, real global IDs and real cursors registered as dictionaries so that it reaches
real data, and a DateTime strategy with assorted UTC offsets (and naive values). Every answer
must be free of server errors: no 5xx, no INTERNAL_SERVER_ERROR.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import graphql
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode
from schemathesis.graphql import nodes

from core.errors import BadUserInput
from core.intervals import Interval
from graphql_api.auth import Scope
from graphql_api.cost import MAX_REPORTED_COST, CostRules, query_cost
from graphql_api.cursors import bar_cursor, parse_bar_cursor, parse_symbol_cursor, symbol_cursor
from tests.security.helpers import (
    DAILY_TICKERS,
    DEMO_TICKERS,
    INTRADAY_TICKERS,
    app_client,
    codes,
    create_keys,
    demo_database,
    post,
)

#: Codes that mean the server, not the client, failed.
SERVER_CODES = {"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "QUERY_TIMEOUT"}

HTTP = settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

OFFSETS = [
    UTC,
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=5, minutes=30)),
    timezone(timedelta(hours=-9, minutes=-30)),
    timezone(timedelta(hours=14)),
    timezone(timedelta(hours=-12)),
]


def datetimes(*, naive: bool = True) -> st.SearchStrategy[datetime]:
    """Times around the demo data (daily 2000-2013, minutes in March 2024), aware or naive."""
    zones: st.SearchStrategy[Any] = st.sampled_from(OFFSETS)
    if naive:
        zones = zones | st.none()
    return st.datetimes(
        min_value=datetime(1995, 1, 1), max_value=datetime(2026, 1, 1), timezones=zones
    )


def _iso(value: datetime) -> str:
    text = value.isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


# Registered before any schema is loaded: the scalar table is global in schemathesis.
schemathesis.graphql.scalar("DateTime", datetimes().map(_iso).map(nodes.String))


@pytest.fixture(scope="module")
def url(make_database: Callable[[], str]) -> str:
    return demo_database(make_database)


@pytest.fixture(scope="module")
def api(url: str) -> Iterator[TestClient]:
    with app_client(url, rate_limit_cost_per_minute=0) as client:
        yield client


@pytest.fixture(scope="module")
def admin(url: str) -> str:
    """The fuzzer calls as an admin, so that mutations and job listings run too."""
    return create_keys(url, fuzzer=[Scope.ADMIN])["fuzzer"]


def _assert_no_server_error(response: Any, context: object) -> dict[str, Any]:
    assert response.status_code < 500, (context, response.text)
    body: dict[str, Any] = response.json()
    found = SERVER_CODES.intersection(codes(body))
    assert not found, (context, body)
    assert "Traceback" not in response.text
    return body


def _has_real_data(value: Any) -> bool:
    """Whether a `data` tree holds any non-null text or number (not just nulls and flags)."""
    if isinstance(value, dict):
        return any(_has_real_data(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_real_data(v) for v in value)
    return isinstance(value, str | int | float) and not isinstance(value, bool)


# --- schemathesis over the whole schema ---------------------------------------------------


@pytest.fixture(scope="module")
def real_values(api: TestClient) -> dict[str, list[str]]:
    """Global IDs and cursors the service really issued, for the fuzzer's dictionaries."""
    symbols = post(api, "{ symbols(first: 20) { edges { cursor node { id } } } }").json()
    edges = symbols["data"]["symbols"]["edges"]
    bar_cursors: list[str] = []
    for ticker, interval in (("AAPL", "D1"), ("ACME", "M1"), ("ACME", "H1"), ("MSFT", "W1")):
        page = post(
            api,
            f'{{ symbol(ticker: "{ticker}") {{ bars(interval: {interval}, first: 3) '
            "{ edges { cursor } } } }",
        ).json()
        bar_cursors += [e["cursor"] for e in page["data"]["symbol"]["bars"]["edges"]]
    return {
        "ids": [e["node"]["id"] for e in edges],
        "symbol_cursors": [e["cursor"] for e in edges],
        "bar_cursors": bar_cursors,
    }


@pytest.fixture(scope="module")
def fuzz_schema(api: TestClient, real_values: dict[str, list[str]]) -> Any:
    introspection = post(api, graphql.get_introspection_query()).json()
    tickers = [*DEMO_TICKERS, "aapl", " msft ", "NOPE", "", "BTCUSDT"]
    config = SchemathesisConfig.from_dict(
        {
            "dictionaries": {
                "tickers": {"values": tickers},
                "searches": {"values": ["A", "Syn", "Inc", "Micro", "acme", "International"]},
                "exchanges": {"values": ["NASDAQ", "NYSE", "SYNTH"]},
                "ids": {"values": real_values["ids"]},
                "symbol_cursors": {"values": real_values["symbol_cursors"]},
                "bar_cursors": {"values": real_values["bar_cursors"]},
                "sizes": {"values": [0, 1, 2, 5, 50, 500]},
                "providers": {"values": ["binance", "alpaca", "polygon", "nope"]},
            },
            "parameters": {
                "Query.symbol.ticker": {"dictionary": "tickers", "probability": 0.9},
                "Query.symbols.filter.tickers[*]": {"dictionary": "tickers", "probability": 0.8},
                "Query.symbols.filter.search": {"dictionary": "searches", "probability": 0.7},
                "Query.symbols.filter.exchange": {"dictionary": "exchanges", "probability": 0.7},
                "Query.node.id": {"dictionary": "ids", "probability": 0.8},
                "Query.nodes.ids[*]": {"dictionary": "ids", "probability": 0.8},
                "Query.symbols.after": {"dictionary": "symbol_cursors", "probability": 0.5},
                "Query.symbols.before": {"dictionary": "symbol_cursors", "probability": 0.5},
                "Query.symbols.first": {"dictionary": "sizes", "probability": 0.7},
                "Symbol.bars.after": {"dictionary": "bar_cursors", "probability": 0.5},
                "Symbol.bars.before": {"dictionary": "bar_cursors", "probability": 0.5},
                "Symbol.bars.first": {"dictionary": "sizes", "probability": 0.7},
                "Symbol.bars.last": {"dictionary": "sizes", "probability": 0.7},
                "Symbol.series.maxPoints": {"dictionary": "sizes", "probability": 0.7},
                "Mutation.requestIngest.provider": {"dictionary": "providers", "probability": 0.9},
                "Mutation.requestIngest.tickers[*]": {"dictionary": "tickers", "probability": 0.9},
            },
        }
    )
    return schemathesis.graphql.from_dict(introspection, config=config)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_finds_no_server_error(
    api: TestClient, fuzz_schema: Any, admin: str, mode: GenerationMode
) -> None:
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {"Query.symbol", "Query.symbols", "Query.node", "Query.nodes"} <= labels
    assert "Mutation.requestIngest" in labels
    reached = [op.label for op in operations if _fuzz_operation(api, op, mode, admin)]
    if mode is GenerationMode.POSITIVE:
        # The dictionaries (tickers, ids, cursors) lead it to real rows, not only to nulls.
        # Random filters often select nothing, so one of the two symbol fields must do it.
        assert {"Query.symbol", "Query.symbols"} & set(reached), reached


def _fuzz_operation(api: TestClient, operation: Any, mode: GenerationMode, token: str) -> bool:
    """Run the generated cases of one root field; True if any of them returned real data."""
    reached: list[bool] = []

    @settings(
        max_examples=12 if mode is GenerationMode.POSITIVE else 6,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        # No shrinking: a failure is reported with the document as generated, in seconds
        # rather than minutes of re-running requests.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        # A GraphQL case's body is the generated document.
        payload = case.body if isinstance(case.body, dict) else {"query": case.body}
        response = api.post("/graphql", json=payload, headers={"authorization": f"Bearer {token}"})
        body = _assert_no_server_error(response, case.body)
        if mode is GenerationMode.POSITIVE:
            # Valid documents execute (or are refused for their cost, before execution).
            assert response.status_code in (200, 400), response.text
            if response.status_code == 400:
                assert codes(body) == ["QUERY_TOO_COSTLY"], body
        reached.append(_has_real_data(body.get("data")))

    run()
    return any(reached)


# --- cursors ------------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@given(ticker=TEXT)
@settings(max_examples=200, deadline=None)
def test_symbol_cursor_round_trips(ticker: str) -> None:
    assert parse_symbol_cursor(symbol_cursor(ticker)) == ticker


@given(
    when=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    interval=st.sampled_from(list(Interval)),
    symbol_id=st.integers(min_value=1, max_value=2**31 - 1),
)
@example(
    when=datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC), interval=Interval.M1, symbol_id=1
)
@settings(max_examples=300, deadline=None)
def test_bar_cursor_round_trips(when: datetime, interval: Interval, symbol_id: int) -> None:
    cursor = bar_cursor(symbol_id, interval, when)
    assert parse_bar_cursor(cursor, symbol_id, interval) == when
    others = [i for i in Interval if i != interval]
    with pytest.raises(BadUserInput, match="interval"):
        parse_bar_cursor(cursor, symbol_id, others[0])
    for other_id in (symbol_id - 1, symbol_id + 1, symbol_id * 10):
        with pytest.raises(BadUserInput, match="belongs to another symbol"):
            parse_bar_cursor(cursor, other_id, interval)
    # The hand-built bytes of bar_cursor are the generic encoding's, character for character.
    micros = (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    raw = f"v2:bar:{symbol_id}:{interval.value}:{micros}".encode()
    assert cursor == base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    # The same bar's cursor as issued before cursors carried the symbol: refused, not trusted.
    old = base64.urlsafe_b64encode(f"v1:bar:{interval.value}:{micros}".encode()).decode()
    with pytest.raises(BadUserInput, match="first page again"):
        parse_bar_cursor(old, symbol_id, interval)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


CURSORS = st.one_of(
    TEXT,
    st.binary(max_size=30).map(lambda b: base64.urlsafe_b64encode(b).decode()),
    st.builds(
        lambda kind, code, value: _b64(f"v1:{kind}:{code}:{value}"),
        st.sampled_from(["bar", "sym", "x"]),
        st.sampled_from([*[i.value for i in Interval], "", "Q9"]),
        st.one_of(st.integers(min_value=-(10**30), max_value=10**30).map(str), TEXT.map(str.strip)),
    ),
    st.builds(lambda t: _b64(f"v2:sym:{t}"), st.sampled_from(DEMO_TICKERS)),
    st.builds(
        lambda symbol, code, value: _b64(f"v2:bar:{symbol}:{code}:{value}"),
        st.one_of(st.integers(min_value=-5, max_value=10**12).map(str), TEXT),
        st.sampled_from([*[i.value for i in Interval], "", "Q9"]),
        st.one_of(st.integers(min_value=-(10**30), max_value=10**30).map(str), TEXT.map(str.strip)),
    ),
)


@given(cursor=CURSORS, which=st.sampled_from(["after", "before"]))
@HTTP
def test_arbitrary_cursors_never_fail_the_server(api: TestClient, cursor: str, which: str) -> None:
    symbols = f"query($c: String) {{ symbols(first: 2, {which}: $c) {{ edges {{ cursor }} }} }}"
    bars = (
        f'query($c: String) {{ symbol(ticker: "ACME") {{ bars(interval: M5, first: 2, '
        f"{which}: $c) {{ nodes {{ time }} }} }} }}"
    )
    for query in (symbols, bars):
        response = post(api, query, {"c": cursor})
        body = _assert_no_server_error(response, cursor)
        assert response.status_code == 200
        assert set(codes(body)) <= {"BAD_USER_INPUT"}, body


@given(size=st.integers(min_value=1, max_value=4), oldest_first=st.booleans())
@settings(max_examples=6, deadline=None, database=None)
def test_symbol_pages_follow_their_cursors(api: TestClient, size: int, oldest_first: bool) -> None:
    del oldest_first  # symbols have one order: by ticker
    query = (
        "query($n: Int, $a: String) { symbols(first: $n, after: $a) "
        "{ edges { cursor node { ticker } } pageInfo { hasNextPage endCursor } } }"
    )
    seen: list[str] = []
    after = None
    for _ in range(20):
        page = post(api, query, {"n": size, "a": after}).json()["data"]["symbols"]
        seen += [e["node"]["ticker"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == sorted(DEMO_TICKERS)


@given(
    size=st.integers(min_value=3, max_value=40),
    interval=st.sampled_from(["M15", "H1", "H4"]),
    order=st.sampled_from(["NEWEST_FIRST", "OLDEST_FIRST"]),
)
@settings(max_examples=6, deadline=None, database=None)
def test_bar_pages_follow_their_cursors(
    api: TestClient, size: int, interval: str, order: str
) -> None:
    window = 'from: "2024-03-05T00:00:00Z", to: "2024-03-06T00:00:00Z"'
    page_query = (
        f'query($n: Int, $a: String) {{ symbol(ticker: "GLOBX") {{ bars(interval: {interval}, '
        f"{window}, order: {order}, first: $n, after: $a) {{ edges {{ cursor node {{ time }} }} "
        "pageInfo { hasNextPage endCursor } } } }"
    )
    whole = post(
        api,
        f'{{ symbol(ticker: "GLOBX") {{ bars(interval: {interval}, {window}, order: {order}, '
        "first: 1000) { nodes { time } } } }",
    ).json()["data"]["symbol"]["bars"]["nodes"]
    assert whole
    seen: list[str] = []
    after = None
    for _ in range(200):
        bars = post(api, page_query, {"n": size, "a": after}).json()["data"]["symbol"]["bars"]
        seen += [e["node"]["time"] for e in bars["edges"]]
        if not bars["pageInfo"]["hasNextPage"]:
            break
        after = bars["pageInfo"]["endCursor"]
    assert seen == [b["time"] for b in whole]


# --- time ranges --------------------------------------------------------------------------


@given(start=datetimes(), end=datetimes(), ticker=st.sampled_from(DAILY_TICKERS + INTRADAY_TICKERS))
@HTTP
def test_random_time_ranges(api: TestClient, start: datetime, end: datetime, ticker: str) -> None:
    query = (
        "query($t: String!, $f: DateTime, $u: DateTime) { symbol(ticker: $t) { "
        "bars(interval: H4, from: $f, to: $u, first: 50, order: OLDEST_FIRST) { nodes { time } } "
        "series(interval: D1, from: $f, to: $u, maxPoints: 400) { interval time } } }"
    )
    response = post(api, query, {"t": ticker, "f": _iso(start), "u": _iso(end)})
    body = _assert_no_server_error(response, (start, end))
    assert response.status_code == 200
    if start.tzinfo is None or end.tzinfo is None:
        assert set(codes(body)) == {"BAD_USER_INPUT"}
        assert "UTC offset" in body["errors"][0]["message"]
        return
    if start > end:
        assert set(codes(body)) == {"BAD_USER_INPUT"}
        return
    errors = body.get("errors") or []
    # A wide range may not fit in `maxPoints` even at the coarsest interval: a clear refusal.
    assert all(
        e["extensions"]["code"] == "BAD_USER_INPUT" and e["path"][-1] == "series" for e in errors
    ), errors
    symbol = body["data"]["symbol"]
    if symbol is None:
        return
    times = [datetime.fromisoformat(b["time"]) for b in symbol["bars"]["nodes"]]
    assert times == sorted(times)
    assert all(start <= t < end for t in times), (start, end, times[:3])


# --- cost analysis -------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=10,
)
COST_QUERY = (
    "query Q($first: Int, $last: Int, $p: Int!, $ids: [ID!]!) { "
    "symbols(first: $first) { edges { node { ticker bars(last: $last) { nodes { close } } "
    "series(maxPoints: $p) { close } } } } nodes(ids: $ids) { id } }"
)
COST_DOCUMENT = graphql.parse(COST_QUERY)
COST_OPERATION = graphql.get_operation_ast(COST_DOCUMENT)


@given(variables=st.dictionaries(st.sampled_from(["first", "last", "p", "ids", "x"]), JSON_VALUES))
@settings(max_examples=60, deadline=None)
def test_cost_analysis_never_crashes(variables: dict[str, Any]) -> None:
    assert COST_OPERATION is not None
    cost = query_cost(COST_DOCUMENT, COST_OPERATION, variables, CostRules(default_page_size=100))
    assert isinstance(cost, int)
    assert 1 <= cost <= MAX_REPORTED_COST


@given(first=st.integers(min_value=1, max_value=10_000), extra=st.integers(1, 1000))
@settings(max_examples=100, deadline=None)
def test_cost_grows_with_the_page_size(first: int, extra: int) -> None:
    assert COST_OPERATION is not None
    rules = CostRules(default_page_size=100)
    small = query_cost(COST_DOCUMENT, COST_OPERATION, {"first": first, "p": 1}, rules)
    large = query_cost(COST_DOCUMENT, COST_OPERATION, {"first": first + extra, "p": 1}, rules)
    assert large > small


@given(first=JSON_VALUES, last=JSON_VALUES)
@HTTP
def test_random_page_sizes_via_variables_never_fail_the_server(
    api: TestClient, first: Any, last: Any
) -> None:
    query = (
        'query($f: Int, $l: Int) { symbol(ticker: "IBM") { '
        "bars(first: $f, last: $l) { pageInfo { hasNextPage } } } }"
    )
    response = post(api, query, {"f": first, "l": last})
    body = _assert_no_server_error(response, (first, last))
    if response.status_code == 400:
        assert set(codes(body)) <= {"GRAPHQL_VALIDATION_FAILED", "QUERY_TOO_COSTLY"}, body
    else:
        assert set(codes(body)) <= {"BAD_USER_INPUT"}, body
