"""The TradingView UDF adapter (/udf) against the protocol's contract and against GraphQL.

Expected numbers come from the stored bars (SQL, tests/api/helpers.py) or from a GraphQL query
for the same range, never from the adapter itself.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.intervals import Interval
from graphql_api.auth import Scope
from tests.api.helpers import app_client as unlimited_client
from tests.api.helpers import stored_bars
from tests.security.helpers import app_client, create_keys, demo_database

ERR = "error"


def seconds(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def udf(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(f"/udf/{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def udf_error(client: TestClient, path: str, status: int, **params: Any) -> str:
    response = client.get(f"/udf/{path}", params=params)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["s"] == ERR and isinstance(body["errmsg"], str) and body["errmsg"], body
    return str(body["errmsg"])


def graphql_bars(
    client: TestClient, ticker: str, interval: str, **args: Any
) -> list[dict[str, Any]]:
    """Bars from /graphql, oldest first."""
    query = """query($t: String!, $i: Interval!, $from: DateTime, $to: DateTime, $first: Int,
                     $session: Session, $adjustment: Adjustment! = RAW) {
      symbol(ticker: $t) { bars(interval: $i, from: $from, to: $to, first: $first,
                                order: NEWEST_FIRST, session: $session,
                                adjustment: $adjustment) {
        nodes { time open high low close volume } } } }"""
    response = client.post(
        "/graphql",
        json={"query": query, "variables": {"t": ticker, "i": interval, **args}},
    )
    body = response.json()
    assert "errors" not in body, body
    return list(reversed(body["data"]["symbol"]["bars"]["nodes"]))


def columns(bars: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {
        "t": [seconds(b["time"]) for b in bars],
        "o": [b["open"] for b in bars],
        "h": [b["high"] for b in bars],
        "l": [b["low"] for b in bars],
        "c": [b["close"] for b in bars],
        "v": [b["volume"] for b in bars],
    }


@pytest.fixture(scope="module")
def api(database_url: str) -> Iterator[TestClient]:
    with unlimited_client(database_url) as client:
        yield client


def iso(seconds_: int) -> str:
    return datetime.fromtimestamp(seconds_, tz=UTC).isoformat()


# --- config, time, marks -----------------------------------------------------------------


def test_config_advertises_our_resolutions_and_marks(api: TestClient) -> None:
    config = udf(api, "config")
    assert config["supported_resolutions"] == ["1", "5", "15", "30", "60", "240", "1D", "1W", "1M"]
    assert config["supports_search"] is True
    assert config["supports_group_request"] is False
    assert config["supports_marks"] is True and config["supports_timescale_marks"] is True
    assert config["supports_time"] is True


def test_time_is_unix_seconds_now(api: TestClient) -> None:
    response = api.get("/udf/time")
    assert response.status_code == 200
    assert abs(int(response.text) - time.time()) < 5


def graphql_actions(client: TestClient, ticker: str, lo: str, hi: str) -> list[dict[str, Any]]:
    query = """query($t: String!, $from: Date, $to: Date) { symbol(ticker: $t) {
      corporateActions(from: $from, to: $to) { kind exDate ratio amount currency } } }"""
    body = client.post(
        "/graphql", json={"query": query, "variables": {"t": ticker, "from": lo, "to": hi}}
    ).json()
    assert "errors" not in body, body
    return list(body["data"]["symbol"]["corporateActions"])


def midnight(day: str) -> int:
    return seconds(f"{day}T00:00:00+00:00")


def test_marks_are_the_corporate_actions_in_the_range(api: TestClient) -> None:
    lo, hi = midnight("2000-01-01"), midnight("2014-01-01")
    marks = udf(api, "marks", symbol="AAPL", resolution="1D", **{"from": lo, "to": hi})
    actions = graphql_actions(api, "AAPL", "2000-01-01", "2014-01-01")
    assert len(marks) == len(actions) >= 5
    assert [m["time"] for m in marks] == [midnight(a["exDate"]) for a in actions]
    assert len({m["id"] for m in marks}) == len(marks)
    for mark in marks:
        assert set(mark) == {"id", "time", "color", "text", "label", "labelFontColor", "minSize"}
    split = next(m for m in marks if m["time"] == midnight("2005-02-28"))
    assert split["label"] == "S" and "Split 2:1" in split["text"] and "2005-02-28" in split["text"]
    dividends = [m for m in marks if m["label"] == "D"]
    assert len(dividends) == sum(a["kind"] == "DIVIDEND" for a in actions) == 3
    assert all("2.65 USD" in m["text"] for m in dividends)
    assert split["color"] != dividends[0]["color"]
    # MSFT's 2003-02-18 split and nothing of AAPL's.
    msft = udf(
        api,
        "marks",
        symbol="NASDAQ:MSFT",
        resolution="D",
        **{"from": midnight("2003-02-18"), "to": midnight("2003-02-19")},
    )
    assert [(m["time"], m["label"]) for m in msft] == [(midnight("2003-02-18"), "S")]


def test_marks_range_is_from_inclusive_to_exclusive(api: TestClient) -> None:
    split = midnight("2005-02-28")
    at = udf(api, "marks", symbol="AAPL", resolution="1D", **{"from": split, "to": split + 1})
    assert [m["time"] for m in at] == [split]
    assert (
        udf(
            api, "marks", symbol="AAPL", resolution="1D", **{"from": split + 1, "to": split + 86400}
        )
        == []
    )
    assert (
        udf(api, "marks", symbol="AAPL", resolution="1D", **{"from": split - 86400, "to": split})
        == []
    )


def test_timescale_marks_carry_a_tooltip(api: TestClient) -> None:
    lo, hi = midnight("2003-01-01"), midnight("2005-01-01")
    marks = udf(api, "timescale_marks", symbol="MSFT", resolution="1W", **{"from": lo, "to": hi})
    actions = graphql_actions(api, "MSFT", "2003-01-01", "2005-01-01")
    assert [m["time"] for m in marks] == [midnight(a["exDate"]) for a in actions]
    assert len(marks) == 5
    for mark, action in zip(marks, actions, strict=True):
        assert set(mark) == {"id", "time", "color", "label", "tooltip"}
        assert mark["label"] == action["kind"][0]
        assert len(mark["tooltip"]) == 1 and action["exDate"] in mark["tooltip"][0]
    assert marks[0]["tooltip"] == ["Split 2:1, ex-date 2003-02-18"]


def test_intraday_marks_sit_on_the_session_open(api: TestClient) -> None:
    """On intraday bars the mark is at the ex-date's regular open (09:30 New York), where the
    day's first bar starts, not at 00:00 UTC (the previous evening in New York)."""
    split = midnight("2005-02-28")
    marks = udf(
        api, "marks", symbol="AAPL", resolution="60", **{"from": split, "to": split + 86400}
    )
    assert [m["time"] for m in marks] == [seconds("2005-02-28T09:30:00-05:00")]


