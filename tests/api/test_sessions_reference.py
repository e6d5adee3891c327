"""Trading sessions (issue #15) checked against an independent pandas reference.

The reference is built here from the one-minute bars and pandas_market_calendars' NYSE
schedule (pre, market_open, market_close, post in UTC), without the service's own calendar or
bucketing code:

- each bar gets its "part" of the New York local day: night (before the pre-market), pre-market
  [pre, open), regular [open, close), post-market [close, post), night again [post, midnight),
  or a whole local day [midnight, midnight) on days without a session;
- the session filter keeps the regular part (REGULAR), pre/regular/post (EXTENDED) or everything
  (ALL);
- SESSION alignment buckets intraday intervals from each part's start, the last bucket cut at
  the part's end; D1/W1/MN1 are the local date / its ISO week / its month, stamped 00:00 UTC of
  the date, Monday or 1st. UTC alignment is the old UTC grid (from 2000-01-03 00:00 UTC; UTC
  day, ISO week of the UTC date, UTC month) after the filter;
- open first, high max, low min, close last, volume sum; `closed` is false only for a bucket
  ending after the end of the newest stored bar.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pandas_market_calendars as mcal
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from core.settings import Settings
from tests.api.helpers import (
    GraphQL,
    app_client,
    data_of,
    fresh_database,
    gql_for,
    iso,
    ohlcv,
    resample,
    store_bars,
    stored_bars,
)
from workers.demo import crypto_minutes, session_minutes
from workers.symbols import SymbolInfo

NY = "America/New_York"
MINUTE = pd.Timedelta(minutes=1)
UTC_ORIGIN = pd.Timestamp("2000-01-03", tz="UTC")
INTRADAY = {"M5": 5, "M15": 15, "M30": 30, "H1": 60, "H4": 240}
INTERVALS = ("M5", "M15", "M30", "H1", "H4", "D1", "W1", "MN1")
SESSIONS = ("REGULAR", "EXTENDED", "ALL")
ALIGNMENTS = ("SESSION", "UTC")
PRICES = ("open", "high", "low", "close", "volume")
NS = 1_000_000_000


# --- The reference --------------------------------------------------------------------------


@functools.cache
def nyse_schedule() -> pd.DataFrame:
    """NYSE sessions (pre, open, close, post as UTC nanoseconds), indexed by naive session
    date, over a span covering every date these tests use (and the weeks/months around)."""
    sched = mcal.get_calendar("NYSE").schedule("2023-10-01", "2025-03-31", start="pre", end="post")
    out = pd.DataFrame(index=pd.DatetimeIndex(sched.index).normalize().as_unit("ns"))
    for name, col in (
        ("pre", "pre"),
        ("open", "market_open"),
        ("close", "market_close"),
        ("post", "post"),
    ):
        out[name] = pd.DatetimeIndex(pd.to_datetime(sched[col], utc=True)).as_unit("ns").asi8
    return out


def local_midnight(days: pd.DatetimeIndex) -> np.ndarray:
    """UTC nanoseconds of New York midnight starting each naive local date."""
    return days.tz_localize(NY).tz_convert("UTC").as_unit("ns").asi8


def day_parts(index: pd.DatetimeIndex) -> pd.DataFrame:
    """For each UTC bar start: its local date, part kind and part bounds (UTC ns)."""
    index = index.as_unit("ns")
    t = index.asi8
    day = index.tz_convert(NY).tz_localize(None).normalize()
    sched = nyse_schedule().reindex(day)
    has = sched["open"].notna().to_numpy()
    pre, op, cl, post = (
        sched[c].fillna(0).astype(np.int64).to_numpy() for c in ("pre", "open", "close", "post")
    )
    mid = local_midnight(day)
    nxt = local_midnight(day + pd.Timedelta(days=1))
    conds = [~has, t < pre, t < op, t < cl, t < post]
    kind = np.select(conds, ["day", "night", "pre", "reg", "post"], "night")
    start = np.select(conds, [mid, mid, pre, op, cl], post)
    end = np.select(conds, [nxt, pre, op, cl, post], nxt)
    return pd.DataFrame({"day": day, "kind": kind, "start": start, "end": end}, index=index)


def session_mask(parts: pd.DataFrame, session: str) -> np.ndarray:
    kinds = {"REGULAR": ("reg",), "EXTENDED": ("pre", "reg", "post")}.get(session)
    if kinds is None:
        return np.ones(len(parts), dtype=bool)
    return np.asarray(parts["kind"].isin(kinds))


def _period_end(first: pd.Timestamp, after: pd.Timestamp, session: str) -> int:
    """Session-aware end (UTC ns) of a D1/W1/MN1 bucket spanning local dates [first, after)."""
    if session == "ALL":
        return int(local_midnight(pd.DatetimeIndex([after]))[0])
    sched = nyse_schedule()
    inside = sched[(sched.index >= first) & (sched.index < after)]
    return int(inside["close" if session == "REGULAR" else "post"].max())


def bucket_bounds(
    index: pd.DatetimeIndex, parts: pd.DataFrame, interval: str, session: str, alignment: str
) -> tuple[np.ndarray, np.ndarray]:
    """Bucket start and end (UTC ns) of each kept bar."""
    t = index.as_unit("ns").asi8
    if interval in INTRADAY:
        step = INTRADAY[interval] * 60 * NS
        if alignment == "UTC":
            origin = UTC_ORIGIN.as_unit("ns").value
            start = origin + (t - origin) // step * step
            return start, start + step
        pstart = parts["start"].to_numpy()
        start = pstart + (t - pstart) // step * step
        return start, np.minimum(start + step, parts["end"].to_numpy())
    if alignment == "UTC":
        utc_day = index.tz_localize(None).normalize()
        if interval == "D1":
            first, after = utc_day, utc_day + pd.Timedelta(days=1)
        elif interval == "W1":
            first = utc_day - pd.to_timedelta(utc_day.weekday, unit="D")
            after = first + pd.Timedelta(days=7)
        else:
            first = utc_day - pd.to_timedelta(utc_day.day - 1, unit="D")
            after = first + pd.offsets.MonthBegin(1)
        return (
            first.tz_localize("UTC").as_unit("ns").asi8,
            pd.DatetimeIndex(after).tz_localize("UTC").as_unit("ns").asi8,
        )
    day = pd.DatetimeIndex(parts["day"])
    if interval == "D1":
        first, after = day, day + pd.Timedelta(days=1)
    elif interval == "W1":
        first = day - pd.to_timedelta(day.weekday, unit="D")
        after = first + pd.Timedelta(days=7)
    else:
        first = day - pd.to_timedelta(day.day - 1, unit="D")
        after = pd.DatetimeIndex(first + pd.offsets.MonthBegin(1))
    ends = {
        (f, a): _period_end(f, a, session)
        for f, a in set(zip(first, pd.DatetimeIndex(after), strict=True))
    }
    end = np.array(
        [ends[(f, a)] for f, a in zip(first, pd.DatetimeIndex(after), strict=True)],
        dtype=np.int64,
    )
    return first.tz_localize("UTC").as_unit("ns").asi8, end


def reference(minutes: pd.DataFrame, interval: str, session: str, alignment: str) -> pd.DataFrame:
    """Expected bars (indexed by UTC start; OHLCV, closed, filled=False, end) of one-minute
    `minutes` (indexed by UTC start, oldest first) for a NYSE symbol."""
    minutes = minutes.sort_index()
    newest_end = (minutes.index[-1] + MINUTE).as_unit("ns").value
    parts = day_parts(minutes.index)
    keep = session_mask(parts, session)
    kept, parts = minutes[keep], parts[keep]
    if kept.empty:
        return _empty()
    start, end = bucket_bounds(pd.DatetimeIndex(kept.index), parts, interval, session, alignment)
    frame = kept[list(PRICES)].assign(start=start, end=end)
    grouped = frame.groupby("start", sort=True)
    out = grouped.agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
        end=("end", "first"),
    )
    assert (grouped["end"].nunique() == 1).all(), "reference bug: one bucket, two ends"
    out.index = pd.DatetimeIndex(pd.to_datetime(out.index, utc=True), name="ts")
    out["closed"] = out["end"] <= newest_end
    out["filled"] = False
    return out


def _empty() -> pd.DataFrame:
    out = pd.DataFrame(
        {c: pd.Series(dtype=float) for c in PRICES}
        | {"end": pd.Series(dtype=np.int64), "closed": pd.Series(dtype=bool)}
        | {"filled": pd.Series(dtype=bool)}
    )
    out.index = pd.DatetimeIndex([], tz="UTC", name="ts")
    return out


def slots(interval: str, session: str) -> pd.DataFrame:
    """Every bucket (start → end, UTC ns) of the chosen trading hours under SESSION alignment,
    over the whole schedule: REGULAR/EXTENDED only (what `fill` fills)."""
    sched = nyse_schedule()
    if session == "REGULAR":
        bounds = [("open", "close")]
    else:
        bounds = [("pre", "open"), ("open", "close"), ("close", "post")]
    starts: list[int] = []
    ends: list[int] = []
    if interval == "D1":
        starts = list(sched.index.tz_localize("UTC").as_unit("ns").asi8)
        ends = list(sched["close" if session == "REGULAR" else "post"])
    else:
        step = INTRADAY[interval] * 60 * NS
        for row in sched.itertuples(index=False):
            for a, b in bounds:
                lo, hi = getattr(row, a), getattr(row, b)
                for s in range(lo, hi, step):
                    starts.append(s)
                    ends.append(min(s + step, hi))
    index = pd.DatetimeIndex(pd.to_datetime(starts, utc=True), name="ts")
    return pd.DataFrame({"end": ends}, index=index).sort_index()


def filled_reference(minutes: pd.DataFrame, interval: str, session: str) -> pd.DataFrame:
    """`reference` (SESSION alignment) plus a filled bar for every empty slot between the
    first and the newest kept bar: prices the previous close, volume 0, filled true."""
    base = reference(minutes, interval, session, "SESSION")
    newest_end = (minutes.sort_index().index[-1] + MINUTE).as_unit("ns").value
    every = slots(interval, session)
    every = every[(every.index >= base.index[0]) & (every.index <= base.index[-1])]
    assert base.index.isin(every.index).all(), "reference bug: a bucket that is no slot"
    out = base.reindex(every.index)
    missing = out["open"].isna()
    prev_close = out["close"].ffill()
    for col in ("open", "high", "low", "close"):
        out.loc[missing, col] = prev_close[missing]
    out.loc[missing, "volume"] = 0.0
    out["end"] = every["end"]
    out["filled"] = missing
    out["closed"] = out["end"] <= newest_end
    return out


# --- Reading the service ----------------------------------------------------------------------

FIELDS = "time open high low close volume closed filled"

SERIES = f"""
query($t: String!, $i: Interval!, $from: DateTime, $to: DateTime, $max: Int!,
      $s: Session, $a: Alignment!, $f: Fill!) {{
  symbol(ticker: $t) {{
    series(interval: $i, from: $from, to: $to, maxPoints: $max, session: $s,
           alignment: $a, fill: $f) {{ interval {FIELDS} }}
  }}
}}
"""

BARS = f"""
query($t: String!, $i: Interval!, $o: BarOrder!, $first: Int, $after: String, $last: Int,
      $before: String, $from: DateTime, $to: DateTime, $s: Session, $a: Alignment!,
      $f: Fill!) {{
  symbol(ticker: $t) {{
    bars(interval: $i, order: $o, first: $first, after: $after, last: $last, before: $before,
         from: $from, to: $to, session: $s, alignment: $a, fill: $f) {{
      edges {{ cursor node {{ {FIELDS} }} }}
      pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
    }}
  }}
}}
"""


def series(
    gql: GraphQL,
    ticker: str,
    interval: str,
    session: str | None,
    alignment: str = "SESSION",
    fill: str = "NONE",
    start: pd.Timestamp | None = None,
    stop: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The service's `series` at `interval` (maxPoints large enough never to coarsen)."""
    variables = {
        "t": ticker,
        "i": interval,
        "max": 10000,
        "s": session,
        "a": alignment,
        "f": fill,
        "from": iso(start) if start is not None else None,
        "to": iso(stop) if stop is not None else None,
    }
    got = data_of(gql(SERIES, variables))["symbol"]["series"]
    assert got["interval"] == interval, f"series coarsened to {got['interval']}"
    cols = ("open", "high", "low", "close", "volume", "closed", "filled")
    assert len({len(got[c]) for c in ("time", *cols)}) == 1, "series columns differ in length"
    return to_frame(got["time"], {c: got[c] for c in cols})


