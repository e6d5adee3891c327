"""Resampled bars equal a pandas `resample` of the same base bars, for every interval.

The reference reads the stored base bars straight from the database and resamples them with
pandas (left label, left-closed, origin at the UTC epoch; weeks `W-MON`; months `MS`): open
first, high max, low min, close last, volume sum, empty buckets dropped. Both read paths of
the API are compared with it: `bars` walked page by page (OLDEST_FIRST) and `series`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from core.settings import Settings
from tests.api.helpers import (
    BAR_FIELDS,
    HYPOTHESIS,
    INTERVALS,
    GraphQL,
    app_client,
    assert_same_bars,
    bad_input,
    data_of,
    frame_of_bars,
    frame_of_series,
    gql_for,
    iso,
    ohlcv,
    resample,
    scratch_database,
    store_bars,
    stored_bars,
    walk_forward,
)

SERIES = f"""
query($t: String!, $i: Interval!, $from: DateTime, $to: DateTime, $max: Int!) {{
  symbol(ticker: $t) {{
    series(interval: $i, from: $from, to: $to, maxPoints: $max) {{
      interval requestedInterval {" ".join(BAR_FIELDS.split())}
    }}
  }}
}}
"""

#: (ticker, base timeframe, intervals): intraday synthetic symbols up to a month, daily
#: stocks to weeks and months (across weekends and month ends).
CASES = [
    *(("ACME", "M1", i) for i in INTERVALS),
    *(("INITECH", "M1", i) for i in ("M15", "H4", "W1")),
    *(("AAPL", "D1", i) for i in ("D1", "W1", "MN1")),
    *(("FB", "D1", i) for i in ("W1", "MN1")),
    *(("GOOG", "D1", i) for i in ("W1", "MN1")),
]


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


def reference(url: str, ticker: str, base: str, interval: str) -> pd.DataFrame:
    return resample(stored_bars(url, ticker, base), interval, base)


def all_bars(gql: GraphQL, ticker: str, interval: str, page: int = 1000, **args: Any) -> Any:
    walk = walk_forward(gql, ticker, interval, "OLDEST_FIRST", lambda _: page, **args)
    return frame_of_bars(walk.bars)


def series(gql: GraphQL, ticker: str, interval: str, **args: Any) -> dict[str, Any]:
    # enough points for every case at the requested interval (the server's estimate spans
    # nights and gaps)
    variables = {"t": ticker, "i": interval, "max": 200_000, **args}
    result: dict[str, Any] = data_of(gql(SERIES, variables))["symbol"]["series"]
    return result


@pytest.mark.parametrize(("ticker", "base", "interval"), CASES)
def test_bars_and_series_equal_pandas_resample(
    gql: GraphQL, demo_url: str, ticker: str, base: str, interval: str
) -> None:
    want = reference(demo_url, ticker, base, interval)
    assert len(want) > 0
    if interval != base:  # stored bars are walked page by page in test_paging
        page = max(7, len(want) // 4 + 1)
        got = all_bars(gql, ticker, interval, page=page)
        assert_same_bars(got, want, f"{ticker} {interval} bars")
    s = series(gql, ticker, interval)
    assert s["interval"] == interval and s["requestedInterval"] == interval
    assert_same_bars(frame_of_series(s), want, f"{ticker} {interval} series")


def test_reference_covers_weekends_month_ends_and_forming_buckets(demo_url: str) -> None:
    """The demo cases above really cross weekends and month ends, and have forming buckets."""
    url = demo_url
    daily = stored_bars(url, "AAPL", "D1")
    weeks = resample(daily, "W1", "D1")
    # a week whose days fall in two months
    spans = [
        (t, daily.loc[t : t + pd.Timedelta(days=6)].index.month.nunique()) for t in weeks.index
    ]
    assert any(n == 2 for _, n in spans)
    assert (weeks.index.day_of_week == 0).all()
    # AAPL's newest bar is Friday 2013-03-01: its week and month are still forming
    assert not weeks["closed"].iloc[-1] and weeks["closed"].iloc[:-1].all()
    acme = reference(url, "ACME", "M1", "H4")
    assert not acme["closed"].iloc[-1]  # 20:00-24:00 bucket, newest minute 20:59
    assert reference(url, "ACME", "M1", "H1")["closed"].all()  # 20:00-21:00 is complete


def check_window(
    gql: GraphQL, url: str, ticker: str, interval: str, lo: datetime, hi: datetime
) -> None:
    """`bars` and `series` in [lo, hi) equal the full pandas resample filtered to the buckets
    whose start lies in [lo, hi), each bucket complete."""
    full = reference(url, ticker, "M1", interval)
    want = full[(full.index >= pd.Timestamp(lo)) & (full.index < pd.Timestamp(hi))]
    window = {"from": iso(lo), "to": iso(hi)}
    got = all_bars(gql, ticker, interval, page=max(3, len(want) // 3 + 1), **window)
    assert_same_bars(got, want, f"{ticker} {interval} bars in [{iso(lo)}, {iso(hi)})")
    assert_same_bars(
        frame_of_series(series(gql, ticker, interval, **window)),
        want,
        f"{ticker} {interval} series in [{iso(lo)}, {iso(hi)})",
    )


OFFSETS = st.sampled_from([0, -5 * 60, 2 * 60, 5 * 60 + 30, -4 * 60])


@HYPOTHESIS
@given(
    interval=st.sampled_from(["M5", "M15", "H1", "H4", "D1", "W1", "MN1"]),
    start=st.integers(0, 16 * 24 * 60),
    length=st.integers(0, 6 * 24 * 60),
    offset=OFFSETS,
)
def test_time_window_selects_whole_buckets_starting_in_range(
    gql: GraphQL, demo_url: str, interval: str, start: int, length: int, offset: int
) -> None:
    """`from`/`to` (any instant, any UTC offset) select whole buckets starting in [from, to)."""
    tz = timezone(timedelta(minutes=offset))
    lo = (datetime(2024, 3, 1, tzinfo=UTC) + timedelta(minutes=start)).astimezone(tz)
    check_window(gql, demo_url, "ACME", interval, lo, lo + timedelta(minutes=length))


# --- Symbols with gaps, in a database of their own ---------------------------------------


def _gappy_minutes() -> pd.DatetimeIndex:
    """Irregular one-minute bars: thin random sessions, whole missing hours and days, bars on
    both sides of week, month and year ends (the year end is also a partition boundary)."""
    rng = np.random.default_rng(7)
    times: list[pd.Timestamp] = []
    for day in pd.date_range("2023-12-27", "2024-01-10", freq="D", tz="UTC").append(
        pd.date_range("2024-02-26", "2024-03-05", freq="D", tz="UTC")
    ):
        if day.day_of_week == 5 or day.day in (3, 29):
            continue  # missing Saturdays and some whole days
        minutes = np.arange(0, 24 * 60)
        keep = rng.random(len(minutes)) < 0.12
        keep[9 * 60 : 11 * 60] = False  # a gap of two whole hours every day
        times.extend(day + pd.Timedelta(minutes=int(m)) for m in minutes[keep])
    edges = [
        "2023-12-31T23:59:00Z",  # Sunday, year and month end
        "2024-01-01T00:00:00Z",  # Monday
        "2024-02-29T23:59:00Z",  # leap day, month end
        "2024-03-01T00:00:00Z",
        "2024-03-03T23:59:00Z",  # Sunday
        "2024-03-04T00:00:00Z",
    ]
    times.extend(pd.Timestamp(e) for e in edges)
    return pd.DatetimeIndex(sorted(set(times)))


def _gappy_days() -> pd.DatetimeIndex:
    """Daily bars seven days a week with holes, ending on a Sunday that closes a month."""
    days = pd.date_range("2023-10-01", "2024-03-31", freq="D", tz="UTC")
    rng = np.random.default_rng(11)
    keep = rng.random(len(days)) < 0.7
    keep[[0, -1]] = True
    keep[(days >= "2023-12-10") & (days < "2024-01-03")] = False  # three weeks missing
    return days[keep]


@pytest.fixture(scope="module")
def gappy_url(make_database: Callable[[], str]) -> str:
    url = scratch_database(make_database)
    store_bars(url, {"GAPPY": ohlcv(_gappy_minutes(), seed=1)}, "M1")
    store_bars(url, {"GAPDAY": ohlcv(_gappy_days(), seed=2)}, "D1")
    return url


@pytest.fixture(scope="module")
def gappy_client(gappy_url: str) -> Iterator[TestClient]:
    with app_client(gappy_url) as client:
        yield client


@pytest.fixture(scope="module")
def gappy_gql(gappy_client: TestClient) -> GraphQL:
    return gql_for(gappy_client)


@pytest.mark.parametrize(
    ("ticker", "base", "interval"),
    [*(("GAPPY", "M1", i) for i in INTERVALS), *(("GAPDAY", "D1", i) for i in ("W1", "MN1"))],
)
def test_gapped_symbol_equals_pandas_resample(
    gappy_gql: GraphQL, gappy_url: str, ticker: str, base: str, interval: str
) -> None:
    want = reference(gappy_url, ticker, base, interval)
    got = all_bars(gappy_gql, ticker, interval, page=max(5, len(want) // 4 + 1))
    assert_same_bars(got, want, f"{ticker} {interval} bars")
    assert_same_bars(
        frame_of_series(series(gappy_gql, ticker, interval)), want, f"{ticker} {interval} series"
    )


def test_gapped_daily_symbol_ending_on_sunday_has_closed_week_and_month(
    gappy_gql: GraphQL,
) -> None:
    """The newest daily bar is Sunday 2024-03-31: its ISO week and its month are complete."""
    query = """{ symbol(ticker: "GAPDAY") {
        w: latestBar(interval: W1) { time closed }
        m: latestBar(interval: MN1) { time closed }
        d: latestBar(interval: D1) { time closed } } }"""
    sym = data_of(gappy_gql(query))["symbol"]
    assert sym["w"]["closed"] is True and sym["m"]["closed"] is True
    assert pd.Timestamp(sym["w"]["time"]) == pd.Timestamp("2024-03-25T00:00:00Z")
    assert pd.Timestamp(sym["m"]["time"]) == pd.Timestamp("2024-03-01T00:00:00Z")
    assert pd.Timestamp(sym["d"]["time"]) == pd.Timestamp("2024-03-31T00:00:00Z")


def test_gapped_week_across_year_end_is_one_bucket(gappy_gql: GraphQL, gappy_url: str) -> None:
    """Bars of Sunday 2023-12-31 belong to the week of Monday 2023-12-25, those of
    2024-01-01 to the next one, whatever the yearly partitions of the table."""
    want = reference(gappy_url, "GAPPY", "M1", "W1")
    got = frame_of_series(series(gappy_gql, "GAPPY", "W1"))
    assert pd.Timestamp("2023-12-25T00:00:00Z") in got.index
    assert pd.Timestamp("2024-01-01T00:00:00Z") in got.index
    assert_same_bars(got, want, "GAPPY W1 series")


def test_unknown_interval_name_is_a_graphql_error(gql: GraphQL) -> None:
    result = gql('{ symbol(ticker: "AAPL") { bars(interval: H2, first: 1) { nodes { time } } } }')
    assert result.get("errors") and result.get("data") is None


def test_interval_names_are_the_published_ones(gql: GraphQL) -> None:
    result = data_of(gql('{ __type(name: "Interval") { enumValues { name } } }'))
    assert [v["name"] for v in result["__type"]["enumValues"]] == list(INTERVALS)


def test_interval_finer_than_stored_gives_no_bars(gql: GraphQL) -> None:
    """A daily symbol has nothing to offer at M5: empty, not an error and not made up."""
    query = """{ symbol(ticker: "AAPL") { bars(interval: M5, first: 5) {
        nodes { time } pageInfo { hasNextPage hasPreviousPage } }
        latestBar(interval: H1) { time } series(interval: H1) { time } } }"""
    sym = data_of(gql(query))["symbol"]
    assert sym["bars"]["nodes"] == [] and sym["bars"]["pageInfo"]["hasNextPage"] is False
    assert sym["latestBar"] is None and sym["series"]["time"] == []


def test_from_with_offset_is_rejected_only_when_naive(gql: GraphQL) -> None:
    query = """query($f: DateTime) { symbol(ticker: "ACME") {
        bars(interval: H1, from: $f, first: 1, order: OLDEST_FIRST) { nodes { time } } } }"""
    ok = data_of(gql(query, {"f": "2024-03-05T09:30:00-05:00"}))
    assert ok["symbol"]["bars"]["nodes"][0]["time"].startswith("2024-03-05T15:00:00")
    assert "offset" in bad_input(gql(query, {"f": "2024-03-05T09:30:00"}))


@pytest.mark.parametrize(
    ("interval", "lo", "hi"),
    [
        # A month start in a zone east of UTC is the evening before in UTC: the February
        # bucket starts before `from`, so only a complete March may come back.
        ("MN1", "2024-03-01T00:00:00+02:00", "2024-04-01T00:00:00+02:00"),
        # West of UTC: `to` at local New Year is 05:00 UTC on January 1st; the January
        # bucket starts before `to` and must be whole, December must be whole too.
        ("MN1", "2023-12-01T00:00:00-05:00", "2024-01-01T00:00:00-05:00"),
        # ISO weeks: local Monday midnight is Sunday evening in UTC.
        ("W1", "2024-01-01T00:00:00+05:30", "2024-03-04T00:00:00+05:30"),
        ("W1", "2023-12-25T00:00:00-04:00", "2024-01-01T00:00:00-04:00"),
    ],
)
def test_window_at_local_midnight_of_week_or_month_start(
    gappy_gql: GraphQL, gappy_url: str, interval: str, lo: str, hi: str
) -> None:
    """Weeks and months are UTC buckets whatever offset `from`/`to` carry."""
    check_window(
        gappy_gql,
        gappy_url,
        "GAPPY",
        interval,
        datetime.fromisoformat(lo),
        datetime.fromisoformat(hi),
    )


@HYPOTHESIS
@given(
    interval=st.sampled_from(["M30", "H4", "D1", "W1", "MN1"]),
    start=st.integers(0, 75 * 24 * 60),
    length=st.integers(0, 40 * 24 * 60),
    offset=OFFSETS,
    snap=st.sampled_from(["none", "day", "month"]),
)
def test_gapped_time_window_selects_whole_buckets(
    gappy_gql: GraphQL,
    gappy_url: str,
    interval: str,
    start: int,
    length: int,
    offset: int,
    snap: str,
) -> None:
    """Like the ACME window test, over round-the-clock gapped bars; bounds are often local
    midnights or local month starts, where UTC and local buckets part."""
    tz = timezone(timedelta(minutes=offset))
    lo = (datetime(2023, 12, 25, tzinfo=UTC) + timedelta(minutes=start)).astimezone(tz)
    hi = lo + timedelta(minutes=length)
    if snap != "none":
        lo = lo.replace(hour=0, minute=0)
        hi = hi.replace(hour=0, minute=0)
    if snap == "month":
        lo = lo.replace(day=1)
    check_window(gappy_gql, gappy_url, "GAPPY", interval, lo, hi)
