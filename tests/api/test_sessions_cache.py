"""Session options through the Redis cache: no cross-talk between their answers.

The same field asked with session REGULAR, EXTENDED, ALL, alignment UTC or fill PREVIOUS must
come back as its own, correct answer (the pandas reference of tests/api/test_sessions_reference.py)
however the requests are ordered, within one document (aliases) or across requests, from a warm
cache and from a second app sharing the same Redis; repeated requests return identical answers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient

from core.cache import FieldCache
from core.settings import Settings
from tests.api.helpers import app_client, data_of, gql_for
from tests.api.test_sessions_reference import (
    assert_bars_equal,
    bars_frame,
    filled_reference,
    reference,
    to_frame,
    umbrl_minutes,
)

#: (alias, session, alignment, fill) of the variants asked; the first ones are asked first so
#: a key that ignored an argument would hand their answer to the later ones.
VARIANTS = [
    ("ext", "EXTENDED", "SESSION", "NONE"),
    ("reg", "REGULAR", "SESSION", "NONE"),
    ("utc", "REGULAR", "UTC", "NONE"),
    ("dflt", None, "SESSION", "NONE"),
    ("all", "ALL", "SESSION", "NONE"),
    ("extutc", "EXTENDED", "UTC", "NONE"),
    ("extfill", "EXTENDED", "SESSION", "PREVIOUS"),
]
FIELDS = "time open high low close volume closed filled"
#: Starts at an open (every regular minute trades), clear of the leading-fill bug that
#: tests/api/test_sessions_reference.py reports; spans Thanksgiving and the half day.
WINDOW = ("2024-11-25T14:30:00+00:00", "2024-12-03T00:00:00+00:00")


def _series_field(alias: str, interval: str, session: str | None, alignment: str, fill: str) -> str:
    s = f", session: {session}" if session else ""
    return (
        f'{alias}: series(interval: {interval}, from: "{WINDOW[0]}", to: "{WINDOW[1]}", '
        f"maxPoints: 10000{s}, alignment: {alignment}, fill: {fill}) {{ interval {FIELDS} }}"
    )


def _bars_field(alias: str, interval: str, session: str | None, alignment: str, fill: str) -> str:
    s = f", session: {session}" if session else ""
    return (
        f"{alias}: bars(interval: {interval}, order: OLDEST_FIRST, first: 400, "
        f'from: "{WINDOW[0]}", to: "{WINDOW[1]}"{s}, alignment: {alignment}, fill: {fill}) '
        f"{{ nodes {{ {FIELDS} }} }}"
    )


def _latest_field(alias: str, interval: str, session: str | None, alignment: str) -> str:
    s = f", session: {session}" if session else ""
    return f"{alias}: latestBar(interval: {interval}{s}, alignment: {alignment}) {{ {FIELDS} }}"


def _doc(*fields: str) -> str:
    return '{ symbol(ticker: "UMBRL") { ' + " ".join(fields) + " } }"


def _expected(interval: str, session: str | None, alignment: str, fill: str) -> pd.DataFrame:
    minutes = umbrl_minutes()
    if fill == "PREVIOUS":
        want = filled_reference(minutes, interval, session or "REGULAR")
    else:
        want = reference(minutes, interval, session or "REGULAR", alignment)
    lo, hi = (pd.Timestamp(w) for w in WINDOW)
    return want[(want.index >= lo) & (want.index < hi)]


def _series_frame(got: dict[str, Any]) -> pd.DataFrame:
    cols = ("open", "high", "low", "close", "volume", "closed", "filled")
    return to_frame(got["time"], {c: got[c] for c in cols})


@pytest.fixture(scope="module")
def cached(settings: Settings, redis_url: str) -> Iterator[tuple[TestClient, str]]:
    """An app over the demo database with the Redis cache on (an emptied test database)."""
    redis.Redis.from_url(redis_url).flushdb()
    assert settings.database_url
    with app_client(settings.database_url, redis_url=redis_url, cache_enabled=True) as client:
        yield client, settings.database_url


def _stats(client: TestClient) -> FieldCache:
    cache: FieldCache = client.app.state.services.cache  # type: ignore[attr-defined]
    return cache


@pytest.mark.parametrize("interval", ["H1", "M5", "D1"])
def test_session_variants_do_not_share_cache_entries(
    cached: tuple[TestClient, str], redis_url: str, interval: str
) -> None:
    client, url = cached
    gql = gql_for(client)
    answers: dict[str, dict[str, Any]] = {}
    # One request per variant (EXTENDED first), then all variants again in one document.
    for alias, session, alignment, fill in VARIANTS:
        doc = _doc(_series_field(alias, interval, session, alignment, fill))
        answers[alias] = data_of(gql(doc))["symbol"][alias]
    for alias, session, alignment, fill in VARIANTS:
        assert answers[alias]["interval"] == interval
        assert_bars_equal(
            _series_frame(answers[alias]),
            _expected(interval, session, alignment, fill),
            f"cached series {interval} {alias}",
        )
    # Variants whose answers differ at this interval (M5 buckets fit the UTC grid anyway;
    # regular hours never cross 00:00 UTC, so D1 REGULAR is the same under both alignments).
    assert answers["reg"] != answers["ext"]
    if interval in ("H1", "D1"):
        assert answers["ext"] != answers["extutc"]
    if interval == "H1":
        assert answers["reg"] != answers["utc"]
    assert answers["dflt"] == answers["reg"]  # the default session of XNYS is REGULAR
    if interval == "M5":
        assert answers["extfill"] != answers["ext"]  # thin extended hours leave slots to fill
    hits = _stats(client).stats.hits
    together = data_of(
        gql(_doc(*(_series_field(a, interval, s, al, f) for a, s, al, f in reversed(VARIANTS))))
    )["symbol"]
    assert together == answers
    for _ in range(2):
        again = {
            a: data_of(gql(_doc(_series_field(a, interval, s, al, f))))["symbol"][a]
            for a, s, al, f in VARIANTS
        }
        assert again == answers
    assert _stats(client).stats.hits > hits, "the repeated requests were not served by the cache"
    # A second app sharing the Redis answers the same (entries read back from Redis).
    with app_client(url, redis_url=redis_url, cache_enabled=True) as other:
        gql_other = gql_for(other)
        for alias, session, alignment, fill in VARIANTS:
            doc = _doc(_series_field(alias, interval, session, alignment, fill))
            assert data_of(gql_other(doc))["symbol"][alias] == answers[alias], alias
    assert redis.Redis.from_url(redis_url).keys("mg:*"), "nothing was cached in Redis"


def test_bars_and_latest_bar_variants_through_the_cache(cached: tuple[TestClient, str]) -> None:
    client, _ = cached
    gql = gql_for(client)
    for round_ in range(2):
        for alias, session, alignment, fill in VARIANTS:
            got = data_of(gql(_doc(_bars_field(alias, "H1", session, alignment, fill))))
            assert_bars_equal(
                bars_frame(got["symbol"][alias]["nodes"]),
                _expected("H1", session, alignment, fill),
                f"cached bars H1 {alias} round {round_}",
            )
    latest: dict[str, dict[str, Any]] = {}
    for round_, (alias, session, alignment, _) in itertools.product(range(2), VARIANTS):
        got = data_of(gql(_doc(_latest_field(alias, "D1", session, alignment))))
        bar = got["symbol"][alias]
        want = reference(umbrl_minutes(), "D1", session or "REGULAR", alignment).iloc[-1]
        assert pd.Timestamp(bar["time"]) == want.name, (alias, round_)
        assert bar["volume"] == pytest.approx(want["volume"], rel=1e-9), (alias, round_)
        assert bar["close"] == pytest.approx(want["close"], rel=1e-9), (alias, round_)
        latest.setdefault(alias, bar)
        assert latest[alias] == bar
    assert latest["reg"]["volume"] != latest["ext"]["volume"]
    assert latest["reg"]["time"] != latest["extutc"]["time"]  # post-market ends after 00:00 UTC


def test_indicator_variants_through_the_cache(cached: tuple[TestClient, str]) -> None:
    client, _ = cached
    gql = gql_for(client)

    def ask(session: str, alignment: str) -> list[float | None]:
        doc = _doc(
            f"indicators(interval: H1, session: {session}, alignment: {alignment}) "
            "{ sma(period: 5) { time value } }"
        )
        values: list[float | None] = data_of(gql(doc))["symbol"]["indicators"]["sma"]["value"]
        return values

    combos = [("EXTENDED", "SESSION"), ("REGULAR", "SESSION"), ("REGULAR", "UTC")]
    first = {c: ask(*c) for c in combos}
    for (session, alignment), values in first.items():
        closes = reference(umbrl_minutes(), "H1", session, alignment)["close"]
        want = closes.rolling(5).mean().tolist()
        assert len(values) == len(want), (session, alignment)
        assert values[4:] == pytest.approx(want[4:], rel=1e-9), (session, alignment)
    assert len({tuple(v) for v in first.values()}) == len(combos)
    assert {c: ask(*c) for c in reversed(combos)} == first


@pytest.mark.parametrize("first_asked", ["series", "bars"])
def test_filled_window_bars_and_series_through_the_cache(
    settings: Settings, redis_url: str, first_asked: str
) -> None:
    """`bars` and `series` over the same filled window, either asked first, on an emptied
    cache: both equal the reference (a window starting in the weekend's empty stretch, so its
    first slot, 2024-11-25 09:00 UTC, is filled from Friday's last close)."""
    redis.Redis.from_url(redis_url).flushdb()
    assert settings.database_url
    lo, hi = "2024-11-25T00:00:00+00:00", "2024-11-26T00:00:00+00:00"
    want = filled_reference(umbrl_minutes(), "M5", "EXTENDED")
    want = want[(want.index >= pd.Timestamp(lo)) & (want.index < pd.Timestamp(hi))]
    assert want["filled"].iloc[0]
    window = f'from: "{lo}", to: "{hi}", session: EXTENDED, fill: PREVIOUS'
    series_doc = _doc(f"series(interval: M5, maxPoints: 10000, {window}) {{ {FIELDS} }}")
    bars_doc = _doc(
        f"bars(interval: M5, order: OLDEST_FIRST, first: 1000, {window}) {{ nodes {{ {FIELDS} }} }}"
    )
    with app_client(settings.database_url, redis_url=redis_url, cache_enabled=True) as client:
        gql = gql_for(client)
        got: dict[str, pd.DataFrame] = {}
        for name in (first_asked, "bars" if first_asked == "series" else "series"):
            data = data_of(gql(series_doc if name == "series" else bars_doc))["symbol"]
            if name == "series":
                got[name] = _series_frame(data["series"])
            else:
                got[name] = bars_frame(data["bars"]["nodes"])
    failures = []
    for name, frame in got.items():
        try:
            when = "first" if name == first_asked else "second"
            assert_bars_equal(frame, want, f"{name} (asked {when})")
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)
