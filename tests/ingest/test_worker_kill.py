"""Crash safety: a worker SIGKILLed in the middle of a multi-batch job loses and doubles nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import numpy as np
import pandas as pd

from core.settings import Settings
from workers.queue import create_app

ROWS = 20_000
BATCH = 400


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    assert settings.database_url is not None
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "INGEST_BATCH_ROWS": str(BATCH),
        "WORKER_CONCURRENCY": "1",
        "WORKER_POLL_SECONDS": "0.5",
        "WORKER_HEARTBEAT_SECONDS": "0.5",
        "WORKER_STALLED_AFTER_SECONDS": "2",
        "RETRY_STALLED_CRON": "* * * * * */1",  # every second (6th field: seconds)
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "graphql_api", "worker"], env=env, stdout=out, stderr=out
        )


async def wait_for(conn: asyncpg.Connection, query: str, until: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        value = await conn.fetchval(query)
        if until(value):  # type: ignore[operator]
            return
        assert time.monotonic() < deadline, f"timed out: {query} is {value}"
        await asyncio.sleep(0.05)


async def test_a_killed_workers_job_is_retried_and_every_bar_lands_once(
    conn: asyncpg.Connection, fresh: Settings, tmp_path: Path
) -> None:
    close = 100.0 + np.arange(ROWS) * 0.001
    frame = pd.DataFrame(
        {
            "ticker": "ACME",
            "time": pd.date_range("2023-06-01", periods=ROWS, freq="min", tz="UTC"),
            "open": close,
            "high": close + 0.5,
            "low": close - 0.5,
            "close": close,
            "volume": 100.0,
        }
    )
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    app = create_app(fresh)
    async with app.open_async():
        job_id = await app.configure_task("ingest:ingest_file").defer_async(
            path=str(path), timeframe="M1"
        )
    log = tmp_path / "workers.log"

    first = start_worker(fresh, log)
    try:
        await wait_for(conn, "SELECT count(*) FROM bars", lambda n: n >= 5 * BATCH, 60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    landed = await conn.fetchval("SELECT count(*) FROM bars")
    assert landed < ROWS, "the job finished before the kill: make it longer"
    assert await conn.fetchval(f"SELECT status FROM procrastinate_jobs WHERE id = {job_id}") == (
        "doing"
    )

    second = start_worker(fresh, log)
    try:
        await wait_for(
            conn,
            f"SELECT status::text FROM procrastinate_jobs WHERE id = {job_id}",
            lambda s: s in ("succeeded", "failed"),
            60,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)

    job = await conn.fetchrow(
        "SELECT j.status::text AS status, r.rows_written, r.rows_rejected, r.error, "
        "(SELECT count(*) FROM procrastinate_events e "
        " WHERE e.job_id = j.id AND e.type = 'started') AS starts "
        f"FROM procrastinate_jobs j JOIN ingest_runs r ON r.job_id = j.id WHERE j.id = {job_id}"
    )
    assert dict(job) == {
        "status": "succeeded",
        "rows_written": ROWS,  # counted in each batch's transaction: exact despite the kill
        "rows_rejected": 0,
        "error": None,
        "starts": 2,
    }
    stats = await conn.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT ts) AS distinct_ts, min(ts) AS first, "
        "max(ts) AS last, sum(close) AS total FROM bars"
    )
    assert (stats["n"], stats["distinct_ts"]) == (ROWS, ROWS)
    assert stats["first"] == frame["time"].iloc[0] and stats["last"] == frame["time"].iloc[-1]
    assert abs(stats["total"] - close.sum()) < 1e-6
    assert "retrying job" in log.read_text()