def to_frame(times: list[str], cols: dict[str, list[Any]]) -> pd.DataFrame:
    assert all(t[-6] in "+-" or t.endswith("Z") for t in times), "times lack an offset"
    index = pd.DatetimeIndex(pd.to_datetime(times, utc=True, format="ISO8601"), name="ts")
    frame = pd.DataFrame({c: np.asarray(cols[c], dtype=float) for c in PRICES}, index=index)
    frame["closed"] = np.asarray(cols["closed"], dtype=bool)
    frame["filled"] = np.asarray(cols["filled"], dtype=bool)
    return frame


def bars_frame(nodes: list[dict[str, Any]]) -> pd.DataFrame:
    cols = ("open", "high", "low", "close", "volume", "closed", "filled")
    return to_frame([n["time"] for n in nodes], {c: [n[c] for n in nodes] for c in cols})


def page(gql: GraphQL, **variables: Any) -> dict[str, Any]:
    conn: dict[str, Any] = data_of(gql(BARS, variables))["symbol"]["bars"]
    edges = conn["edges"]
    if edges:
        assert conn["pageInfo"]["startCursor"] == edges[0]["cursor"]
        assert conn["pageInfo"]["endCursor"] == edges[-1]["cursor"]
    return conn


def walk_forward(gql: GraphQL, size: int, **variables: Any) -> list[dict[str, Any]]:
    """All bars met following first/after from the start, in list order."""
    nodes: list[dict[str, Any]] = []
    after = None
    for _ in range(10_000):
        conn = page(gql, first=size, after=after, **variables)
        nodes.extend(e["node"] for e in conn["edges"])
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not conn["pageInfo"]["hasNextPage"]:
            return nodes
        assert conn["edges"], "an empty page says more follow"
        after = conn["pageInfo"]["endCursor"]
    raise AssertionError("forward walk did not end")


