"""Limits of live updates: keys on connection_init, origins, sizes, slow consumers, and the
Redis subscriptions a process holds."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from graphql_api.live.fanout import symbol_channel
from tests.live.conftest import LiveEnv
from tests.live.support import (
    BARS,
    EVENTS,
    PROTOCOL,
    ApiProcess,
    GqlWs,
    eventually,
    write_bars,
)


def codes(message: dict[str, object]) -> list[str]:
    """Error codes of an `error` message (or of a `next` carrying errors)."""
    payload = message["payload"]
    errors = payload if isinstance(payload, list) else payload.get("errors", [])  # type: ignore[union-attr]
    return [e.get("extensions", {}).get("code") for e in errors]


async def test_a_bad_key_on_connection_init_is_refused_with_4403(
    api_pair: tuple[ApiProcess, ApiProcess],
) -> None:
    async with connect(api_pair[0].ws_url, subprotocols=[PROTOCOL]) as ws:
        init = {"Authorization": "Bearer mgk_nothere_secret"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403 and "invalid API key" in closed.value.rcvd.reason


async def test_ingest_events_need_an_admin_key(
    api_pair: tuple[ApiProcess, ApiProcess], live_env: LiveEnv
) -> None:
    a, _ = api_pair
    anonymous = await GqlWs.open(a.ws_url)
    reader = await GqlWs.open(a.ws_url, {"authorization": f"Bearer {live_env.read_key}"})
    admin = await GqlWs.open(a.ws_url, {"Authorization": f"Bearer {live_env.admin_key}"})
    try:
        await anonymous.subscribe("e", EVENTS)
        assert codes(await anonymous.next("e")) == ["UNAUTHENTICATED"]
        await reader.subscribe("e", EVENTS)
        assert codes(await reader.next("e")) == ["FORBIDDEN"]
        # Reads stay open to both (REQUIRE_READ_KEY is off here).
        await reader.subscribe("b", BARS, {"tickers": ["AAPL"], "interval": "D1"})
        await admin.subscribe("e", EVENTS)
        await asyncio.sleep(0.3)
        day = datetime(2024, 5, 6, tzinfo=UTC)
        record = (live_env.ids["AAPL"], "D1", day, 180.0, 182.0, 179.0, 181.0, 5e6)
        version = await write_bars(live_env.dsn, [record], source="events-test")
        message = await admin.next("e")
        assert message["type"] == "next"
        assert message["payload"]["data"]["ingestEvents"] == {
            "version": version,
            "ticker": "AAPL",
            "interval": "D1",
            "firstBarTime": day.isoformat(),
            "lastBarTime": day.isoformat(),
            "rows": 1,
            "source": "events-test",
        }
        (bar,) = await reader.updates("b", 1)
        assert bar["bar"]["close"] == 181.0
    finally:
        for c in (anonymous, reader, admin):
            await c.close()


async def test_origins_not_allowed_are_refused_at_the_handshake(
    api_pair: tuple[ApiProcess, ApiProcess],
) -> None:
    url = api_pair[0].ws_url
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, subprotocols=[PROTOCOL], origin="https://evil.example")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    allowed = await GqlWs.open(url, origin="https://charts.example.com")
    await allowed.close()


async def test_too_many_symbols_unknown_tickers_and_too_many_subscriptions_are_refused(
    api_pair: tuple[ApiProcess, ApiProcess],
) -> None:
    client = await GqlWs.open(api_pair[1].ws_url)
    try:
        six = ["AAPL", "FB", "GOOG", "IBM", "MSFT", "ACME"]
        await client.subscribe("many", BARS, {"tickers": six, "interval": "D1"})
        message = await client.next("many")
        assert codes(message) == ["BAD_USER_INPUT"]
        assert "at most 5 tickers" in json.dumps(message)
        await client.subscribe("unknown", BARS, {"tickers": ["NOPE"], "interval": "D1"})
        assert codes(await client.next("unknown")) == ["BAD_USER_INPUT"]
        # Queries belong on HTTP.
        await client.subscribe("q", '{ symbol(ticker: "IBM") { ticker } }')
        assert codes(await client.next("q")) == ["BAD_REQUEST"]
        for i in range(3):
            await client.subscribe(f"ok{i}", BARS, {"tickers": ["IBM"], "interval": "D1"})
        await client.subscribe("fourth", BARS, {"tickers": ["IBM"], "interval": "D1"})
        refused = await client.next("fourth")
        assert refused["type"] == "error"
        assert "Subscription limit reached" in json.dumps(refused)
    finally:
        await client.close()


async def test_closing_connections_frees_their_redis_subscriptions(
    api_pair: tuple[ApiProcess, ApiProcess], live_env: LiveEnv
) -> None:
    a, b = api_pair
    channel = symbol_channel(live_env.settings, live_env.ids["MSFT"])
    redis = Redis.from_url(live_env.redis_url)

    async def subscribers(n: int) -> bool:
        ((_, count),) = await redis.pubsub_numsub(channel)
        return bool(count == n)

    try:
        assert await subscribers(0)
        first, second, third = [await GqlWs.open(u) for u in (a.ws_url, b.ws_url, a.ws_url)]
        for c in (first, second, third):
            await c.subscribe("m", BARS, {"tickers": ["MSFT"], "interval": "W1"})
        # One subscription per process, however many clients it serves.
        assert await eventually(lambda: subscribers(2))
        await first.close()
        await asyncio.sleep(0.3)
        assert await subscribers(2)  # the other client on process A still watches
        await third.close()
        assert await eventually(lambda: subscribers(1))
        await second.complete("m")  # ending the operation is enough, the socket may stay
        assert await eventually(lambda: subscribers(0))
        await second.close()
    finally:
        await redis.aclose()
