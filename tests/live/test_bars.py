"""Live bars: the forming bar of a coarser interval, and `since` replay handing over to live."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.live.conftest import LiveEnv
from tests.live.support import BARS, ApiProcess, GqlWs, iso, minute_bar, minutes, write_bars

MINUTE = timedelta(minutes=1)


async def test_an_m5_subscription_gets_the_forming_bar_updated_by_each_minute(
    api_pair: tuple[ApiProcess, ApiProcess], live_env: LiveEnv
) -> None:
    sid, dsn = live_env.ids["GLOBX"], live_env.dsn
    t0 = datetime(2024, 4, 2, 14, 30, tzinfo=UTC)
    client = await GqlWs.open(api_pair[1].ws_url)
    try:
        await client.subscribe("m5", BARS, {"tickers": ["GLOBX"], "interval": "M5"})
        await asyncio.sleep(0.3)
        v1 = await write_bars(dsn, [minute_bar(sid, t0, 100.0, volume=10)])
        (u1,) = await client.updates("m5", 1)
        assert u1["version"] == v1 and u1["interval"] == "M5" and not u1["replayed"]
        assert u1["bar"] == {
            "time": iso(t0),
            "open": 100.0,
            "high": 101.0,
            "low": 99.0,
            "close": 100.5,
            "volume": 10.0,
            "closed": False,
        }
        v2 = await write_bars(dsn, [minute_bar(sid, t0 + MINUTE, 102.0, volume=20)])
        (u2,) = await client.updates("m5", 1)
        assert u2["version"] == v2 > v1
        assert u2["bar"] == {
            "time": iso(t0),
            "open": 100.0,
            "high": 103.0,
            "low": 99.0,
            "close": 102.5,
            "volume": 30.0,
            "closed": False,
        }
        # The bucket's last minute fills it: the bar is closed.
        await write_bars(dsn, [minute_bar(sid, t0 + 4 * MINUTE, 101.0, volume=5)])
        (u3,) = await client.updates("m5", 1)
        assert u3["bar"]["closed"] is True and u3["bar"]["volume"] == 35.0
        # A revised minute inside it sends the revised bar (a newer version of the same time).
        v4 = await write_bars(dsn, [minute_bar(sid, t0 + MINUTE, 102.0, volume=25)])
        (u4,) = await client.updates("m5", 1)
        assert u4["version"] == v4 and u4["bar"]["time"] == iso(t0)
        assert u4["bar"]["volume"] == 40.0 and u4["bar"]["closed"] is True
        # The next minute opens the next bucket.
        await write_bars(dsn, [minute_bar(sid, t0 + 5 * MINUTE, 99.0, volume=7)])
        (u5,) = await client.updates("m5", 1)
        assert u5["bar"]["time"] == iso(t0 + 5 * MINUTE) and u5["bar"]["closed"] is False
        assert await client.quiet("m5") == []
    finally:
        await client.close()


async def test_since_replays_then_goes_live_with_no_gap_and_no_duplicate(
    api_pair: tuple[ApiProcess, ApiProcess], live_env: LiveEnv
) -> None:
    sid, dsn = live_env.ids["INITECH"], live_env.dsn
    t0 = datetime(2024, 4, 3, 14, 30, tzinfo=UTC)
    times = list(minutes(t0, 60))
    await write_bars(dsn, [minute_bar(sid, t, 10.0 + i) for i, t in enumerate(times[:20])])
    started = asyncio.Event()

    async def writer() -> None:
        # One commit per bar while the client subscribes and replays: the race under test.
        for i, t in enumerate(times[20:50], start=20):
            await write_bars(dsn, [minute_bar(sid, t, 10.0 + i)])
            if i == 25:
                started.set()
            await asyncio.sleep(0.01)

    task = asyncio.create_task(writer())
    client = await GqlWs.open(api_pair[0].ws_url)
    try:
        await started.wait()
        since = t0 + 5 * MINUTE
        variables = {"tickers": ["INITECH"], "interval": "M1", "since": iso(since)}
        await client.subscribe("s", BARS, variables)
        await task
        await asyncio.sleep(0.5)
        # Certainly after the replay: these can only arrive live.
        for i, t in enumerate(times[50:], start=50):
            await write_bars(dsn, [minute_bar(sid, t, 10.0 + i)])
        received = await client.updates("s", 55, wait=20)
        assert [u["bar"]["time"] for u in received] == [iso(t) for t in times[5:]]
        flags = [u["replayed"] for u in received]
        first_live = flags.index(False)
        assert first_live >= 15 and not any(flags[first_live:]), flags
        assert [u["bar"]["close"] for u in received] == [10.5 + i for i in range(5, 60)]
        assert await client.quiet("s") == []
    finally:
        await client.close()


async def test_since_on_a_coarser_interval_starts_at_the_bucket_holding_it(
    api_pair: tuple[ApiProcess, ApiProcess], live_env: LiveEnv
) -> None:
    sid, dsn = live_env.ids["ACME"], live_env.dsn
    t0 = datetime(2024, 4, 4, 14, 30, tzinfo=UTC)
    await write_bars(dsn, [minute_bar(sid, t, 50.0, volume=1) for t in minutes(t0, 12)])
    client = await GqlWs.open(api_pair[1].ws_url)
    try:
        since = t0 + 7 * MINUTE  # inside the 14:35 bucket
        variables = {"tickers": ["ACME"], "interval": "M5", "since": iso(since)}
        await client.subscribe("r", BARS, variables)
        replay = await client.updates("r", 2)
        assert [(u["bar"]["time"], u["bar"]["volume"], u["bar"]["closed"]) for u in replay] == [
            (iso(t0 + 5 * MINUTE), 5.0, True),
            (iso(t0 + 10 * MINUTE), 2.0, False),
        ]
        assert all(u["replayed"] for u in replay)
        await write_bars(dsn, [minute_bar(sid, t0 + 12 * MINUTE, 50.0, volume=1)])
        (live,) = await client.updates("r", 1)
        assert (live["bar"]["time"], live["bar"]["volume"], live["replayed"]) == (
            iso(t0 + 10 * MINUTE),
            3.0,
            False,
        )
        assert live["version"] > replay[-1]["version"]
    finally:
        await client.close()