def walk_backward(gql: GraphQL, size: int, **variables: Any) -> list[dict[str, Any]]:
    """All bars met following last/before from the end, put back in list order."""
    pages: list[list[dict[str, Any]]] = []
    before = None
    for _ in range(10_000):
        conn = page(gql, last=size, before=before, **variables)
        pages.append([e["node"] for e in conn["edges"]])
        assert conn["pageInfo"]["hasNextPage"] is (before is not None)
        if not conn["pageInfo"]["hasPreviousPage"]:
            return [n for p in reversed(pages) for n in p]
        assert conn["edges"], "an empty page says more precede"
        before = conn["pageInfo"]["startCursor"]
    raise AssertionError("backward walk did not end")


def assert_bars_equal(got: pd.DataFrame, want: pd.DataFrame, what: str) -> None:
    """Same bucket starts, prices and volume within 1e-9 relative, same closed/filled flags."""
    got_t, want_t = list(got.index), list(want.index)
    if got_t != want_t:
        extra = sorted(set(got_t) - set(want_t))
        lacking = sorted(set(want_t) - set(got_t))
        raise AssertionError(
            f"{what}: bucket starts differ ({len(got_t)} got vs {len(want_t)} expected); "
            f"unexpected {[str(t) for t in extra[:6]]}; missing {[str(t) for t in lacking[:6]]}"
        )
    for col in PRICES:
        g, w = got[col].to_numpy(float), want[col].to_numpy(float)
        bad = ~np.isclose(g, w, rtol=1e-9, atol=1e-12)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise AssertionError(
                f"{what}: {col} differs at {int(bad.sum())} buckets, first {got.index[i]}: "
                f"got {g[i]!r}, expected {w[i]!r}"
            )
    for flag in ("closed", "filled"):
        bad = got[flag].to_numpy(bool) != want[flag].to_numpy(bool)
        if bad.any():
            times = [str(t) for t in got.index[bad][:6]]
            raise AssertionError(
                f"{what}: `{flag}` differs at {int(bad.sum())} buckets {times}: got "
                f"{list(got[flag][bad][:6])}, expected {list(want[flag][bad][:6])}"
            )


