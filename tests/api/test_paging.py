"""Relay paging of symbols and bars: keyset cursors, both directions, both orders, page info,
totalCount, stability under ingest, cursor validation, node IDs and symbol filters."""

from __future__ import annotations

import base64
import random
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from core.settings import Settings
from tests.api.helpers import (
    COUNTING,
    HYPOTHESIS,
    HYPOTHESIS_FEW,
    GraphQL,
    app_client,
    bad_input,
    bars_page,
    base_bars,
    count_statements,
    data_of,
    frame_of_bars,
    gql_for,
    ohlcv,
    resample,
    scratch_database,
    store_bars,
    stored_bars,
    walk_backward,
    walk_forward,
)
from workers.demo import CRYPTO_SYMBOL, SESSION_SYMBOL


@pytest.fixture(scope="module")
def demo_url(settings: Settings) -> str:
    assert settings.database_url
    return settings.database_url


@pytest.fixture(scope="module")
def gql(demo_url: str) -> Iterator[GraphQL]:
    """This module's `gql`: the demo database through an app of its own without cost or rate
    limits (these tests read many bars; the shared client's budget is left to others)."""
    with app_client(demo_url) as client:
        yield gql_for(client)


@pytest.fixture(scope="module")
def uncached(demo_url: str) -> Iterator[TestClient]:
    """A second app over the demo database with caching off, for counting SQL statements."""
    with app_client(demo_url, **COUNTING) as client:
        yield client


_REFERENCE: dict[tuple[str, str], pd.DataFrame] = {}


def reference(url: str, ticker: str, interval: str) -> pd.DataFrame:
    """All bars of a demo symbol at `interval`, oldest first (pandas over the stored rows)."""
    if (ticker, interval) not in _REFERENCE:
        base = "D1" if ticker in ("AAPL", "FB", "GOOG", "IBM", "MSFT") else "M1"
        _REFERENCE[(ticker, interval)] = resample(stored_bars(url, ticker, base), interval, base)
    return _REFERENCE[(ticker, interval)]


def in_order(frame: pd.DataFrame, order: str) -> pd.DataFrame:
    return frame if order == "OLDEST_FIRST" else frame.iloc[::-1]


def assert_bars_equal(bars: list[dict[str, Any]], want: pd.DataFrame, what: str) -> None:
    got = frame_of_bars(bars)
    times = list(got.index)
    assert len(times) == len(set(times)), f"{what}: a bar came back twice"
    assert times == list(want.index), f"{what}: {len(times)} bars vs {len(want)} expected"
    assert (
        got[["open", "high", "low", "close", "volume"]].to_numpy()
        == want[["open", "high", "low", "close", "volume"]].to_numpy()
    ).all(), f"{what}: values differ"


# --- Walking all bars ------------------------------------------------------------------------

#: Stored daily and one-minute bars, and resampled five-minute bars, in both orders.
WALKS = [
    ("AAPL", "D1", "NEWEST_FIRST", 3),
    ("ACME", "M1", "OLDEST_FIRST", 5),
    ("ACME", "M5", "NEWEST_FIRST", 7),
    ("ACME", "M5", "OLDEST_FIRST", 8),
    ("FB", "D1", "OLDEST_FIRST", 4),
]


@pytest.mark.parametrize(("ticker", "interval", "order", "seed"), WALKS)
def test_walk_forward_then_backward_meets_every_bar_once_in_order(
    gql: GraphQL, demo_url: str, ticker: str, interval: str, order: str, seed: int
) -> None:
    want = in_order(reference(demo_url, ticker, interval), order)
    rng = random.Random(seed)
    # pages of varied sizes: a few tiny ones at each end, then large ones
    sizes = [1, 2, rng.randint(3, 50)] + [rng.randint(300, 1500) for _ in range(400)]
    forward = walk_forward(gql, ticker, interval, order, lambda n: sizes[n])
    assert_bars_equal(forward.bars, want, f"{ticker} {interval} {order} forward")
    assert forward.pages[0]["hasPreviousPage"] is False
    assert forward.pages[-1]["hasNextPage"] is False
    backward = walk_backward(gql, ticker, interval, order, lambda n: sizes[n])
    assert_bars_equal(backward.bars, want, f"{ticker} {interval} {order} backward")
    assert backward.pages[0]["hasNextPage"] is False
    assert backward.pages[-1]["hasPreviousPage"] is False
    # a bar's cursor is the same whichever way it was reached
    assert forward.cursors == backward.cursors


