"""barUpdates with `adjustment`: replayed and live bars are adjusted like `Symbol.bars`, the
fast path and Strawberry's execution send the same, and a new action re-sends the bars it
adjusts (an ingest event, like a bar revision)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime

import asyncpg

from graphql_api.live.fast import plan
from graphql_api.schema import schema
from tests.live.conftest import LiveEnv
from tests.live.support import BAR_FIELDS, ApiProcess, GqlWs, minute_bar, minutes, write_bars
from workers.actions import Action, write_actions
from workers.symbols import SymbolInfo, upsert_symbols

VARS = "$tickers: [String!]!, $since: DateTime, $a: Adjustment!"
ARGS = "tickers: $tickers, interval: M1, since: $since, adjustment: $a"
FAST = f"subscription ({VARS}) {{ barUpdates({ARGS}) {{ {BAR_FIELDS} }} }}"
EXECUTED = (
    f"subscription ({VARS}) {{ barUpdates({ARGS}) {{ ... on BarUpdate {{ {BAR_FIELDS} }} }} }}"
)
T0 = datetime(2024, 5, 1, 14, 30, tzinfo=UTC)
EX = date(2024, 5, 2)


def test_the_fast_path_carries_the_adjustment() -> None:
    p = plan(schema, FAST, {"tickers": ["X"], "a": "ALL"}, None)
    assert p is not None and p.adjust is not None and p.adjust.adjustment.value == "ALL"
    raw = plan(schema, FAST, {"tickers": ["X"], "a": "RAW"}, None)
    assert raw is not None and raw.adjust is None


async def _act(dsn: str, actions: list[Action]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await write_actions(conn, actions, source="test")
    finally:
        await conn.close()


async def test_adjusted_replay_and_live_updates(
    api_pair: tuple[ApiProcess, ApiProcess], live_env: LiveEnv
) -> None:
    conn = await asyncpg.connect(live_env.dsn)
    try:
        sid = (await upsert_symbols(conn, [SymbolInfo("LIVEADJ")]))["LIVEADJ"]
    finally:
        await conn.close()
    await write_bars(live_env.dsn, [minute_bar(sid, t, 100.0) for t in minutes(T0, 5)])
    await _act(live_env.dsn, [Action("LIVEADJ", "SPLIT", EX, 2.0)])
    clients = [await GqlWs.open(api_pair[0].ws_url) for _ in range(2)]
    try:
        variables = {"tickers": ["LIVEADJ"], "since": T0.isoformat(), "a": "ALL"}
        await clients[0].subscribe("fast", FAST, variables)
        await clients[0].subscribe("executed", EXECUTED, variables)
        await clients[1].subscribe("raw", FAST, {**variables, "a": "RAW"})
        replayed = await clients[0].updates("fast", 5)
        assert [u["bar"]["close"] for u in replayed] == [50.25] * 5  # (100 + 0.5) / 2
        assert [u["bar"]["volume"] for u in replayed] == [200.0] * 5
        assert all(u["replayed"] for u in replayed)
        raw = await clients[1].updates("raw", 5)
        assert [u["bar"]["close"] for u in raw] == [100.5] * 5
        executed = await clients[0].updates("executed", 5)
        assert json.dumps(executed) == json.dumps(replayed)  # Strawberry sends the same
        await asyncio.sleep(0.3)
        # A live bar before the ex-date comes adjusted.
        await write_bars(live_env.dsn, [minute_bar(sid, T0.replace(minute=40), 120.0)])
        (live,) = await clients[0].updates("fast", 1)
        assert (await clients[0].updates("executed", 1)) == [live]
        assert live["bar"]["close"] == 60.25 and not live["replayed"]
        (live_raw,) = await clients[1].updates("raw", 1)
        assert live_raw["bar"]["close"] == 120.5
        # A new action re-sends every bar it adjusts, adjusted by both actions now.
        await _act(live_env.dsn, [Action("LIVEADJ", "DIVIDEND", EX, 1.0)])
        resent = await clients[0].updates("fast", 6)
        factor = 0.5 * (1 - 1.0 * 2 / 120.5)  # the previous close: the newest bar's
        assert sorted(u["bar"]["close"] for u in resent) == sorted(
            [100.5 * factor] * 5 + [120.5 * factor]
        )
        raw_resent = await clients[1].updates("raw", 6)
        assert sorted(u["bar"]["close"] for u in raw_resent) == [100.5] * 5 + [120.5]
    finally:
        for client in clients:
            await client.close()