# --- Fixtures ----------------------------------------------------------------------------------


@functools.cache
def umbrl_minutes() -> pd.DataFrame:
    frame = session_minutes()
    return frame.set_index(pd.DatetimeIndex(frame["ts"]).tz_convert("UTC"))[list(PRICES)]


@functools.cache
def coinx_minutes() -> pd.DataFrame:
    frame = crypto_minutes()
    return frame.set_index(pd.DatetimeIndex(frame["ts"]).tz_convert("UTC"))[list(PRICES)]


@pytest.fixture(scope="module")
def gql(settings: Settings) -> Iterator[GraphQL]:
    """The session's demo database through an app of this module's own, without cost or rate
    limits (these tests read many bars)."""
    assert settings.database_url
    with app_client(settings.database_url) as client:
        yield gql_for(client)


@pytest.fixture(scope="module")
def scratch(make_database: Callable[[], str]) -> Iterator[tuple[str, GraphQL]]:
    """A fresh migrated database of this module's own (for symbols it writes) and a client."""
    url = fresh_database(make_database)
    with app_client(url) as client:
        yield url, gql_for(client)


def nyse_info(ticker: str) -> SymbolInfo:
    return SymbolInfo(
        ticker, f"{ticker} Session Test", "NYSE", "equity", "USD", "America/New_York", "XNYS"
    )


# --- 1. UMBRL: every interval x session x alignment ----------------------------------------


def test_umbrl_reports_its_calendar(gql: GraphQL) -> None:
    got = data_of(gql('{ symbol(ticker: "UMBRL") { calendar defaultSession timezone } }'))
    assert got["symbol"] == {
        "calendar": "XNYS",
        "defaultSession": "REGULAR",
        "timezone": "America/New_York",
    }
    got = data_of(gql('{ symbol(ticker: "COINX") { calendar defaultSession } }'))
    assert got["symbol"] == {"calendar": "24/7", "defaultSession": "ALL"}


@pytest.mark.parametrize("alignment", ALIGNMENTS)
@pytest.mark.parametrize("session", SESSIONS)
@pytest.mark.parametrize("interval", INTERVALS)
def test_umbrl_series_equal_reference(
    gql: GraphQL, interval: str, session: str, alignment: str
) -> None:
    want = reference(umbrl_minutes(), interval, session, alignment)
    got = series(gql, "UMBRL", interval, session, alignment)
    assert_bars_equal(got, want, f"UMBRL series {interval} {session} {alignment}")


def test_umbrl_default_session_is_regular(gql: GraphQL) -> None:
    for interval in ("H1", "D1"):
        assert_bars_equal(
            series(gql, "UMBRL", interval, None),
            reference(umbrl_minutes(), interval, "REGULAR", "SESSION"),
            f"UMBRL series {interval} session null",
        )


#: A subset walked through `bars` (500 per page, OLDEST_FIRST) to keep the module fast.
PAGED = [
    ("M5", "EXTENDED", "SESSION"),
    ("M15", "ALL", "UTC"),
    ("M30", "REGULAR", "UTC"),
    ("H1", "REGULAR", "SESSION"),
    ("H4", "ALL", "SESSION"),
    ("D1", "EXTENDED", "SESSION"),
    ("W1", "REGULAR", "UTC"),
    ("MN1", "ALL", "SESSION"),
]


@pytest.mark.parametrize(("interval", "session", "alignment"), PAGED)
def test_umbrl_bars_paged_equal_reference(
    gql: GraphQL, interval: str, session: str, alignment: str
) -> None:
    nodes = walk_forward(
        gql, 500, t="UMBRL", i=interval, o="OLDEST_FIRST", s=session, a=alignment, f="NONE"
    )
    want = reference(umbrl_minutes(), interval, session, alignment)
    assert_bars_equal(bars_frame(nodes), want, f"UMBRL bars {interval} {session} {alignment}")


def test_umbrl_from_to_select_bucket_starts(gql: GraphQL) -> None:
    """`from`/`to` keep the buckets whose start lies in [from, to), whatever their end."""
    want = reference(umbrl_minutes(), "H4", "EXTENDED", "SESSION")
    lo, hi = pd.Timestamp("2024-11-27 14:00", tz="UTC"), pd.Timestamp("2024-12-02 13:30", tz="UTC")
    got = series(gql, "UMBRL", "H4", "EXTENDED", start=lo, stop=hi)
    assert_bars_equal(got, want[(want.index >= lo) & (want.index < hi)], "UMBRL H4 window")