@HYPOTHESIS
@given(
    interval=st.sampled_from(["M5", "M15", "H1", "D1"]),
    order=st.sampled_from(["NEWEST_FIRST", "OLDEST_FIRST"]),
    position=st.floats(0, 1),
    size=st.integers(0, 60),
)
def test_first_after_and_last_before_any_cursor(
    gql: GraphQL, demo_url: str, interval: str, order: str, position: float, size: int
) -> None:
    """From the cursor of bar i: `first: k, after` gives bars i+1..i+k and `last: k, before`
    gives bars i-k..i-1, with page flags telling whether more lie beyond."""
    want = in_order(reference(demo_url, "GLOBX", interval), order)
    i = min(int(position * len(want)), len(want) - 1)
    start = bars_page(gql, "GLOBX", interval, order, first=i + 1)
    cursor = start["edges"][-1]["cursor"]
    assert pd.Timestamp(start["edges"][-1]["node"]["time"]) == want.index[i]

    after = bars_page(gql, "GLOBX", interval, order, first=size, after=cursor)
    assert [pd.Timestamp(e["node"]["time"]) for e in after["edges"]] == list(
        want.index[i + 1 : i + 1 + size]
    )
    assert after["pageInfo"]["hasNextPage"] is (i + 1 + size < len(want))
    assert after["pageInfo"]["hasPreviousPage"] is True

    before = bars_page(gql, "GLOBX", interval, order, last=size, before=cursor)
    assert [pd.Timestamp(e["node"]["time"]) for e in before["edges"]] == list(
        want.index[max(0, i - size) : i]
    )
    assert before["pageInfo"]["hasPreviousPage"] is (i - size > 0)
    assert before["pageInfo"]["hasNextPage"] is True


def test_page_info_at_both_ends(gql: GraphQL, demo_url: str) -> None:
    n = len(reference(demo_url, "FB", "D1"))
    whole = bars_page(gql, "FB", "D1", "OLDEST_FIRST", first=n)
    assert len(whole["edges"]) == n
    assert whole["pageInfo"]["hasNextPage"] is False
    assert whole["pageInfo"]["hasPreviousPage"] is False
    short = bars_page(gql, "FB", "D1", "OLDEST_FIRST", first=n - 1)
    assert short["pageInfo"]["hasNextPage"] is True
    tail = bars_page(gql, "FB", "D1", "OLDEST_FIRST", last=n - 1)
    assert tail["pageInfo"]["hasPreviousPage"] is True
    assert tail["pageInfo"]["hasNextPage"] is False
    assert tail["edges"][-1]["cursor"] == whole["edges"][-1]["cursor"]
    last_page = bars_page(
        gql, "FB", "D1", "OLDEST_FIRST", first=5, after=whole["edges"][-1]["cursor"]
    )
    assert last_page["edges"] == []
    assert last_page["pageInfo"]["hasNextPage"] is False
    assert last_page["pageInfo"]["startCursor"] is None
    assert last_page["pageInfo"]["endCursor"] is None
    empty = bars_page(
        gql,
        "FB",
        "D1",
        "NEWEST_FIRST",
        first=5,
        **{"from": "1990-01-01T00:00:00Z"},
        to="1991-01-01T00:00:00Z",
    )
    assert empty["edges"] == [] and empty["pageInfo"]["hasNextPage"] is False


def test_default_order_is_newest_first_and_default_interval_is_d1(gql: GraphQL) -> None:
    query = """{ symbol(ticker: "IBM") {
        bars(first: 2) { nodes { time } }
        oldest: bars(first: 1, order: OLDEST_FIRST) { nodes { time } } } }"""
    sym = data_of(gql(query))["symbol"]
    assert [b["time"][:10] for b in sym["bars"]["nodes"]] == ["2013-03-01", "2013-02-28"]
    assert sym["oldest"]["nodes"][0]["time"][:10] == "2000-03-01"


