"""A slow consumer: cut off with close code 4008, not buffered without bound."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg

from tests.live.conftest import LiveEnv
from tests.live.support import BARS, ApiProcess, StalledClient, minute_bar, minutes
from workers.upsert import upsert_bars


async def test_a_client_that_stops_reading_is_disconnected_with_4008(
    api_pair: tuple[ApiProcess, ApiProcess], live_env: LiveEnv
) -> None:
    sid = live_env.ids["GLOBX"]
    client = StalledClient(api_pair[0].port)
    await client.start(BARS, {"tickers": ["GLOBX"], "interval": "M1"})
    await asyncio.sleep(0.3)
    conn = await asyncpg.connect(live_env.dsn)
    try:
        # Revisions of 2000 demo minutes: more than the socket buffers hold (the servers cap
        # their send buffer at 16 KiB), so the server's sends block.
        t0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
        await upsert_bars(conn, [minute_bar(sid, t, 100.25) for t in minutes(t0, 2000)])
        # Then one small batch after another: the server queues them, up to 8.
        later = datetime(2024, 6, 3, 14, 30, tzinfo=UTC)
        for i, t in enumerate(minutes(later, 12)):
            await upsert_bars(conn, [minute_bar(sid, t, 100.0 + i)])
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    # Reading again, the client gets what was in flight, then the close frame.
    closed = await client.drain()
    assert closed is not None, "the connection ended without a close frame"
    assert closed == (4008, "slow consumer: fell 8 ingest batches behind")
    assert client.frames < 2000 + 12
    assert "fell 8 batches behind" in api_pair[0].log()
