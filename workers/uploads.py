"""Files queued for any worker: uploaded into PostgreSQL in chunks, ingested by a worker.

`market-graphql ingest --enqueue FILE…` must work when the workers run on other hosts, with
no filesystem in common: the database is the one thing every worker reaches already. Each
file is stored as a PostgreSQL large object, written chunk by chunk (`lo_put` at an offset,
UPLOAD_CHUNK_BYTES a statement, all in one transaction, so a failed upload leaves nothing
behind), and an `ingest:ingest_upload` job names its oid. The worker that takes the job reads
it back chunk by chunk (`lo_get`) into a temporary file, ingests that like any other file,
and removes the large object once the bars are written (or the file proved unreadable, which
no retry fixes). A job that runs again after its upload was removed has nothing left to do.

Large objects are PostgreSQL's own chunked binary storage (pg_largeobject, 2 kB pages, up to
4 TB an object): no table of ours, no migration, no size cap of `bytea`. The file's bytes go
through the WAL once, so they also travel to every streaming replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from core.jobs import INGEST, connector
from core.settings import Settings

#: Bytes per statement when uploading or downloading a file.
UPLOAD_CHUNK_BYTES = 1 << 20
#: The task that ingests an uploaded file (workers/tasks.py).
UPLOAD_TASK = f"{INGEST}:ingest_upload"


@dataclass(frozen=True)
class QueuedFile:
    """A file uploaded and queued: its job and large object."""

    path: Path
    job_id: int
    upload: int
    size: int


async def upload(
    conn: asyncpg.Connection, path: Path, chunk_bytes: int = UPLOAD_CHUNK_BYTES
) -> int:
    """Store the file as a new large object, chunk by chunk; returns its oid.

    Call inside a transaction: the object exists for others only once it commits.
    """
    oid: int = await conn.fetchval("SELECT lo_create(0)")
    offset = 0
    with path.open("rb") as f:
        while chunk := f.read(chunk_bytes):
            await conn.execute("SELECT lo_put($1, $2, $3)", oid, offset, chunk)
            offset += len(chunk)
    return oid


async def download(
    conn: asyncpg.Connection, oid: int, target: Path, chunk_bytes: int = UPLOAD_CHUNK_BYTES
) -> bool:
    """Write the large object `oid` to `target`; False when it no longer exists."""
    exists = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_largeobject_metadata WHERE oid = $1::oid)", oid
    )
    if not exists:
        return False
    offset = 0
    with target.open("wb") as f:
        while True:
            chunk: bytes = await conn.fetchval(
                "SELECT lo_get($1, $2, $3)", oid, offset, chunk_bytes
            )
            if not chunk:
                break
            f.write(chunk)
            offset += len(chunk)
            if len(chunk) < chunk_bytes:
                break
    return True


async def discard(conn: asyncpg.Connection, oid: int) -> None:
    """Remove the large object (no error when it is already gone)."""
    await conn.execute(
        "SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = $1::oid", oid
    )


async def enqueue_files(
    settings: Settings,
    paths: list[Path],
    *,
    timeframe: str,
    tz: str = "UTC",
    ticker: str | None = None,
) -> list[QueuedFile]:
    """Upload each file and queue a job for it; returns the jobs in the order of `paths`."""
    from procrastinate import App

    queued = []
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    app = App(connector=connector(settings))
    try:
        async with app.open_async():
            for path in paths:
                async with conn.transaction():
                    oid = await upload(conn, path)
                args: dict[str, Any] = {
                    "upload": oid,
                    "name": path.name,
                    "size": path.stat().st_size,
                    "timeframe": timeframe,
                    "tz": tz,
                    "ticker": ticker,
                }
                try:
                    job_id: int = await app.configure_task(UPLOAD_TASK).defer_async(**args)
                except BaseException:
                    await discard(conn, oid)  # no job will ever read it
                    raise
                queued.append(QueuedFile(path, job_id, oid, args["size"]))
    finally:
        await conn.close()
    return queued