# --- totalCount ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ticker", "interval", "window"),
    [
        ("AAPL", "D1", {}),
        ("ACME", "M1", {}),
        ("ACME", "M5", {}),
        ("ACME", "H4", {"from": "2024-03-05T13:00:00Z", "to": "2024-03-08T00:00:00Z"}),
        ("MSFT", "W1", {"from": "2005-01-01T00:00:00Z", "to": "2006-01-01T00:00:00Z"}),
        ("GOOG", "MN1", {}),
    ],
)
def test_total_count_counts_all_bars_in_range_and_only_when_selected(
    uncached: TestClient,
    demo_url: str,
    ticker: str,
    interval: str,
    window: dict[str, str],
) -> None:
    want = reference(demo_url, ticker, interval)
    if window:
        want = want[(want.index >= window["from"]) & (want.index < window["to"])]
    query = """query($t: String!, $i: Interval!, $from: DateTime, $to: DateTime) {
        symbol(ticker: $t) { bars(interval: $i, first: 3, from: $from, to: $to) {
            %s nodes { time } } } }"""
    variables = {"t": ticker, "i": interval, **window}
    gql = gql_for(uncached)
    with count_statements(uncached) as without:
        data_of(gql(query % "", variables))
    with count_statements(uncached) as with_count:
        bars = data_of(gql(query % "totalCount", variables))["symbol"]["bars"]
    assert bars["totalCount"] == len(want)
    # the count costs one statement of its own, and only when selected
    assert len(with_count) == len(without) + 1, (without, with_count)
    (extra,) = set(with_count) - set(without)
    assert "count(" in extra
    # the count does not depend on the page or the cursor
    after = data_of(
        gql(
            """query($t: String!, $i: Interval!, $a: String) { symbol(ticker: $t) {
            bars(interval: $i, first: 1, after: $a) { totalCount } } }""",
            {"t": ticker, "i": interval, "a": _cursor_of(gql, ticker, interval)},
        )
    )
    if not window:
        assert after["symbol"]["bars"]["totalCount"] == len(want)


def _cursor_of(gql: GraphQL, ticker: str, interval: str) -> str:
    cursor: str = bars_page(gql, ticker, interval, "NEWEST_FIRST", first=2)["edges"][-1]["cursor"]
    return cursor


def test_symbols_total_count_only_when_selected(uncached: TestClient) -> None:
    gql = gql_for(uncached)
    query = '{ symbols(first: 2, filter: {exchange: "synth"}) { %s nodes { ticker } } }'
    with count_statements(uncached) as without:
        data_of(gql(query % ""))
    with count_statements(uncached) as with_count:
        data = data_of(gql(query % "totalCount"))
    assert data["symbols"]["totalCount"] == sum(e == "SYNTH" for _, e in DEMO_SYMBOLS.values())
    assert len(with_count) == len(without) + 1, (without, with_count)
    (extra,) = set(with_count) - set(without)
    assert "count(" in extra


# --- Ingest between two page requests -------------------------------------------------------


@pytest.fixture(scope="module")
def live(make_database: Callable[[], str]) -> Iterator[tuple[str, TestClient]]:
    """A database of our own that the tests write to between page requests."""
    url = scratch_database(make_database)
    days = pd.date_range("2024-01-01", periods=60, freq="D", tz="UTC")
    store_bars(url, {"LIVE": ohlcv(days.delete([20, 21, 40]), seed=3)}, "D1")
    minutes = pd.date_range("2024-01-02T10:00:00Z", periods=300, freq="min")
    store_bars(url, {"LIVEM": ohlcv(minutes.delete(range(100, 130)), seed=4)}, "M1")
    with app_client(url) as client:
        yield url, client


def _times(conn: dict[str, Any]) -> list[pd.Timestamp]:
    return [pd.Timestamp(e["node"]["time"]) for e in conn["edges"]]