# --- 2. Hypothesis: sparse bars around a year end and the March DST change ------------------

WINDOWS = {
    "year-end": (date(2023, 12, 20), date(2024, 1, 10)),
    "march-dst": (date(2024, 3, 4), date(2024, 3, 16)),
}
#: Checked for every example; two more combinations are drawn per example.
FIXED_COMBOS = [
    ("H1", "REGULAR", "SESSION"),
    ("M30", "EXTENDED", "SESSION"),
    ("H4", "ALL", "SESSION"),
    ("D1", "ALL", "SESSION"),
    ("W1", "EXTENDED", "SESSION"),
    ("H1", "ALL", "UTC"),
]
ALL_COMBOS = list(itertools.product(INTERVALS, SESSIONS, ALIGNMENTS))


@st.composite
def sparse_minutes(draw: st.DrawFn) -> tuple[str, pd.DatetimeIndex, int]:
    window = draw(st.sampled_from(sorted(WINDOWS)))
    first, last = WINDOWS[window]
    days = (last - first).days
    anywhere = st.tuples(st.integers(0, days - 1), st.integers(0, 1439))
    # Biased to the US trading day (12:00-23:59 UTC) so sessions see enough bars.
    trading = st.tuples(st.integers(0, days - 1), st.integers(720, 1439))
    picks = draw(st.lists(anywhere, max_size=120)) + draw(st.lists(trading, max_size=250))
    picks += [draw(trading)]
    base = pd.Timestamp(first, tz="UTC")
    times = sorted({base + pd.Timedelta(days=d, minutes=m) for d, m in picks})
    return window, pd.DatetimeIndex(times), draw(st.integers(0, 2**31 - 1))


_counter = itertools.count()


@hyp_settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=sparse_minutes(),
    drawn=st.lists(st.sampled_from(ALL_COMBOS), min_size=2, max_size=2, unique=True),
)
def test_sparse_nyse_bars_equal_reference(
    scratch: tuple[str, GraphQL],
    case: tuple[str, pd.DatetimeIndex, int],
    drawn: list[tuple[str, str, str]],
) -> None:
    url, gql = scratch
    window, times, seed = case
    ticker = f"HYPS{next(_counter)}"
    minutes = ohlcv(list(times), seed=seed)
    store_bars(url, {ticker: minutes}, "M1", {ticker: nyse_info(ticker)})
    for interval, session, alignment in [*FIXED_COMBOS, *drawn]:
        want = reference(minutes, interval, session, alignment)
        got = series(gql, ticker, interval, session, alignment)
        assert_bars_equal(got, want, f"{window} {ticker} {interval} {session} {alignment}")


# --- 3. Named checks -----------------------------------------------------------------------


def _wall_clock_days(lo: str, hi: str, half_day_hi: str | None) -> pd.DataFrame:
    """UMBRL's minutes grouped by New York date, keeping local wall-clock [lo, hi) (no
    calendar involved; the known half day 2024-11-29 ends at `half_day_hi`)."""
    m = umbrl_minutes()
    local = m.index.tz_convert(NY)
    clock = local.strftime("%H:%M")
    day = local.tz_localize(None).normalize()
    upper = np.where(day == pd.Timestamp("2024-11-29"), half_day_hi or hi, hi)
    keep = (clock >= lo) & (clock < upper)
    frame = m[keep].assign(day=day[keep])
    out = frame.groupby("day").agg(
        open=("open", "first"), close=("close", "last"), volume=("volume", "sum")
    )
    out.index = out.index.tz_localize("UTC")
    return out


@pytest.mark.parametrize(
    ("session", "lo", "hi", "half_day_hi"),
    [("REGULAR", "09:30", "16:00", "13:00"), ("EXTENDED", "04:00", "20:00", "17:00")],
)
def test_umbrl_daily_bar_sums_its_wall_clock_minutes(
    gql: GraphQL, session: str, lo: str, hi: str, half_day_hi: str
) -> None:
    want = _wall_clock_days(lo, hi, half_day_hi)
    got = series(gql, "UMBRL", "D1", session)
    assert list(got.index) == list(want.index)
    assert pd.Timestamp("2024-11-28", tz="UTC") not in got.index  # Thanksgiving
    for col in ("open", "close", "volume"):
        np.testing.assert_allclose(got[col], want[col], rtol=1e-9, err_msg=f"D1 {session} {col}")


def test_h1_starts_at_half_past_nine_new_york(gql: GraphQL) -> None:
    got = series(gql, "UMBRL", "H1", "REGULAR")
    local = got.index.tz_convert(NY)
    assert set(local.strftime("%H:%M")) == {f"{h:02d}:30" for h in range(9, 16)}
    firsts = got.groupby(local.date).apply(lambda f: f.index[0])
    assert firsts[date(2024, 11, 1)] == pd.Timestamp("2024-11-01 13:30", tz="UTC")  # EDT
    assert firsts[date(2024, 11, 4)] == pd.Timestamp("2024-11-04 14:30", tz="UTC")  # EST
    last_half_day = got[got.index.tz_convert(NY).date == date(2024, 11, 29)].index[-1]
    assert last_half_day == pd.Timestamp("2024-11-29 17:30", tz="UTC")


