"""Provider corporate actions through the worker's path: fetched, upserted, recorded as change
events of the series they adjust; a re-run of the same window changes nothing; the periodic
refresh is scheduled only when a provider is configured."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import pytest

from core.events import data_version
from core.settings import Settings, load_settings
from tests.providers.support import ReplayServer, Reply
from workers.provider_ingest import ingest_provider_actions, provider_config
from workers.providers import get_provider
from workers.queue import create_app
from workers.symbols import SymbolInfo, upsert_symbols
from workers.upsert import upsert_bars


@pytest.fixture
def replay(replay_server: ReplayServer) -> ReplayServer:
    replay_server.reset()
    return replay_server


def _polygon(replay: ReplayServer) -> None:
    ok: dict[str, Any] = {"status": "OK", "request_id": "r"}
    replay.route(
        "/v3/reference/splits",
        lambda _: Reply(
            {**ok, "results": [{"execution_date": "2020-08-31", "split_from": 1, "split_to": 4}]}
        ),
    )
    replay.route(
        "/v3/reference/dividends",
        lambda _: Reply(
            {**ok, "results": [{"cash_amount": 0.82, "ex_dividend_date": "2020-05-08"}]}
        ),
    )


async def test_provider_actions_are_upserted_as_change_events(
    conn: asyncpg.Connection, fresh: Settings, replay: ReplayServer
) -> None:
    _polygon(replay)
    sid = (await upsert_symbols(conn, [SymbolInfo("AAPL")]))["AAPL"]
    day = datetime(2020, 5, 4, tzinfo=UTC)
    await upsert_bars(conn, [(sid, "D1", day, 300.0, 301.0, 299.0, 300.5, 1e6)], source="test")
    before = await data_version(conn, sid, "D1")
    settings = fresh.model_copy(
        update={"polygon_base_url": replay.base_url, "polygon_api_key": "pk_test"}
    )
    # Polygon's free-tier limit (5 a minute) would space these requests 12 s apart.
    config = replace(provider_config(settings, "polygon"), requests_per_minute=600_000.0)
    async with get_provider("polygon", config) as client:
        window = (date(2020, 1, 1), date(2020, 12, 31))
        assert await ingest_provider_actions(conn, client, ["AAPL"], *window) == (2, 2)
        after = await data_version(conn, sid, "D1")
        assert after > before
        # The same window again: nothing new, no event.
        assert await ingest_provider_actions(conn, client, ["AAPL"], *window) == (2, 0)
        assert await data_version(conn, sid, "D1") == after
    rows = await conn.fetch(
        "SELECT kind, ex_date, value, source FROM corporate_actions ORDER BY ex_date"
    )
    assert [tuple(r) for r in rows] == [
        ("DIVIDEND", date(2020, 5, 8), 0.82, "provider:polygon"),
        ("SPLIT", date(2020, 8, 31), 4.0, "provider:polygon"),
    ]


def test_actions_refresh_is_scheduled_only_with_a_provider() -> None:
    on = create_app(load_settings(database_url="postgresql://u@h/d", actions_provider="polygon"))
    assert {"ingest:ingest_actions", "ingest:refresh_actions"} <= set(on.tasks)
    schedule = {p.task.name: p.cron for p in on.periodic_registry.periodic_tasks.values()}
    assert schedule["ingest:refresh_actions"] == "41 6 * * *"
    off = create_app(load_settings(database_url="postgresql://u@h/d"))
    assert "ingest:refresh_actions" not in {
        p.task.name for p in off.periodic_registry.periodic_tasks.values()
    }