def test_bad_marks_requests_are_4xx_errors(api: TestClient) -> None:
    udf_error(api, "marks", 400, symbol="AAPL", resolution="7", **{"from": 0, "to": 1})
    udf_error(api, "marks", 400, symbol="AAPL", resolution="1D", **{"from": 0})
    udf_error(api, "timescale_marks", 400, symbol="AAPL", resolution="1D", **{"from": 2, "to": 1})
    udf_error(api, "marks", 404, symbol="NOSUCH", resolution="1D", **{"from": 0, "to": 1})


# --- resolution mapping --------------------------------------------------------------------

#: resolution -> (bucket length in seconds, or None for calendar weeks/months)
INTRADAY = {"1": 60, "5": 300, "15": 900, "30": 1800, "60": 3600, "240": 14400}


@pytest.mark.parametrize("resolution", [*INTRADAY, "1D", "D", "1W", "W", "1M", "M"])
def test_resolution_maps_to_the_interval_with_that_bar_length(
    api: TestClient, resolution: str
) -> None:
    # ACME: synthetic one-minute bars over ten days from 2024-03-04 (a Monday).
    end = seconds("2024-03-15T00:00:00+00:00")
    body = udf(api, "history", symbol="ACME", resolution=resolution, countback=3, to=end)
    assert body["s"] == "ok", body
    times = body["t"]
    assert times == sorted(times) and len(times) >= (1 if resolution in ("1M", "M") else 2)
    for t in times:
        start = datetime.fromtimestamp(t, tz=UTC)
        if resolution in INTRADAY:
            assert t % INTRADAY[resolution] == 0
        else:
            assert t % 86400 == 0  # daily and coarser: 00:00 UTC of the trading date
        if resolution in ("1W", "W"):
            assert start.weekday() == 0
        if resolution in ("1M", "M"):
            assert start.day == 1
    if resolution in INTRADAY:
        assert {b - a for a, b in itertools.pairwise(times)} == {INTRADAY[resolution]}
    # Same numbers as GraphQL at the interval the resolution names.
    interval = {**dict.fromkeys(("1D", "D"), "D1"), **dict.fromkeys(("1W", "W"), "W1")}
    interval |= dict.fromkeys(("1M", "M"), "MN1")
    interval |= {"1": "M1", "5": "M5", "15": "M15", "30": "M30", "60": "H1", "240": "H4"}
    want = graphql_bars(api, "ACME", interval[resolution], to=iso(end), first=3)
    assert {k: v for k, v in body.items() if k != "s"} == columns(want)


