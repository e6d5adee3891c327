"""The worker's tasks: ingest (provider, file, symbol listings, refresh) and maintenance.

Every task body is idempotent (a job may run twice after a worker is killed): bars are
upserted, unchanged rows are left alone, and partitions are created only when missing.
Blueprints are built per App (`blueprints()`) because procrastinate renames the tasks of a
blueprint when an App adopts them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from procrastinate import Blueprint, JobContext
from procrastinate.exceptions import AlreadyEnqueued

from core.settings import Settings, load_settings
from workers.file_ingest import ingest_file as run_file_ingest
from workers.provider_ingest import (
    ingest_provider_actions,
    ingest_provider_bars,
    provider_config,
    sync_symbols,
)
from workers.providers import get_provider
from workers.runs import RunRecorder

log = logging.getLogger(__name__)


def refresh_tickers(settings: Settings) -> list[str]:
    """The tickers the periodic refresh keeps fresh (from the comma-separated setting)."""
    return [t.strip().upper() for t in settings.refresh_tickers.split(",") if t.strip()]


def _settings(context: JobContext) -> Settings:
    settings = context.additional_context.get("settings")
    return settings if isinstance(settings, Settings) else load_settings()


def _job_id(context: JobContext) -> int:
    if context.job.id is None:
        raise RuntimeError("a job without an id")
    return context.job.id


@contextlib.asynccontextmanager
async def _recorded(context: JobContext) -> AsyncIterator[tuple[asyncpg.Connection, RunRecorder]]:
    """A connection for the job and its run record; an exception is recorded, then re-raised."""
    conn = await asyncpg.connect(_settings(context).asyncpg_dsn)
    recorder = RunRecorder(conn, _job_id(context), context.job.task_name)
    try:
        await recorder.start()
        try:
            yield conn, recorder
        except Exception as exc:
            with contextlib.suppress(Exception):
                await recorder.fail(exc)
            raise
    finally:
        await conn.close()


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    ts = datetime.fromisoformat(value)
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


async def ingest_provider(
    context: JobContext,
    *,
    provider: str,
    tickers: list[str],
    timeframe: str,
    start: str | None = None,
    end: str | None = None,
) -> dict[str, Any]:
    """Fetch bars of `tickers` from `provider`; without `start`, incrementally."""
    settings = _settings(context)
    totals = {"fetched": 0, "written": 0, "rejected": 0}
    async with (
        _recorded(context) as (conn, recorder),
        get_provider(provider, provider_config(settings, provider)) as client,
    ):
        for ticker in tickers:
            report = await ingest_provider_bars(
                conn,
                client,
                ticker,
                timeframe,
                start=_parse_time(start),
                end=_parse_time(end),
                overlap_bars=settings.ingest_overlap_bars,
                default_lookback=timedelta(days=settings.ingest_default_lookback_days),
                batch_rows=settings.ingest_batch_rows,
                recorder=recorder,
            )
            totals["fetched"] += report.rows_fetched
            totals["written"] += report.rows_written
            totals["rejected"] += report.rows_rejected
    return totals


async def ingest_file(
    context: JobContext,
    *,
    path: str,
    timeframe: str,
    tz: str = "UTC",
    ticker: str | None = None,
) -> dict[str, Any]:
    """Ingest a CSV or Parquet file that the worker can read at `path`."""
    settings = _settings(context)
    async with _recorded(context) as (conn, recorder):
        report = await run_file_ingest(
            conn,
            Path(path),
            timeframe=timeframe,
            tz=tz,
            ticker=ticker,
            batch_rows=settings.ingest_batch_rows,
            recorder=recorder,
        )
    return {
        "read": report.rows_read,
        "written": report.rows_written,
        "rejected": report.rows_rejected,
    }


async def ingest_upload(
    context: JobContext,
    *,
    upload: int,
    name: str,
    timeframe: str,
    tz: str = "UTC",
    ticker: str | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    """Ingest a file uploaded into the database by `ingest --enqueue` (workers/uploads.py)."""
    import tempfile

    from workers import uploads
    from workers.retry import is_permanent

    settings = _settings(context)
    with tempfile.TemporaryDirectory(prefix="market-graphql-upload-") as tmp:
        # The uploaded name keeps its suffixes (.csv.gz, .parquet): they tell the format.
        path = Path(tmp) / Path(name).name
        async with _recorded(context) as (conn, recorder):
            if not await uploads.download(conn, upload, path):
                # An earlier run wrote the bars and removed the upload, then was cut off
                # before the queue heard of it: nothing is left to do.
                log.info("upload %s (%s) already ingested", upload, name)
                return {"read": 0, "written": 0, "rejected": 0, "alreadyIngested": True}
            try:
                report = await run_file_ingest(
                    conn,
                    path,
                    timeframe=timeframe,
                    tz=tz,
                    ticker=ticker,
                    batch_rows=settings.ingest_batch_rows,
                    recorder=recorder,
                )
            except Exception as exc:
                if is_permanent(exc):
                    await uploads.discard(conn, upload)  # no retry will read it
                raise
            await uploads.discard(conn, upload)
    return {
        "read": report.rows_read,
        "written": report.rows_written,
        "rejected": report.rows_rejected,
    }


async def sync_provider_symbols(context: JobContext, *, provider: str) -> int:
    """Create or update the symbols a provider lists."""
    settings = _settings(context)
    async with (
        _recorded(context) as (conn, _recorder),
        get_provider(provider, provider_config(settings, provider)) as client,
    ):
        return await sync_symbols(conn, client)


async def refresh(context: JobContext, timestamp: int) -> int:
    """Periodic: queue an incremental fetch per configured ticker; returns how many."""
    settings = _settings(context)
    deferred = 0
    for ticker in refresh_tickers(settings):
        lock = f"refresh:{settings.refresh_provider}:{ticker}:{settings.refresh_timeframe}"
        try:
            await context.app.configure_task(
                "ingest:ingest_provider", queueing_lock=lock
            ).defer_async(
                provider=settings.refresh_provider,
                tickers=[ticker],
                timeframe=settings.refresh_timeframe,
            )
        except AlreadyEnqueued:
            # The previous refresh of this ticker has not started yet; one is enough.
            continue
        deferred += 1
    return deferred


async def ingest_actions(
    context: JobContext,
    *,
    provider: str,
    tickers: list[str],
    start: str,
    end: str,
) -> dict[str, Any]:
    """Fetch and upsert the splits and cash dividends of `tickers` with an ex-date in
    [start, end] (ISO dates) from `provider`; idempotent."""
    settings = _settings(context)
    async with (
        _recorded(context) as (conn, _recorder),
        get_provider(provider, provider_config(settings, provider)) as client,
    ):
        fetched, written = await ingest_provider_actions(
            conn, client, tickers, date.fromisoformat(start), date.fromisoformat(end)
        )
    return {"fetched": fetched, "written": written}


async def refresh_actions(context: JobContext, timestamp: int) -> int:
    """Periodic: queue a fetch of the actions of every active equity symbol around today
    (ACTIONS_LOOKBACK_DAYS back for corrections, ACTIONS_LOOKAHEAD_DAYS ahead for announced
    ones); returns the number of symbols."""
    settings = _settings(context)
    if not settings.actions_provider:
        return 0
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        rows = await conn.fetch(
            "SELECT ticker FROM symbols WHERE active AND asset_class = 'equity' ORDER BY ticker"
        )
    finally:
        await conn.close()
    tickers = [r["ticker"] for r in rows]
    if not tickers:
        return 0
    today = datetime.now(UTC).date()
    try:
        await context.app.configure_task(
            "ingest:ingest_actions", queueing_lock=f"actions:{settings.actions_provider}"
        ).defer_async(
            provider=settings.actions_provider,
            tickers=tickers,
            start=(today - timedelta(days=settings.actions_lookback_days)).isoformat(),
            end=(today + timedelta(days=settings.actions_lookahead_days)).isoformat(),
        )
    except AlreadyEnqueued:
        return 0  # the previous refresh has not started yet
    return len(tickers)


async def retry_stalled(context: JobContext, timestamp: int) -> int:
    """Periodic: put jobs of workers whose heartbeat stopped (killed) back in the queue."""
    settings = _settings(context)
    manager = context.app.job_manager
    stalled = list(
        await manager.get_stalled_jobs(
            seconds_since_heartbeat=settings.worker_stalled_after_seconds
        )
    )
    for job in stalled:
        log.warning("retrying job %s (%s) of a stalled worker", job.id, job.task_name)
        await manager.retry_job(job)
    return len(stalled)


async def ensure_partitions(context: JobContext, timestamp: int) -> int:
    """Periodic: create the bar partitions for the coming months before data arrives."""
    settings = _settings(context)
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        now = datetime.now(UTC)
        created: int = await conn.fetchval(
            "SELECT ensure_bar_partitions($1, $2)",
            now,
            now + timedelta(days=settings.partitions_ahead_days),
        )
    finally:
        await conn.close()
    return created


def blueprints() -> tuple[Blueprint, Blueprint]:
    """Fresh (ingest, maintenance) blueprints holding the tasks above."""
    ingest = Blueprint()
    for func in (
        ingest_provider,
        ingest_file,
        ingest_upload,
        refresh,
        ingest_actions,
        refresh_actions,
    ):
        ingest.task(name=func.__name__, pass_context=True)(func)
    ingest.task(name="sync_symbols", pass_context=True)(sync_provider_symbols)
    maintenance = Blueprint()
    for func in (retry_stalled, ensure_partitions):
        maintenance.task(name=func.__name__, pass_context=True, queue="maintenance")(func)
    return ingest, maintenance