def test_bar_inserted_between_pages_neither_duplicates_nor_skips(
    live: tuple[str, TestClient],
) -> None:
    url, client = live
    gql = gql_for(client)
    day = pd.Timedelta(days=1)

    # newest first: a newer bar arrives at the head, and a missing older day is filled in
    first = bars_page(gql, "LIVE", "D1", "NEWEST_FIRST", first=10)
    seen = _times(first)
    store_bars(url, {"LIVE": ohlcv([seen[0] + day, pd.Timestamp("2024-01-21", tz="UTC")], 5)}, "D1")
    rest = walk_forward(
        gql, "LIVE", "D1", "NEWEST_FIRST", lambda _: 9, after=first["pageInfo"]["endCursor"]
    )
    times = seen + [pd.Timestamp(b["time"]) for b in rest.bars]
    stored = list(base_bars(url, "LIVE", "D1").index)
    assert times == sorted((t for t in stored if t <= seen[0]), reverse=True)
    assert pd.Timestamp("2024-01-21", tz="UTC") in times  # inserted ahead of the cursor

    # oldest first: an older bar is prepended, a gap ahead is filled, a seen bar is revised
    first = bars_page(gql, "LIVE", "D1", "OLDEST_FIRST", first=15)
    seen = _times(first)
    store_bars(url, {"LIVE": ohlcv([seen[0] - day, pd.Timestamp("2024-01-22", tz="UTC")], 6)}, "D1")
    # revisions of a bar already seen and of one still ahead
    store_bars(url, {"LIVE": ohlcv([seen[3], pd.Timestamp("2024-02-15", tz="UTC")], 9) * 2}, "D1")
    rest = walk_forward(
        gql, "LIVE", "D1", "OLDEST_FIRST", lambda _: 8, after=first["pageInfo"]["endCursor"]
    )
    times = seen + [pd.Timestamp(b["time"]) for b in rest.bars]
    stored = base_bars(url, "LIVE", "D1")
    assert times == [t for t in stored.index if t >= seen[0]]
    assert_bars_equal(rest.bars, stored[stored.index > seen[-1]], "LIVE after the inserts")


def test_minute_inserted_between_resampled_pages(live: tuple[str, TestClient]) -> None:
    """M5 pages over M1 bars: a minute added to a bucket already seen does not bring that
    bucket back; minutes filling a gap ahead of the cursor show up as new buckets."""
    url, client = live
    gql = gql_for(client)
    first = bars_page(gql, "LIVEM", "M5", "OLDEST_FIRST", first=4)
    seen = _times(first)
    assert seen[-1] == pd.Timestamp("2024-01-02T10:15:00Z")
    store_bars(
        url,
        {
            "LIVEM": ohlcv(
                [
                    pd.Timestamp("2024-01-02T09:58:00Z"),  # before everything
                    pd.Timestamp("2024-01-02T10:17:00Z"),  # revises the last bucket seen
                    *pd.date_range("2024-01-02T11:40:00Z", periods=10, freq="min"),  # a gap
                ],
                seed=8,
            )
        },
        "M1",
    )
    rest = walk_forward(
        gql, "LIVEM", "M5", "OLDEST_FIRST", lambda _: 7, after=first["pageInfo"]["endCursor"]
    )
    times = seen + [pd.Timestamp(b["time"]) for b in rest.bars]
    assert len(times) == len(set(times))
    want = resample(base_bars(url, "LIVEM", "M1"), "M5", "M1")
    assert times == [t for t in want.index if t >= seen[0]]
    assert_bars_equal(rest.bars, want[want.index > seen[-1]], "LIVEM M5 after the insert")


# --- Cursor validation -------------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


BARS_AFTER = """query($t: String!, $i: Interval!, $a: String, $b: String) {
    symbol(ticker: $t) { bars(interval: $i, first: 2, after: $a) { nodes { time } }
                         older: bars(interval: $i, last: 2, before: $b) { nodes { time } } } }"""
SYMBOLS_AFTER = """query($a: String, $b: String) {
    symbols(first: 2, after: $a) { nodes { ticker } }
    s2: symbols(last: 2, before: $b) { nodes { ticker } } }"""


def _symbol_cursor(gql: GraphQL) -> str:
    cursor: str = data_of(gql("{ symbols(first: 1) { edges { cursor } } }"))["symbols"]["edges"][0][
        "cursor"
    ]
    return cursor