@pytest.mark.parametrize("resolution", ["3", "2D", "1S", "10", "12M", "abc", "0"])
def test_unsupported_resolution_is_a_400_error(api: TestClient, resolution: str) -> None:
    message = udf_error(
        api, "history", 400, symbol="AAPL", resolution=resolution, **{"from": 0, "to": 10**9}
    )
    assert "resolution" in message and "1D" in message


# --- history -------------------------------------------------------------------------------


def test_range_returns_the_stored_bars_and_equals_graphql(
    api: TestClient, database_url: str
) -> None:
    lo, hi = seconds("2012-01-01T00:00:00+00:00"), seconds("2013-01-01T00:00:00+00:00")
    body = udf(api, "history", symbol="AAPL", resolution="1D", **{"from": lo, "to": hi})
    stored = stored_bars(database_url, "AAPL", "D1")
    stored = stored[(stored.index >= iso(lo)) & (stored.index < iso(hi))]
    assert len(body["t"]) == len(stored) > 200
    assert body["t"] == [int(ts.timestamp()) for ts in stored.index]
    assert body["c"] == stored["close"].tolist()
    assert body["v"] == stored["volume"].tolist()
    assert {k: v for k, v in body.items() if k != "s"} == columns(
        graphql_bars(api, "AAPL", "D1", **{"from": iso(lo), "to": iso(hi), "first": 1000})
    )


def test_to_is_exclusive_and_from_inclusive(api: TestClient, database_url: str) -> None:
    stored = stored_bars(database_url, "AAPL", "D1")
    a, b = (int(ts.timestamp()) for ts in stored.index[100:102])
    exact = udf(api, "history", symbol="AAPL", resolution="1D", **{"from": a, "to": b})
    assert exact["t"] == [a]
    one_more = udf(api, "history", symbol="AAPL", resolution="1D", **{"from": a, "to": b + 1})
    assert one_more["t"] == [a, b]


def test_countback_wins_over_from(api: TestClient, database_url: str) -> None:
    stored = stored_bars(database_url, "AAPL", "D1")
    times = [int(ts.timestamp()) for ts in stored.index]
    end = times[500]
    # `from` just below `to` would hold one bar; countback asks for 40 and gets 40.
    body = udf(
        api, "history", symbol="AAPL", resolution="1D", countback=40, **{"from": end - 1, "to": end}
    )
    assert body["t"] == times[460:500]
    # A `from` far back: still only the newest 40 before `to`.
    body = udf(
        api, "history", symbol="AAPL", resolution="1D", countback=40, **{"from": 0, "to": end}
    )
    assert body["t"] == times[460:500]
    # Fewer bars than countback exist before `to`: all of them.
    body = udf(api, "history", symbol="AAPL", resolution="1D", countback=40, to=times[5])
    assert body["t"] == times[:5]