def test_bar_fields_agree_on_h1_boundaries(gql: GraphQL) -> None:
    """bars(H1) over 2024-11-04 (the first EST Monday): 7 bars, 14:30 … 20:30 UTC."""
    conn = page(
        gql,
        t="UMBRL",
        i="H1",
        o="OLDEST_FIRST",
        first=50,
        s="REGULAR",
        a="SESSION",
        f="NONE",
        **{"from": "2024-11-04T00:00:00+00:00", "to": "2024-11-05T00:00:00+00:00"},
    )
    times = [e["node"]["time"] for e in conn["edges"]]
    assert times == [f"2024-11-04T{h}:30:00+00:00" for h in range(14, 21)]


def _utc_reference(minutes: pd.DataFrame, interval: str) -> pd.DataFrame:
    """The plain UTC grid of every bar (what a 24/7 symbol gets under any option)."""
    newest_end = minutes.index[-1] + MINUTE
    rule = {**{k: f"{v}min" for k, v in INTRADAY.items()}, "D1": "1D", "W1": "W-MON"}
    extra = {"origin": UTC_ORIGIN} if interval in INTRADAY else {}
    buckets = minutes.resample(rule.get(interval, "MS"), label="left", closed="left", **extra)
    out = buckets.agg({"open": "first", "high": "max", "low": "min", "close": "last"})
    out["volume"] = buckets["volume"].sum()
    out = out[buckets["open"].count() > 0]
    if interval in INTRADAY:
        ends = out.index + pd.Timedelta(minutes=INTRADAY[interval])
    elif interval == "MN1":
        ends = out.index + pd.offsets.MonthBegin(1)
    else:
        ends = out.index + pd.Timedelta(days=1 if interval == "D1" else 7)
    out["closed"] = ends <= newest_end
    out["filled"] = False
    return out


@pytest.mark.parametrize("interval", INTERVALS)
def test_coinx_same_under_every_option(gql: GraphQL, interval: str) -> None:
    want = _utc_reference(coinx_minutes(), interval)
    for session in (None, *SESSIONS):
        for alignment in ALIGNMENTS:
            got = series(gql, "COINX", interval, session, alignment)
            assert_bars_equal(got, want, f"COINX {interval} {session} {alignment}")


def test_coinx_latest_bar_same_under_every_option(gql: GraphQL) -> None:
    query = """query($s: Session, $a: Alignment!) { symbol(ticker: "COINX") {
        latestBar(interval: H4, session: $s, alignment: $a) { time close volume closed } } }"""
    answers = [
        data_of(gql(query, {"s": s, "a": a}))["symbol"]["latestBar"]
        for s in (None, *SESSIONS)
        for a in ALIGNMENTS
    ]
    want = _utc_reference(coinx_minutes(), "H4").iloc[-1]
    assert answers[0]["time"] == want.name.isoformat()
    assert answers[0]["close"] == want["close"]
    assert all(a == answers[0] for a in answers), answers


@pytest.mark.parametrize("session", SESSIONS)
@pytest.mark.parametrize("interval", ["H1", "D1"])
def test_umbrl_latest_bar_is_the_newest_reference_bucket(
    gql: GraphQL, session: str, interval: str
) -> None:
    query = """query($i: Interval!, $s: Session) { symbol(ticker: "UMBRL") {
        latestBar(interval: $i, session: $s) { time open high low close volume closed } } }"""
    got = data_of(gql(query, {"i": interval, "s": session}))["symbol"]["latestBar"]
    want = reference(umbrl_minutes(), interval, session, "SESSION").iloc[-1]
    assert pd.Timestamp(got["time"]) == want.name
    for col in PRICES:
        assert got[col] == pytest.approx(want[col], rel=1e-9), col
    assert got["closed"] is bool(want["closed"])


# --- 4. Fill -----------------------------------------------------------------------------------

HOLIDAY_WINDOW = (pd.Timestamp("2024-11-25", tz="UTC"), pd.Timestamp("2024-12-03", tz="UTC"))


def test_umbrl_fill_previous_h1_regular_gives_calendar_slots(gql: GraphQL) -> None:
    lo, hi = HOLIDAY_WINDOW
    got = series(gql, "UMBRL", "H1", "REGULAR", fill="PREVIOUS", start=lo, stop=hi)
    every = slots("H1", "REGULAR")
    want_times = every.index[(every.index >= lo) & (every.index < hi)]
    assert list(got.index) == list(want_times)
    assert not any(t.tz_convert(NY).date() == date(2024, 11, 28) for t in got.index)
    half_day = [t for t in got.index if t.tz_convert(NY).date() == date(2024, 11, 29)]
    assert half_day[-1] == pd.Timestamp("2024-11-29 17:30", tz="UTC")
    # Every regular minute trades: nothing to fill, the same bars as without fill.
    want = reference(umbrl_minutes(), "H1", "REGULAR", "SESSION")
    assert_bars_equal(got, want[(want.index >= lo) & (want.index < hi)], "UMBRL H1 fill")