@pytest.mark.parametrize(
    "make_cursor",
    [
        lambda gql: "garbage!",
        lambda gql: "",
        lambda gql: "%%%",
        lambda gql: "djE6YmFyOkQxOjA=====",
        lambda gql: _b64("v2:bar:D1:0"),
        lambda gql: _b64("v1:bar:D1:yesterday"),
        lambda gql: _b64("v1:bar:D1"),
        lambda gql: _b64("v1:bar:D1:99999999999999999999999"),
        lambda gql: _b64("v1:bar:Q7:0"),
        lambda gql: _symbol_cursor(gql),  # a symbol cursor given to bars
        lambda gql: _cursor_of(gql, "ACME", "D1"),  # a D1 cursor given to M5 bars
        lambda gql: _cursor_of(gql, "ACME", "M1"),
        lambda gql: base64.b64encode(b"\xff\xfe\x00").decode(),
    ],
)
def test_bad_bar_cursor_is_bad_user_input(gql: GraphQL, make_cursor: Callable[..., str]) -> None:
    cursor = make_cursor(gql)
    for variables in ({"a": cursor}, {"b": cursor}):
        message = bad_input(gql(BARS_AFTER, {"t": "ACME", "i": "M5", **variables}))
        assert "cursor" in message


@pytest.mark.parametrize(
    "make_cursor",
    [
        lambda gql: "garbage!",
        lambda gql: "",
        lambda gql: _b64("v1:bars:AAPL"),
        lambda gql: _b64("v9:sym:AAPL"),
        lambda gql: _cursor_of(gql, "AAPL", "D1"),  # a bar cursor given to symbols
    ],
)
def test_bad_symbol_cursor_is_bad_user_input(gql: GraphQL, make_cursor: Callable[..., str]) -> None:
    cursor = make_cursor(gql)
    for variables in ({"a": cursor}, {"b": cursor}):
        assert "cursor" in bad_input(gql(SYMBOLS_AFTER, variables))


@HYPOTHESIS
@given(
    cursor=st.text(min_size=1, max_size=40)
    | st.binary(min_size=1, max_size=30).map(lambda b: base64.urlsafe_b64encode(b).decode())
    | st.from_regex(r"v1:(bar|sym):[A-Z0-9]{0,3}:?-?[0-9]{0,22}", fullmatch=True)
    .filter(lambda s: not re.fullmatch(r"v1:bar:W1:-?[0-9]{1,18}", s))
    .map(_b64)
)
def test_arbitrary_cursor_text_is_bad_user_input(gql: GraphQL, cursor: str) -> None:
    message = bad_input(gql(BARS_AFTER, {"t": "AAPL", "i": "W1", "a": cursor}))
    assert "cursor" in message
    if not _decodes_to(cursor, "v1:sym:"):  # any text after that prefix is a valid ticker
        assert "cursor" in bad_input(gql(SYMBOLS_AFTER, {"a": cursor}))


def _decodes_to(cursor: str, prefix: str) -> bool:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).startswith(
            prefix.encode()
        )
    except ValueError:
        return False


def test_cursors_are_opaque_and_differ_between_lists(gql: GraphQL) -> None:
    d1 = _cursor_of(gql, "ACME", "D1")
    m5 = _cursor_of(gql, "ACME", "M5")
    sym = _symbol_cursor(gql)
    assert len({d1, m5, sym}) == 3
    for cursor in (d1, m5, sym):
        assert "ACME" not in cursor and "AAPL" not in cursor and "2024" not in cursor


CROSS_SYMBOL = """query($t: String!, $i: Interval!, $o: BarOrder!, $a: String, $b: String) {
    symbol(ticker: $t) {
        forward: bars(interval: $i, order: $o, first: 2, after: $a) { nodes { time } }
        backward: bars(interval: $i, order: $o, last: 2, before: $b) { nodes { time } } } }"""


@pytest.mark.parametrize("order", ["NEWEST_FIRST", "OLDEST_FIRST"])
@pytest.mark.parametrize("interval", ["D1", "W1"])
@pytest.mark.parametrize("which", ["edge", "startCursor", "endCursor"])
def test_cursor_from_another_symbol_is_refused(
    gql: GraphQL, order: str, interval: str, which: str
) -> None:
    """Both symbols have bars at the interval, so without the symbol in the cursor an AAPL
    cursor on ACME was a valid-looking (empty or wrong) page (issue 13, item 6)."""
    page = bars_page(gql, "AAPL", interval, order, first=3)
    cursor = page["edges"][1]["cursor"] if which == "edge" else page["pageInfo"][which]
    for variables in ({"a": cursor}, {"b": cursor}):
        result = gql(CROSS_SYMBOL, {"t": "ACME", "i": interval, "o": order, **variables})
        assert "belongs to another symbol" in bad_input(result)
    # On its own symbol the same cursor pages on.
    own = data_of(gql(CROSS_SYMBOL, {"t": "AAPL", "i": interval, "o": order, "a": cursor}))
    assert len(own["symbol"]["forward"]["nodes"]) == 2