def test_empty_range_says_no_data_with_the_next_older_bar(
    api: TestClient, database_url: str
) -> None:
    stored = stored_bars(database_url, "AAPL", "D1")
    first, last = (int(ts.timestamp()) for ts in (stored.index[0], stored.index[-1]))
    after = udf(
        api,
        "history",
        symbol="AAPL",
        resolution="1D",
        **{"from": last + 86400, "to": last + 40 * 86400},
    )
    assert after == {"s": "no_data", "nextTime": last}
    # A gap inside the data (a weekend): nextTime is the Friday before it.
    friday = next(ts for ts in stored.index if ts.weekday() == 4 and ts != stored.index[-1])
    saturday = int(friday.timestamp()) + 86400
    gap = udf(
        api,
        "history",
        symbol="AAPL",
        resolution="1D",
        **{"from": saturday, "to": saturday + 2 * 86400},
    )
    assert gap == {"s": "no_data", "nextTime": int(friday.timestamp())}
    # Nothing older at all: no nextTime.
    before = udf(
        api, "history", symbol="AAPL", resolution="1D", **{"from": first - 90 * 86400, "to": first}
    )
    assert before == {"s": "no_data"}
    assert udf(api, "history", symbol="AAPL", resolution="1D", countback=5, to=first) == {
        "s": "no_data"
    }


def test_a_range_of_many_pages_is_read_whole(make_database: Callable[[], str]) -> None:
    url = demo_database(make_database)
    with unlimited_client(url, max_page_size_bars=100) as small:
        # ACME trades 14:30-21:00 UTC: six hours are 360 one-minute bars, four pages of 100.
        lo, hi = seconds("2024-03-04T14:30:00+00:00"), seconds("2024-03-04T20:30:00+00:00")
        body = udf(small, "history", symbol="ACME", resolution="1", **{"from": lo, "to": hi})
        assert len(body["t"]) == 360 and body["t"] == list(range(lo, hi, 60))
        stored = stored_bars(url, "ACME", "M1")
        stored = stored[(stored.index >= iso(lo)) & (stored.index < iso(hi))]
        assert body["c"] == stored["close"].tolist()
        # More than MAX_HISTORY_PAGES pages: refused with a hint, not truncated.
        message = udf_error(
            small,
            "history",
            413,
            symbol="ACME",
            resolution="1",
            **{"from": lo, "to": lo + 9 * 86400},
        )
        assert "countback" in message
        too_many = udf_error(
            small, "history", 400, symbol="ACME", resolution="1", countback=101, to=hi
        )
        assert "100" in too_many


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({"resolution": "1D", "from": 0, "to": 10**9}, 400, "symbol"),
        ({"symbol": "AAPL", "from": 0, "to": 10**9}, 400, "resolution"),
        ({"symbol": "AAPL", "resolution": "1D", "from": 0}, 400, "to"),
        ({"symbol": "AAPL", "resolution": "1D", "to": 10**9}, 400, "from"),
        ({"symbol": "AAPL", "resolution": "1D", "from": "x", "to": 10**9}, 400, "integer"),
        ({"symbol": "AAPL", "resolution": "1D", "from": 10**9, "to": 10**9}, 400, "before"),
        ({"symbol": "AAPL", "resolution": "1D", "to": 10**9, "countback": 0}, 400, "countback"),
        ({"symbol": "AAPL", "resolution": "1D", "from": 0, "to": 10**13}, 400, "range"),
        ({"symbol": "NOSUCH", "resolution": "1D", "from": 0, "to": 10**9}, 404, "NOSUCH"),
    ],
)
def test_bad_history_requests_are_4xx_errors(
    api: TestClient, params: dict[str, Any], status: int, fragment: str
) -> None:
    assert fragment in udf_error(api, "history", status, **params)


def test_exchange_prefixed_symbols_are_accepted(api: TestClient) -> None:
    plain = udf(api, "history", symbol="AAPL", resolution="1D", countback=3, to=2 * 10**9)
    prefixed = udf(api, "history", symbol="NASDAQ:AAPL", resolution="1D", countback=3, to=2 * 10**9)
    assert plain == prefixed and plain["s"] == "ok"


