"""Bar change events: delivered after commit only, versioned, and data versions per series."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pandas as pd
import pytest

from core.events import BarChange, data_version, data_versions, listen
from core.settings import Settings
from workers.symbols import SymbolInfo, upsert_symbols
from workers.upsert import upsert_frame

T0 = pd.Timestamp("2024-05-01 00:00", tz="UTC")


def day_bars(symbol_id: int, count: int, *, bump: float = 0.0) -> pd.DataFrame:
    close = [50.0 + i + bump for i in range(count)]
    return pd.DataFrame(
        {
            "symbol_id": symbol_id,
            "timeframe": "D1",
            "ts": pd.date_range(T0, periods=count, freq="D"),
            "open": close,
            "high": [c + 1 for c in close],
            "low": [c - 1 for c in close],
            "close": close,
            "volume": 1.0,
        }
    )


async def test_a_listener_gets_the_change_after_commit_and_not_before(
    conn: asyncpg.Connection, fresh: Settings
) -> None:
    sid = (await upsert_symbols(conn, [SymbolInfo("ACME")]))["ACME"]
    listener = await asyncpg.connect(fresh.asyncpg_dsn)
    try:
        async with listen(listener) as events:
            tx = conn.transaction()
            await tx.start()
            (written,) = await upsert_frame(conn, day_bars(sid, 5), source="test")
            await asyncio.sleep(0.3)
            assert events.empty()  # still uncommitted
            await tx.commit()
            received = await asyncio.wait_for(events.get(), 5)
    finally:
        await listener.close()
    assert received == written
    assert (received.symbol_id, received.timeframe, received.rows) == (sid, "D1", 5)
    assert received.first_ts == T0 and received.last_ts == T0 + pd.Timedelta(days=4)
    assert received.source == "test" and received.id > 0


async def test_a_rolled_back_batch_sends_nothing_and_keeps_the_version(
    conn: asyncpg.Connection, fresh: Settings
) -> None:
    sid = (await upsert_symbols(conn, [SymbolInfo("ACME")]))["ACME"]
    await upsert_frame(conn, day_bars(sid, 3))
    version = await data_version(conn, sid, "D1")
    listener = await asyncpg.connect(fresh.asyncpg_dsn)
    try:
        async with listen(listener) as events:
            with pytest.raises(RuntimeError, match="abandon"):
                async with conn.transaction():
                    await upsert_frame(conn, day_bars(sid, 3, bump=1.0))
                    raise RuntimeError("abandon the batch")
            await asyncio.sleep(0.5)
            assert events.empty()
            # The listener still works: a committed batch does arrive.
            await upsert_frame(conn, day_bars(sid, 3, bump=2.0))
            received = await asyncio.wait_for(events.get(), 5)
    finally:
        await listener.close()
    assert received.rows == 3
    assert await data_version(conn, sid, "D1") == received.id > version


async def test_data_versions_move_only_for_the_series_that_changed(
    conn: asyncpg.Connection,
) -> None:
    ids = await upsert_symbols(conn, [SymbolInfo("ACME"), SymbolInfo("GLOBX")])
    keys = [(ids["ACME"], "D1"), (ids["GLOBX"], "D1"), (ids["ACME"], "M1")]
    assert await data_versions(conn, keys) == dict.fromkeys(keys, 0)
    await upsert_frame(conn, day_bars(ids["ACME"], 2))
    await upsert_frame(conn, day_bars(ids["GLOBX"], 2))
    before = await data_versions(conn, keys)
    assert before[keys[0]] > 0 and before[keys[1]] > before[keys[0]] and before[keys[2]] == 0

    await upsert_frame(conn, day_bars(ids["ACME"], 2))  # identical: no change, same version
    assert await data_versions(conn, keys) == before
    await upsert_frame(conn, day_bars(ids["ACME"], 2, bump=0.5))
    after = await data_versions(conn, keys)
    assert after[keys[0]] > before[keys[1]]
    assert (after[keys[1]], after[keys[2]]) == (before[keys[1]], 0)


def test_the_payload_is_small_versioned_json() -> None:
    change = BarChange(
        7, "M1", T0.to_pydatetime(), T0.to_pydatetime(), 1, id=42, source="provider:binance"
    )
    payload = change.to_payload()
    assert json.loads(payload) == {
        "v": 1,
        "id": 42,
        "symbol_id": 7,
        "timeframe": "M1",
        "first_ts": "2024-05-01T00:00:00+00:00",
        "last_ts": "2024-05-01T00:00:00+00:00",
        "rows": 1,
        "source": "provider:binance",
    }
    assert BarChange.from_payload(payload) == change
    with pytest.raises(ValueError, match="version"):
        BarChange.from_payload(payload.replace('"v":1', '"v":2'))