def test_cursor_through_a_symbol_list_pages_each_symbol(gql: GraphQL) -> None:
    """Cursors made in a many-symbol request page on each symbol's own list, and only there."""
    query = """{ symbols(first: 8) { nodes { ticker
        bars(interval: D1, first: 2) { nodes { time } pageInfo { endCursor } } } } }"""
    symbols = data_of(gql(query))["symbols"]["nodes"]
    cursors = {s["ticker"]: s["bars"]["pageInfo"]["endCursor"] for s in symbols}
    cursors = {t: c for t, c in cursors.items() if c is not None}
    assert len(cursors) >= 2
    for ticker, cursor in cursors.items():
        page = bars_page(gql, ticker, "D1", "NEWEST_FIRST", first=2, after=cursor)
        first_two = next(s for s in symbols if s["ticker"] == ticker)["bars"]["nodes"]
        assert page["edges"], ticker
        assert page["edges"][0]["node"]["time"] < first_two[-1]["time"]
        for other in cursors.keys() - {ticker}:
            result = gql(BARS_AFTER, {"t": other, "i": "D1", "a": cursor})
            assert "belongs to another symbol" in bad_input(result)


def test_v1_bar_cursor_is_refused_with_what_to_do(gql: GraphQL) -> None:
    """Cursors issued before they carried the symbol cannot be checked against it: refused,
    telling the client to start from the first page, rather than possibly paging the wrong
    symbol's bars."""
    newest = bars_page(gql, "AAPL", "D1", "NEWEST_FIRST", first=2)["edges"][-1]["node"]["time"]
    micros = (datetime.fromisoformat(newest) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        microseconds=1
    )
    old = _b64(f"v1:bar:D1:{micros}")
    for variables in ({"a": old}, {"b": old}):
        message = bad_input(gql(BARS_AFTER, {"t": "AAPL", "i": "D1", **variables}))
        assert "no longer accepted" in message and "first page" in message, message


# --- Nodes and symbols -----------------------------------------------------------------------

SYMBOL_FIELDS = (
    "id ticker name exchange assetClass currency timezone active firstBarTime lastBarTime"
)


def test_node_and_nodes_round_trip_symbol_ids(gql: GraphQL) -> None:
    symbols = data_of(gql(f"{{ symbols {{ nodes {{ {SYMBOL_FIELDS} }} }} }}"))["symbols"]["nodes"]
    assert len(symbols) == len(DEMO_SYMBOLS)
    for sym in symbols:
        node = data_of(
            gql(
                f"query($id: ID!) {{ node(id: $id) {{ __typename id ... on Symbol {{ "
                f"{SYMBOL_FIELDS} }} }} }}",
                {"id": sym["id"]},
            )
        )["node"]
        assert node == {"__typename": "Symbol", **sym}
    ids = [s["id"] for s in reversed(symbols)]
    unknown = base64.urlsafe_b64encode(b"Symbol:999999").decode()
    other_type = base64.urlsafe_b64encode(b"Bar:1").decode()
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Symbol { ticker } } }"
    got = data_of(gql(query, {"ids": [ids[0], unknown, *ids[1:], other_type, ids[0]]}))["nodes"]
    tickers = [s["ticker"] for s in reversed(symbols)]
    assert [n and n["ticker"] for n in got] == [tickers[0], None, *tickers[1:], None, tickers[0]]
    ids_are_distinct = len({s["id"] for s in symbols}) == len(symbols)
    assert ids_are_distinct


def test_nodes_load_in_one_statement(uncached: TestClient) -> None:
    """`nodes(ids:)` batches its lookups like every other field: as many statements for
    eight ids as for one (no N+1)."""
    gql = gql_for(uncached)
    ids = [s["id"] for s in data_of(gql("{ symbols { nodes { id } } }"))["symbols"]["nodes"]]
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Symbol { ticker } } }"
    with count_statements(uncached) as one:
        data_of(gql(query, {"ids": ids[:1]}))
    with count_statements(uncached) as eight:
        got = data_of(gql(query, {"ids": ids}))["nodes"]
    assert [n["id"] for n in got] == ids
    assert len(eight) == len(one), eight