def test_history_passes_session_and_adjustment_to_bars(api: TestClient) -> None:
    # UMBRL: an NYSE stock with sparse pre- and post-market minutes.
    lo, hi = seconds("2024-11-04T00:00:00+00:00"), seconds("2024-11-09T00:00:00+00:00")
    window = {"from": iso(lo), "to": iso(hi), "first": 1000}
    regular = udf(api, "history", symbol="UMBRL", resolution="60", **{"from": lo, "to": hi})
    extended = udf(
        api,
        "history",
        symbol="UMBRL",
        resolution="60",
        session="extended",
        **{"from": lo, "to": hi},
    )
    assert {k: v for k, v in regular.items() if k != "s"} == columns(
        graphql_bars(api, "UMBRL", "H1", **window)
    )
    assert {k: v for k, v in extended.items() if k != "s"} == columns(
        graphql_bars(api, "UMBRL", "H1", session="EXTENDED", **window)
    )
    assert len(extended["t"]) > len(regular["t"])
    # Regular hours by default: the first bar of each day at 09:30 New York.
    assert datetime.fromtimestamp(regular["t"][0], tz=UTC).strftime("%H:%M") == "14:30"
    # Adjusted daily AAPL across its 2005-02-28 split equals bars(adjustment: ALL).
    lo, hi = seconds("2005-02-14T00:00:00+00:00"), seconds("2005-03-12T00:00:00+00:00")
    window = {"from": iso(lo), "to": iso(hi), "first": 100}
    raw = udf(api, "history", symbol="AAPL", resolution="1D", **{"from": lo, "to": hi})
    adjusted = udf(
        api, "history", symbol="AAPL", resolution="1D", adjustment="ALL", **{"from": lo, "to": hi}
    )
    assert {k: v for k, v in adjusted.items() if k != "s"} == columns(
        graphql_bars(api, "AAPL", "D1", adjustment="ALL", **window)
    )
    assert adjusted["t"] == raw["t"] and adjusted["c"] != raw["c"]
    counted = udf(
        api, "history", symbol="AAPL", resolution="1D", adjustment="all", countback=3, to=hi
    )
    assert counted["c"] == adjusted["c"][-3:]
    assert "session" in udf_error(
        api, "history", 400, symbol="AAPL", resolution="1D", session="night", countback=3, to=hi
    )
    assert "adjustment" in udf_error(
        api, "history", 400, symbol="AAPL", resolution="1D", adjustment="x", countback=3, to=hi
    )


# --- symbols and search --------------------------------------------------------------------


def test_symbol_info_from_the_data(api: TestClient, database_url: str) -> None:
    daily = udf(api, "symbols", symbol="AAPL")
    assert daily["ticker"] == "AAPL" and daily["description"] == "Apple Inc."
    assert daily["exchange"] == "NASDAQ" and daily["type"] == "equity"
    assert daily["has_intraday"] is False  # only daily bars are stored
    assert daily["supported_resolutions"] == ["1D", "1W", "1M"]
    # AAPL trades on the Nasdaq calendar: New York regular hours, extended as a subsession.
    assert daily["session"] == "0930-1600:23456" and daily["timezone"] == "America/New_York"
    assert daily["subsession_id"] == "regular"
    assert {s["id"]: s["session"] for s in daily["subsessions"]} == {
        "regular": "0930-1600:23456",
        "extended": "0400-2000:23456",
    }
    # pricescale writes every recent price exactly, and a tenth of it would not.
    closes = stored_bars(database_url, "AAPL", "D1")["close"].tail(50).tolist()
    scale = daily["pricescale"]
    assert all(abs(round(c * scale) - c * scale) < 1e-6 for c in closes)
    assert scale == 100 or any(abs(round(c * scale / 10) - c * scale / 10) > 1e-6 for c in closes)
    intraday = udf(api, "symbols", symbol="ACME")
    assert intraday["has_intraday"] is True
    # ACME is on the 24/7 calendar (UTC buckets): around the clock, no subsessions.
    assert intraday["session"] == "24x7" and intraday["timezone"] == "Etc/UTC"
    assert "subsessions" not in intraday
    assert intraday["supported_resolutions"] == [
        "1",
        "5",
        "15",
        "30",
        "60",
        "240",
        "1D",
        "1W",
        "1M",
    ]
    assert udf_error(api, "symbols", 404, symbol="NOSUCH")
    assert udf_error(api, "symbols", 400)


def test_search_finds_symbols_by_ticker_prefix_and_filters(api: TestClient) -> None:
    found = udf(api, "search", query="AC", limit=10)
    assert [s["ticker"] for s in found][:1] == ["ACME"]
    assert found[0]["full_name"] == "SYNTH:ACME" and found[0]["description"]
    synth = udf(api, "search", query="", exchange="SYNTH", limit=50)
    assert {s["ticker"] for s in synth} == {"ACME", "COINX", "GLOBX", "INITECH"}
    assert len(udf(api, "search", query="", limit=2)) == 2
    assert udf_error(api, "search", 400, query="A", limit=0)


