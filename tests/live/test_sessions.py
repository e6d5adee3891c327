"""Live bars of an exchange-calendar symbol: session-aligned forming bars, hours filtered.

UMBRL trades NYSE sessions (workers/demo.py); 2024-12-09 is a Monday after its demo bars,
in winter time (New York = UTC-5): the regular session is 14:30-21:00 UTC, pre-market
09:00-14:30 UTC.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.live.conftest import LiveEnv
from tests.live.support import BAR_FIELDS, ApiProcess, GqlWs, iso, minute_bar, write_bars

SESSION_BARS = f"""
subscription Bars($tickers: [String!]!, $interval: Interval!, $since: DateTime,
                  $session: Session, $alignment: Alignment! = SESSION) {{
  barUpdates(tickers: $tickers, interval: $interval, since: $since, session: $session,
             alignment: $alignment) {{ {BAR_FIELDS} }}
}}
"""
DAY = datetime(2024, 12, 9, tzinfo=UTC)


def at(hour: int, minute: int) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def query_bars(api: ApiProcess, args: str) -> list[dict[str, Any]]:
    """`UMBRL.bars(args)` over HTTP, oldest first."""
    query = (
        f'{{ symbol(ticker: "UMBRL") {{ bars({args}, order: OLDEST_FIRST, first: 1000) '
        "{ nodes { time open high low close volume closed } } } }"
    )
    body = httpx.post(f"{api.url}/graphql", json={"query": query}, timeout=30).json()
    assert "errors" not in body, body
    nodes: list[dict[str, Any]] = body["data"]["symbol"]["bars"]["nodes"]
    return nodes


async def test_an_h1_subscription_follows_the_session_open_and_the_hours_asked_for(
    api_pair: tuple[ApiProcess, ApiProcess], live_env: LiveEnv
) -> None:
    sid, dsn = live_env.ids["UMBRL"], live_env.dsn
    api = api_pair[1]
    client = await GqlWs.open(api.ws_url)
    try:
        base = {"tickers": ["UMBRL"], "interval": "H1"}
        await client.subscribe("regular", SESSION_BARS, base)
        await client.subscribe("extended", SESSION_BARS, {**base, "session": "EXTENDED"})
        await client.subscribe("utc", SESSION_BARS, {**base, "alignment": "UTC", "session": "ALL"})
        await asyncio.sleep(0.3)
        # 10:45 New York: the 10:30 bucket (15:30 UTC), forming; on the UTC grid, 15:00.
        await write_bars(dsn, [minute_bar(sid, at(15, 45), 50.0, volume=10)])
        (regular,) = await client.updates("regular", 1)
        (extended,) = await client.updates("extended", 1)
        (utc,) = await client.updates("utc", 1)
        assert regular["bar"]["time"] == extended["bar"]["time"] == iso(at(15, 30))
        assert utc["bar"]["time"] == iso(at(15, 0))
        assert regular["bar"]["closed"] is False and regular["bar"]["volume"] == 10.0
        # 08:00 New York, pre-market: EXTENDED's 13:00 UTC bucket (from the 04:00 pre-market
        # open, 09:00 UTC); nothing for REGULAR.
        await write_bars(dsn, [minute_bar(sid, at(13, 0), 49.0, volume=3)])
        (pre,) = await client.updates("extended", 1)
        assert pre["bar"]["time"] == iso(at(13, 0)) and pre["bar"]["volume"] == 3.0
        assert await client.quiet("regular") == []
        (utc_pre,) = await client.updates("utc", 1)
        assert utc_pre["bar"]["time"] == iso(at(13, 0))
        # The bars the subscription sent are the bars the read API serves.
        served = query_bars(api, f'interval: H1, from: "{iso(DAY)}"')
        assert served[-1] == {**regular["bar"], "closed": served[-1]["closed"]}
        served_ext = query_bars(api, f'interval: H1, session: EXTENDED, from: "{iso(DAY)}"')
        assert [b["time"] for b in served_ext] == [iso(at(13, 0)), iso(at(15, 30))]
    finally:
        await client.close()


async def test_a_session_daily_replay_sends_the_read_apis_trading_days(
    api_pair: tuple[ApiProcess, ApiProcess], live_env: LiveEnv
) -> None:
    api = api_pair[0]
    since = datetime(2024, 11, 26, tzinfo=UTC)
    client = await GqlWs.open(api.ws_url)
    try:
        variables = {"tickers": ["UMBRL"], "interval": "D1", "since": iso(since)}
        await client.subscribe("d1", SESSION_BARS, variables)
        served = query_bars(
            api, f'interval: D1, from: "{iso(since)}", to: "2024-12-07T00:00:00+00:00"'
        )
        received = await client.updates("d1", len(served), wait=20)
        assert all(u["replayed"] for u in received)
        # Thanksgiving (11-28) has no bar; the half day (11-29) holds only its 13:00 close.
        assert iso(datetime(2024, 11, 28, tzinfo=UTC)) not in [u["bar"]["time"] for u in received]
        assert [u["bar"] for u in received] == served
    finally:
        await client.close()