@pytest.mark.parametrize("interval", ["M5", "M15"])
def test_umbrl_fill_previous_extended_fills_thin_hours(gql: GraphQL, interval: str) -> None:
    """Pre/post-market minutes are thin (15%): many empty M5 slots to fill, on real days only."""
    lo, hi = HOLIDAY_WINDOW
    want = filled_reference(umbrl_minutes(), interval, "EXTENDED")
    want = want[(want.index >= lo) & (want.index < hi)]
    assert want["filled"].sum() > 10  # the data does leave gaps here
    got = series(gql, "UMBRL", interval, "EXTENDED", fill="PREVIOUS", start=lo, stop=hi)
    assert_bars_equal(got, want, f"UMBRL {interval} EXTENDED fill")
    nodes = walk_forward(
        gql,
        500,
        t="UMBRL",
        i=interval,
        o="OLDEST_FIRST",
        s="EXTENDED",
        a="SESSION",
        f="PREVIOUS",
        **{"from": iso(lo), "to": iso(hi)},
    )
    assert_bars_equal(bars_frame(nodes), want, f"UMBRL {interval} EXTENDED fill, bars")


@pytest.fixture(scope="module")
def sparse_symbol(scratch: tuple[str, GraphQL]) -> tuple[str, pd.DataFrame]:
    """A NYSE symbol with a few regular-hour minutes over Thanksgiving week 2024 and the days
    around it: whole hours, whole days and the holiday without trades."""
    url, _ = scratch
    times = [
        "2024-11-22 14:31",  # Fri 09:31 EST
        "2024-11-22 16:05",
        "2024-11-22 20:59",
        "2024-11-25 15:10",  # Mon
        "2024-11-27 19:45",  # Wed (Tue empty)
        "2024-11-29 14:30",  # Fri, half day (Thu is the holiday)
        "2024-11-29 17:59",  # the half day's last regular minute
        "2024-12-03 18:00",  # Tue (Mon empty)
        "2024-12-03 18:01",
    ]
    minutes = ohlcv([pd.Timestamp(t, tz="UTC") for t in times], seed=5)
    store_bars(url, {"GAPPY": minutes}, "M1", {"GAPPY": nyse_info("GAPPY")})
    return "GAPPY", minutes


@pytest.mark.parametrize(
    ("interval", "session"),
    [("H1", "REGULAR"), ("M30", "REGULAR"), ("H1", "EXTENDED"), ("D1", "REGULAR")],
)
def test_sparse_fill_previous_equals_reference(
    scratch: tuple[str, GraphQL],
    sparse_symbol: tuple[str, pd.DataFrame],
    interval: str,
    session: str,
) -> None:
    _, gql = scratch
    ticker, minutes = sparse_symbol
    want = filled_reference(minutes, interval, session)
    assert want["filled"].any() and not want["filled"].all()
    got = series(gql, ticker, interval, session, fill="PREVIOUS")
    assert_bars_equal(got, want, f"{ticker} {interval} {session} fill")
    # Nothing on Thanksgiving (D1 is stamped with its UTC date, intraday bars in local time).
    dates = got.index.date if interval == "D1" else got.index.tz_convert(NY).date
    assert date(2024, 11, 28) not in set(dates)

    # A window starting on empty slots takes its price from before the window, however far
    # back the previous bar lies (9 hours, 33 hours, a weekend and an empty Monday).
    hi = pd.Timestamp("2024-12-04 00:00", tz="UTC")
    for start in ("2024-11-26 00:00", "2024-11-27 00:00", "2024-11-30 00:00"):
        lo = pd.Timestamp(start, tz="UTC")
        got = series(gql, ticker, interval, session, fill="PREVIOUS", start=lo, stop=hi)
        expected = want[(want.index >= lo) & (want.index < hi)]
        assert expected["filled"].iloc[0] or interval == "D1"  # 2024-11-27 traded
        assert_bars_equal(got, expected, f"{ticker} {interval} {session} fill from {start}")


@pytest.mark.parametrize("order", ["OLDEST_FIRST", "NEWEST_FIRST"])
@pytest.mark.parametrize(("interval", "session"), [("H1", "REGULAR"), ("M30", "EXTENDED")])
def test_sparse_fill_cursor_walks_return_every_bucket_once(
    scratch: tuple[str, GraphQL],
    sparse_symbol: tuple[str, pd.DataFrame],
    order: str,
    interval: str,
    session: str,
) -> None:
    url, _ = scratch
    ticker, minutes = sparse_symbol
    lo = pd.Timestamp("2024-11-22 15:00", tz="UTC")
    hi = pd.Timestamp("2024-12-03 19:00", tz="UTC")
    want = filled_reference(minutes, interval, session)
    want = want[(want.index >= lo) & (want.index < hi)]
    if order == "NEWEST_FIRST":
        want = want.iloc[::-1]
    args = {
        "t": ticker,
        "i": interval,
        "o": order,
        "s": session,
        "a": "SESSION",
        "f": "PREVIOUS",
        "from": iso(lo),
        "to": iso(hi),
    }
    # An app of its own: its cache holds nothing other tests asked (see
    # tests/api/test_sessions_cache.py for what a cached windowed `series` does to `bars`).
    with app_client(url) as client:
        gql = gql_for(client)
        # Page sizes that do not divide the bucket count, so pages end inside empty stretches.
        size = 7 if interval == "H1" else 23
        forward = walk_forward(gql, size, **args)
        backward = walk_backward(gql, size - 1, **args)
    for name, nodes in (("forward", forward), ("backward", backward)):
        times = [n["time"] for n in nodes]
        assert len(times) == len(set(times)), f"{name} walk repeats a bucket"
        assert_bars_equal(bars_frame(nodes), want, f"{ticker} {interval} {order} {name} walk")
    assert forward == backward