# --- the same key, rate limit and cache as GraphQL ------------------------------------------


@pytest.fixture(scope="module")
def guarded_url(make_database: Callable[[], str]) -> str:
    return demo_database(make_database)


def test_reads_need_the_same_key_as_graphql(guarded_url: str) -> None:
    tokens = create_keys(guarded_url, reader=[Scope.READ], ingester=[Scope.INGEST])
    with app_client(guarded_url, require_read_key=True, api_key_cache_seconds=0) as api:
        params = {"symbol": "AAPL", "resolution": "1D", "countback": 2, "to": 2 * 10**9}
        anonymous = api.get("/udf/history", params=params)
        assert anonymous.status_code == 401 and anonymous.json()["s"] == ERR
        assert (
            api.post(
                "/graphql", json={"query": '{ symbol(ticker: "AAPL") { ticker } }'}
            ).status_code
            == 401
        )
        ingester = api.get(
            "/udf/history", params=params, headers={"authorization": f"Bearer {tokens['ingester']}"}
        )
        assert ingester.status_code == 403 and ingester.json()["s"] == ERR
        reader = api.get(
            "/udf/history", params=params, headers={"authorization": f"Bearer {tokens['reader']}"}
        )
        assert reader.status_code == 200 and reader.json()["s"] == "ok"
        assert api.get("/udf/symbols", params={"symbol": "AAPL"}).status_code == 401
        assert api.get("/udf/search", params={"query": "A"}).status_code == 401
        # No market data in these two: open like /healthz.
        assert api.get("/udf/config").status_code == 200
        assert api.get("/udf/time").status_code == 200


def test_udf_requests_spend_the_graphql_rate_limit(guarded_url: str) -> None:
    with app_client(guarded_url, rate_limit_cost_per_minute=1000) as api:
        params = {"symbol": "AAPL", "resolution": "1D", "countback": 20, "to": 2 * 10**9}
        first = api.get("/udf/history", params=params)
        assert first.status_code == 200
        remaining = int(first.headers["ratelimit-remaining"])
        assert remaining < 1000
        statuses = [api.get("/udf/history", params=params).status_code for _ in range(10)]
        assert 429 in statuses
        limited = api.get("/udf/history", params=params)
        assert limited.status_code == 429 and limited.json()["s"] == ERR
        assert "rate limit" in limited.json()["errmsg"]
        # The same budget as /graphql: the same bars are refused there too.
        query = '{ symbol(ticker: "AAPL") { bars(first: 20) { nodes { time close } } } }'
        graphql = api.post("/graphql", json={"query": query})
        assert graphql.status_code == 429


def test_history_is_cacheable_with_the_graphql_etag(api: TestClient) -> None:
    params = {"symbol": "AAPL", "resolution": "1D", "countback": 5, "to": 2 * 10**9}
    first = api.get("/udf/history", params=params)
    tag = first.headers["etag"]
    assert first.headers["cache-control"].startswith("public, max-age=")
    again = api.get("/udf/history", params=params, headers={"if-none-match": tag})
    assert again.status_code == 304
    other = api.get(
        "/udf/history", params={**params, "countback": 6}, headers={"if-none-match": tag}
    )
    assert other.status_code == 200 and len(other.json()["t"]) == 6


def test_cost_limit_applies(guarded_url: str) -> None:
    with app_client(guarded_url, max_query_cost=50, rate_limit_cost_per_minute=0) as api:
        message = udf_error(
            api, "history", 400, symbol="AAPL", resolution="1D", countback=5000, to=2 * 10**9
        )
        assert "cost" in message.lower()


def test_interval_table_matches_core(api: TestClient) -> None:
    """Every interval the API serves is reachable from some resolution."""
    from graphql_api.udf import RESOLUTIONS

    assert set(RESOLUTIONS.values()) == set(Interval)


def test_registered_only_persisted_queries_do_not_refuse_udf(guarded_url: str) -> None:
    """Registered-only mode governs documents clients send; the adapter's own are not theirs."""
    with app_client(guarded_url, persisted_queries="registered") as api:
        refused = api.post("/graphql", json={"query": '{ symbol(ticker: "AAPL") { ticker } }'})
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
        body = udf(api, "history", symbol="AAPL", resolution="1D", countback=3, to=2 * 10**9)
        assert body["s"] == "ok" and len(body["t"]) == 3
