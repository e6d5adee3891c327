"""Without Redis: one process LISTENs itself; reads can require a key; the registry empties."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from graphql_api.app import create_app
from tests.conftest import migrated_settings
from tests.live.conftest import LiveEnv
from tests.live.support import BARS, PROTOCOL, GqlWs, eventually, thread_server, write_bars


async def test_without_redis_updates_flow_in_process_and_reads_can_require_a_key(
    live_env: LiveEnv,
) -> None:
    assert live_env.settings.database_url is not None
    settings = migrated_settings(live_env.settings.database_url, require_read_key=True)
    app = create_app(settings)
    with thread_server(app) as url:
        hub = app.state.services.live
        async with connect(url, subprotocols=[PROTOCOL]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
        assert "`read` scope" in closed.value.rcvd.reason

        client = await GqlWs.open(url, {"Authorization": f"Bearer {live_env.read_key}"})
        try:
            await client.subscribe("fb", BARS, {"tickers": ["FB"], "interval": "W1"})
            fb = live_env.ids["FB"]

            async def registered() -> bool:
                return set(hub.groups) == {(fb, hub_feed("W1", "XNAS"))}

            assert await eventually(registered)
            assert hub.fanout.stats()["mode"] == "local"
            day = datetime(2024, 5, 7, tzinfo=UTC)  # a Tuesday
            record = (fb, "D1", day, 400.0, 410.0, 395.0, 405.0, 1e6)
            version = await write_bars(live_env.dsn, [record])
            (update,) = await client.updates("fb", 1)
            assert update["version"] == version
            assert update["bar"]["time"] == datetime(2024, 5, 6, tzinfo=UTC).isoformat()
            assert update["bar"]["closed"] is False  # the week is not over
            await client.complete("fb")

            async def emptied() -> bool:
                return not hub.groups and not hub.fanout.stats()["symbols"]

            assert await eventually(emptied)
        finally:
            await client.close()


def hub_feed(code: str, calendar: str) -> object:
    """The hub's group key of a default subscription at interval `code` on an exchange
    calendar: regular hours, session-aligned."""
    from core.calendars import SessionKind
    from core.intervals import Interval
    from graphql_api.live.hub import Feed

    return Feed(Interval(code), SessionKind.REGULAR, True, calendar)
