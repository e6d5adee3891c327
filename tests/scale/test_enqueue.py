"""`ingest --enqueue`: files uploaded into PostgreSQL in chunks, ingested by a worker process
that never sees the client's filesystem (the file is deleted before the worker starts)."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import numpy as np
import pandas as pd
import pytest

from core import db
from core.settings import Settings
from tests.conftest import migrated_settings
from workers import uploads

ROWS = 30_000  # about 1.9 MB of CSV: two 1 MiB upload chunks


@pytest.fixture(scope="module")
def queue_settings(make_database: Callable[[], str]) -> Settings:
    settings = migrated_settings(make_database())
    db.upgrade(settings)
    return settings


def _cli(settings: Settings, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert settings.database_url is not None
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": ""}
    return subprocess.run(
        [sys.executable, "-m", "graphql_api", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _frame(ticker: str, rows: int) -> pd.DataFrame:
    close = 100.0 + np.arange(rows) * 0.001
    return pd.DataFrame(
        {
            "ticker": ticker,
            "time": pd.date_range("2023-06-01", periods=rows, freq="min", tz="UTC"),
            "open": close,
            "high": close + 0.5,
            "low": close - 0.5,
            "close": close,
            "volume": 100.0,
        }
    )


async def _wait_done(settings: Settings, job_ids: list[int], seconds: float) -> dict[int, str]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        deadline = time.monotonic() + seconds
        while True:
            rows = await conn.fetch(
                "SELECT id, status::text FROM procrastinate_jobs WHERE id = ANY($1::bigint[])",
                job_ids,
            )
            status = {r["id"]: r["status"] for r in rows}
            if all(s in ("succeeded", "failed") for s in status.values()) or (
                time.monotonic() > deadline
            ):
                return status
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def _facts(settings: Settings) -> tuple[int, int, int]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        bars = await conn.fetchval("SELECT count(*) FROM bars")
        objects = await conn.fetchval("SELECT count(*) FROM pg_largeobject_metadata")
        written = await conn.fetchval("SELECT coalesce(sum(rows_written), 0) FROM ingest_runs")
        return int(bars), int(objects), int(written)
    finally:
        await conn.close()


def test_enqueued_files_are_ingested_by_a_worker_elsewhere(
    queue_settings: Settings, tmp_path: Path
) -> None:
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    csv = client_dir / "acme.csv"
    _frame("ACME", ROWS).to_csv(csv, index=False)
    assert csv.stat().st_size > uploads.UPLOAD_CHUNK_BYTES  # several chunks
    packed = client_dir / "init.csv.gz"
    with gzip.open(packed, "wt") as f:
        _frame("INIT", 500).to_csv(f, index=False)

    done = _cli(
        queue_settings, "ingest", "--enqueue", "--timeframe", "M1", str(csv), str(packed),
        cwd=client_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    job_ids = [int(line) for line in done.stdout.split()]
    assert len(job_ids) == 2
    assert asyncio.run(_facts(queue_settings)) == (0, 2, 0)  # uploaded, nothing ingested yet
    # The worker cannot read the client's files: they are gone.
    csv.unlink()
    packed.unlink()

    worker_dir = tmp_path / "worker"
    worker_dir.mkdir()
    assert queue_settings.database_url is not None
    env = {
        **os.environ,
        "DATABASE_URL": queue_settings.database_url,
        "WORKER_POLL_SECONDS": "0.5",
        "TMPDIR": str(worker_dir),
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "graphql_api", "worker"],
            env=env,
            cwd=worker_dir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        status = asyncio.run(_wait_done(queue_settings, job_ids, 90))
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert status == dict.fromkeys(job_ids, "succeeded"), log.read_text()[-3000:]
    # Every row landed, and the uploads were removed once ingested.
    assert asyncio.run(_facts(queue_settings)) == (ROWS + 500, 0, ROWS + 500)
    assert list(worker_dir.iterdir()) == []  # its temporary copies too


def test_a_file_that_is_not_a_table_is_refused_before_upload(
    queue_settings: Settings, tmp_path: Path
) -> None:
    junk = tmp_path / "notes.csv"
    junk.write_text("hello\nworld\n")
    done = _cli(queue_settings, "ingest", "--enqueue", "--timeframe", "M1", str(junk), cwd=tmp_path)
    assert done.returncode == 1
    assert "error" in done.stderr
    objects = asyncio.run(_facts(queue_settings))[1]
    assert objects == 0


async def test_upload_round_trip_in_chunks(queue_settings: Settings, tmp_path: Path) -> None:
    data = os.urandom(5 * 1000 + 17)
    source = tmp_path / "blob.bin"
    source.write_bytes(data)
    conn = await asyncpg.connect(queue_settings.asyncpg_dsn)
    try:
        async with conn.transaction():
            oid = await uploads.upload(conn, source, chunk_bytes=1000)
        target = tmp_path / "copy.bin"
        assert await uploads.download(conn, oid, target, chunk_bytes=1000)
        assert target.read_bytes() == data
        await uploads.discard(conn, oid)
        assert not await uploads.download(conn, oid, tmp_path / "gone.bin")
    finally:
        await conn.close()