@pytest.mark.parametrize("node_id", ["xyz", "U3ltYm9sOmFiYw==", "", "!!"])
def test_malformed_node_id_is_bad_user_input(gql: GraphQL, node_id: str) -> None:
    assert "id" in bad_input(gql("query($id: ID!) { node(id: $id) { id } }", {"id": node_id}))


def test_symbol_by_ticker(gql: GraphQL, demo_url: str) -> None:
    query = "query($t: String!) { symbol(ticker: $t) { ticker firstBarTime lastBarTime } }"
    assert data_of(gql(query, {"t": "NOPE"}))["symbol"] is None
    assert data_of(gql(query, {"t": ""}))["symbol"] is None
    sym = data_of(gql(query, {"t": " aapl "}))["symbol"]
    assert sym["ticker"] == "AAPL"
    stored = stored_bars(demo_url, "AAPL", "D1")
    assert pd.Timestamp(sym["firstBarTime"]) == stored.index[0]
    assert pd.Timestamp(sym["lastBarTime"]) == stored.index[-1]


@HYPOTHESIS_FEW
@given(sizes=st.lists(st.integers(1, 9), min_size=12, max_size=12))
def test_symbols_walk_both_ways(gql: GraphQL, sizes: list[int]) -> None:
    query = """query($f: Int, $a: String, $l: Int, $b: String) {
        symbols(first: $f, after: $a, last: $l, before: $b) {
            edges { cursor node { ticker } }
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"""
    everything = sorted(DEMO_SYMBOLS)
    forward: list[str] = []
    after = None
    for n, size in enumerate(sizes):
        conn = data_of(gql(query, {"f": size, "a": after}))["symbols"]
        forward += [e["node"]["ticker"] for e in conn["edges"]]
        assert conn["pageInfo"]["hasPreviousPage"] is (n > 0)
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert forward == everything
    backward: list[str] = []
    before = None
    for n, size in enumerate(sizes):
        conn = data_of(gql(query, {"l": size, "b": before}))["symbols"]
        backward = [e["node"]["ticker"] for e in conn["edges"]] + backward
        assert conn["pageInfo"]["hasNextPage"] is (n > 0)
        if not conn["pageInfo"]["hasPreviousPage"]:
            break
        before = conn["pageInfo"]["startCursor"]
    assert backward == everything


DEMO_SYMBOLS = {
    "AAPL": ("Apple Inc.", "NASDAQ"),
    "ACME": ("Acme Synthetic Corp.", "SYNTH"),
    "FB": ("Meta Platforms Inc. (Facebook)", "NASDAQ"),
    "GLOBX": ("Globex Synthetic Inc.", "SYNTH"),
    "GOOG": ("Alphabet Inc. (Google)", "NASDAQ"),
    "IBM": ("International Business Machines Corp.", "NYSE"),
    "INITECH": ("Initech Synthetic Ltd.", "SYNTH"),
    "MSFT": ("Microsoft Corp.", "NASDAQ"),
    SESSION_SYMBOL.ticker: (SESSION_SYMBOL.name, SESSION_SYMBOL.exchange),
    CRYPTO_SYMBOL.ticker: (CRYPTO_SYMBOL.name, CRYPTO_SYMBOL.exchange),
}
#: The demo's one crypto symbol; every other is an equity.
CRYPTO_TICKERS = [CRYPTO_SYMBOL.ticker]


def expected_search(search: str) -> list[str]:
    """The documented rule: a ticker prefix, or words that start words of the name."""
    s = search.strip()
    if not s:
        return sorted(DEMO_SYMBOLS)
    words = re.findall(r"[A-Za-z0-9]+", s.lower())
    out = []
    for ticker, (name, _) in DEMO_SYMBOLS.items():
        name_words = re.findall(r"[a-z0-9]+", name.lower())
        by_name = bool(words) and all(any(n.startswith(w) for n in name_words) for w in words)
        if ticker.startswith(s.upper()) or by_name:
            out.append(ticker)
    return sorted(out)