# --- 5. Indicators from a mid-history `from` ----------------------------------------------

INDICATORS = """query($s: Session, $a: Alignment!, $from: DateTime) { symbol(ticker: "UMBRL") {
  indicators(interval: H1, from: $from, session: $s, alignment: $a) {
    sma(period: 5) { time value } ema(period: 10) { time value } } } }"""


def _talib_ema(values: np.ndarray, period: int) -> np.ndarray:
    """TA-Lib's EMA: seeded with the SMA of the first `period` values."""
    out = np.full(len(values), np.nan)
    if len(values) < period:
        return out
    k = 2.0 / (period + 1)
    out[period - 1] = values[:period].mean()
    for i in range(period, len(values)):
        out[i] = out[i - 1] + k * (values[i] - out[i - 1])
    return out


def _line(got: dict[str, Any]) -> pd.Series:
    index = pd.DatetimeIndex(pd.to_datetime(got["time"], utc=True, format="ISO8601"))
    return pd.Series([np.nan if v is None else v for v in got["value"]], index=index, dtype=float)


@pytest.mark.parametrize(
    ("session", "alignment"),
    [(None, "SESSION"), *((s, "SESSION") for s in SESSIONS), ("EXTENDED", "UTC")],
)
def test_indicators_from_mid_history_equal_whole_history(
    gql: GraphQL, session: str | None, alignment: str
) -> None:
    mid = pd.Timestamp("2024-11-20 15:00", tz="UTC")
    whole = data_of(gql(INDICATORS, {"s": session, "a": alignment, "from": None}))
    part = data_of(gql(INDICATORS, {"s": session, "a": alignment, "from": iso(mid)}))
    closes = reference(umbrl_minutes(), "H1", session or "REGULAR", alignment)["close"]
    expected = {
        "sma": closes.rolling(5).mean(),
        "ema": pd.Series(_talib_ema(closes.to_numpy(), 10), index=closes.index),
    }
    for name in ("sma", "ema"):
        full = _line(whole["symbol"]["indicators"][name])
        tail = _line(part["symbol"]["indicators"][name])
        want = full[full.index >= mid]
        assert list(tail.index) == list(want.index), f"{name}: times differ"
        assert len(tail) > 50
        assert not tail.isna().any(), f"{name}: warm-up missing after `from`"
        np.testing.assert_allclose(tail, want, rtol=1e-9, err_msg=f"{name} {session}")
        # And the whole history is the indicator of the reference's closes.
        assert list(full.index) == list(closes.index), f"{name}: whole-history times"
        np.testing.assert_allclose(full, expected[name], rtol=1e-9, err_msg=f"{name} whole")


def test_reference_sanity() -> None:
    """The reference itself on hand-checked facts (so a wrong reference fails here first)."""
    sched = nyse_schedule()
    half = sched.loc[pd.Timestamp("2024-11-29")]
    assert pd.Timestamp(half["close"], tz="UTC") == pd.Timestamp("2024-11-29 18:00", tz="UTC")
    assert pd.Timestamp(half["post"], tz="UTC") == pd.Timestamp("2024-11-29 22:00", tz="UTC")
    assert pd.Timestamp("2024-11-28") not in sched.index
    h1 = slots("H1", "REGULAR")
    day = h1[h1.index.tz_convert(NY).date == date(2024, 11, 29)]
    assert [t.strftime("%H:%M") for t in day.index] == ["14:30", "15:30", "16:30", "17:30"]
    assert pd.Timestamp(int(day["end"].iloc[-1]), tz="UTC") == pd.Timestamp(
        "2024-11-29 18:00", tz="UTC"
    )
    # A 23:30 New York bar on a Monday of EST lies in the night part up to local midnight.
    parts = day_parts(pd.DatetimeIndex([pd.Timestamp("2024-12-03 04:30", tz="UTC")]))
    assert parts["kind"].iloc[0] == "night"
    assert pd.Timestamp(int(parts["end"].iloc[0]), tz="UTC") == pd.Timestamp(
        "2024-12-03 05:00", tz="UTC"
    )


@pytest.mark.parametrize("interval", ["D1", "W1", "MN1"])
def test_stored_daily_bars_are_never_filtered(
    gql: GraphQL, settings: Settings, interval: str
) -> None:
    """AAPL stores daily bars stamped 00:00 UTC of their trading date: every session and
    alignment gives the same buckets, those of the bars' dates (W1 the ISO week of the date,
    MN1 its month), never shifted to the New York evening before."""
    assert settings.database_url
    daily = stored_bars(settings.database_url, "AAPL", "D1")
    want = resample(daily, interval, "D1")
    for session in (None, *SESSIONS):
        for alignment in ALIGNMENTS:
            got = series(gql, "AAPL", interval, session, alignment)
            what = f"AAPL {interval} {session} {alignment}"
            assert list(got.index) == list(want.index), f"{what}: bucket starts differ"
            for col in PRICES:
                np.testing.assert_allclose(got[col], want[col], rtol=1e-9, err_msg=what)
            assert not got["filled"].any()
