"""Live bars across two API processes: a worker's ingest reaches clients of both."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.live.conftest import LiveEnv
from tests.live.support import BARS, ROOT, ApiProcess, GqlWs, iso


async def test_a_bar_ingested_by_a_worker_reaches_clients_of_both_api_processes(
    api_pair: tuple[ApiProcess, ApiProcess], live_env: LiveEnv, tmp_path: Path
) -> None:
    a, b = api_pair
    clients = [await GqlWs.open(a.ws_url), await GqlWs.open(b.ws_url)]
    try:
        for c in clients:
            await c.subscribe("1", BARS, {"tickers": ["acme"], "interval": "M1"})
        await asyncio.sleep(0.3)  # the subscribe message is asynchronous: let both register
        csv = tmp_path / "acme.csv"
        csv.write_text(
            "time,open,high,low,close,volume\n2024-04-01T14:30:00Z,60,61.5,59.5,61,1200\n"
        )
        assert live_env.settings.database_url is not None
        done = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "graphql_api",
                "ingest",
                str(csv),
                "--timeframe",
                "M1",
                "--ticker",
                "ACME",
            ],
            cwd=tmp_path,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "DATABASE_URL": live_env.settings.database_url,
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        for c in clients:
            (update,) = await c.updates("1", 1)
            assert update["ticker"] == "ACME" and update["interval"] == "M1"
            assert update["replayed"] is False and update["version"] > 0
            assert update["bar"] == {
                "time": iso(datetime(2024, 4, 1, 14, 30, tzinfo=UTC)),
                "open": 60.0,
                "high": 61.5,
                "low": 59.5,
                "close": 61.0,
                "volume": 1200.0,
                "closed": True,
            }
    finally:
        for c in clients:
            await c.close()