SEARCH = """query($f: SymbolFilter) { symbols(first: 50, filter: $f) {
    totalCount nodes { ticker } } }"""


@pytest.mark.parametrize(
    "search",
    [
        "a",
        "AA",
        "aapl",
        "in",
        "inc",
        "apple inc",
        "inc apple",
        "machines",
        "business mach",
        "synth",
        "g",
        "GO",
        "face",
        "corp",
        "zzz",
        "x",
        "A_PL",
        "%",
        "I%",
        "o'b",
        "a:*|b",
        "&!",
        "(",
        "  acme  ",
        "Meta-Platforms",
        "micro soft",
    ],
)
def test_symbol_search(gql: GraphQL, search: str) -> None:
    conn = data_of(gql(SEARCH, {"f": {"search": search}}))["symbols"]
    want = expected_search(search)
    assert [n["ticker"] for n in conn["nodes"]] == want
    assert conn["totalCount"] == len(want)


@HYPOTHESIS
@given(search=st.text(st.characters(codec="ascii", categories=["L", "N", "P", "S", "Zs"])))
def test_symbol_search_any_ascii_text(gql: GraphQL, search: str) -> None:
    conn = data_of(gql(SEARCH, {"f": {"search": search}}))["symbols"]
    assert [n["ticker"] for n in conn["nodes"]] == expected_search(search)


@pytest.mark.parametrize(
    ("flt", "want"),
    [
        ({"exchange": "NASDAQ"}, ["AAPL", "FB", "GOOG", "MSFT"]),
        ({"exchange": "nyse"}, ["IBM", "UMBRL"]),
        ({"exchange": "NYS"}, []),
        ({"assetClass": "equity"}, sorted(set(DEMO_SYMBOLS) - set(CRYPTO_TICKERS))),
        ({"assetClass": "crypto"}, CRYPTO_TICKERS),
        ({"active": True}, sorted(DEMO_SYMBOLS)),
        ({"active": False}, []),
        ({"tickers": ["msft", "AAPL", "NOPE"]}, ["AAPL", "MSFT"]),
        ({"tickers": []}, []),
        ({"tickers": ["ACME", "IBM"], "exchange": "SYNTH"}, ["ACME"]),
        ({"search": "inc", "exchange": "SYNTH"}, ["GLOBX"]),
        ({"search": "in", "exchange": "SYNTH"}, ["GLOBX", "INITECH"]),
        ({"search": "syn", "exchange": "SYNTH"}, ["ACME", "COINX", "GLOBX", "INITECH"]),
        ({"search": "syn", "tickers": ["GLOBX", "AAPL"], "active": True}, ["GLOBX"]),
    ],
)
def test_symbol_filters(gql: GraphQL, flt: dict[str, Any], want: list[str]) -> None:
    conn = data_of(gql(SEARCH, {"f": flt}))["symbols"]
    assert [n["ticker"] for n in conn["nodes"]] == want
    assert conn["totalCount"] == len(want)


def test_filtered_symbols_page_with_cursors(gql: GraphQL) -> None:
    query = """query($a: String) { symbols(first: 2, after: $a, filter: {search: "in"}) {
        nodes { ticker } pageInfo { hasNextPage endCursor } } }"""
    got: list[str] = []
    after = None
    while True:
        conn = data_of(gql(query, {"a": after}))["symbols"]
        got += [n["ticker"] for n in conn["nodes"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert got == expected_search("in") == ["AAPL", "FB", "GLOBX", "GOOG", "IBM", "INITECH"]


def test_symbol_exposes_stored_range(gql: GraphQL, demo_url: str) -> None:
    query = """{ symbol(ticker: "ACME") { storedTimeframes { interval firstBarTime lastBarTime }
        firstBarTime lastBarTime } }"""
    sym = data_of(gql(query))["symbol"]
    stored = stored_bars(demo_url, "ACME", "M1")
    assert sym["storedTimeframes"] == [
        {
            "interval": "M1",
            "firstBarTime": sym["firstBarTime"],
            "lastBarTime": sym["lastBarTime"],
        }
    ]
    assert pd.Timestamp(sym["firstBarTime"]) == stored.index[0]
    assert pd.Timestamp(sym["lastBarTime"]) == stored.index[-1]
    assert stored.index[-1] - stored.index[0] > timedelta(days=11)
