"""Ingest jobs as the API shows them (listing) and requests them (enqueueing).

The queue-facing side of the job queue: task names, the connection to procrastinate's
tables, listing and deferring by task name. The tasks themselves are registered by the
workers (workers/queue.py, workers/tasks.py); deferring by name needs none of their code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from procrastinate import App, PsycopgConnector
from procrastinate.types import JSONValue
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from core.errors import ConfigError
from core.intervals import parse_timeframe
from core.providers import PROVIDER_NAMES
from core.settings import Settings
from core.tickers import MAX_TICKER_LENGTH, ticker_problem

#: Task names are "<namespace>:<function>"; jobs listed by the API are those of INGEST.
INGEST = "ingest"
MAINTENANCE = "maintenance"

#: procrastinate's job states.
STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborting", "aborted")
_FINAL = ("succeeded", "failed", "cancelled", "aborted")


@dataclass(frozen=True)
class JobInfo:
    """One ingest job: its queue state, attempts (times started) and what it wrote."""

    id: int
    task: str
    status: str
    attempts: int
    args: dict[str, Any]
    rows_written: int
    rows_rejected: int
    error: str | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


_LIST = f"""
SELECT j.id, j.task_name, j.status::text AS status, j.args,
       coalesce(r.rows_written, 0) AS rows_written, coalesce(r.rows_rejected, 0) AS rows_rejected,
       r.error, e.queued_at, e.started_at, e.attempts,
       CASE WHEN j.status::text IN ({", ".join(f"'{s}'" for s in _FINAL)})
            THEN e.finished_at END AS finished_at
FROM procrastinate_jobs j
LEFT JOIN ingest_runs r ON r.job_id = j.id
LEFT JOIN LATERAL (
    SELECT min(ev.at) FILTER (WHERE ev.type = 'deferred') AS queued_at,
           max(ev.at) FILTER (WHERE ev.type = 'started') AS started_at,
           max(ev.at) FILTER (WHERE ev.type::text IN ({", ".join(f"'{s}'" for s in _FINAL)}))
               AS finished_at,
           count(*) FILTER (WHERE ev.type = 'started') AS attempts
    FROM procrastinate_events ev WHERE ev.job_id = j.id
) e ON true
WHERE j.task_name LIKE 'ingest:%' AND j.task_name <> 'ingest:refresh'
  AND ($1::text IS NULL OR j.status::text = $1)
  AND ($2::bigint IS NULL OR j.id < $2)
ORDER BY j.id DESC
LIMIT $3
"""


async def list_jobs(
    conn: asyncpg.Connection, status: str | None, first: int, after_id: int | None
) -> list[JobInfo]:
    """Ingest jobs, newest first: at most `first`, with ids below `after_id` (keyset paging).

    Ask for first + 1 to learn whether another page exists. `status` is one of STATUSES
    (case-insensitive); ValueError otherwise.
    """
    if status is not None:
        status = status.strip().lower()
        if status not in STATUSES:
            raise ValueError(f"unknown job status {status!r}; known: {', '.join(STATUSES)}")
    if first < 0:
        raise ValueError("first must not be negative")
    rows = await conn.fetch(_LIST, status, after_id, first)
    return [
        JobInfo(
            id=r["id"],
            task=r["task_name"],
            status=r["status"],
            attempts=r["attempts"] or 0,
            args=_json(r["args"]),
            rows_written=r["rows_written"],
            rows_rejected=r["rows_rejected"],
            error=r["error"],
            queued_at=r["queued_at"],
            started_at=r["started_at"],
            finished_at=r["finished_at"],
        )
        for r in rows
    ]


def _json(value: object) -> dict[str, Any]:
    data = json.loads(value) if isinstance(value, str | bytes) else value
    return data if isinstance(data, dict) else {}


def _shown(text: str) -> str:
    """`text` cut for a message: all of a huge argument would only be echoed to its sender."""
    return text if len(text) <= MAX_TICKER_LENGTH else text[:MAX_TICKER_LENGTH] + "…"


def _aware(value: datetime | None, name: str) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"`{name}` needs a time zone (a UTC offset)")
    return value.astimezone(UTC).isoformat()


async def enqueue_ingest(
    settings: Settings,
    provider: str,
    tickers: Sequence[str],
    timeframe: str,
    from_: datetime | None,
    to: datetime | None,
) -> int:
    """Queue a provider ingest job and return its id; ValueError for bad arguments.

    The arguments are `requestIngest`'s, and the messages, which reach its clients, name
    them as the schema does. Without `from_` the job is incremental (from the newest stored
    bar of each ticker).
    """
    name = provider.strip().lower()
    if name not in PROVIDER_NAMES:
        raise ValueError(
            f"unknown provider {_shown(provider)!r}: `provider` must be one of "
            f"{', '.join(PROVIDER_NAMES)}"
        )
    distinct = sorted({t.strip().upper() for t in tickers if t.strip()})
    if not distinct:
        raise ValueError("`tickers` needs at least one ticker")
    for ticker in distinct:
        problem = ticker_problem(ticker)
        if problem is not None:
            raise ValueError(f"`tickers` holds {_shown(ticker)!r}: {problem}")
    cleaned: list[JSONValue] = [*distinct]
    # Offsets first: comparing a naive with an aware time would raise TypeError.
    start_iso, end_iso = _aware(from_, "from"), _aware(to, "to")
    if from_ is not None and to is not None and from_ > to:
        raise ValueError("`from` is after `to`")
    args: dict[str, JSONValue] = {
        "provider": name,
        "tickers": cleaned,
        "timeframe": parse_timeframe(timeframe),
        "start": start_iso,
        "end": end_iso,
    }
    app = App(connector=connector(settings))
    async with app.open_async():
        job_id: int = await app.configure_task(f"{INGEST}:ingest_provider").defer_async(**args)
    return job_id


def psycopg_conninfo(settings: Settings) -> str:
    """The database URL as a libpq conninfo string (psycopg), query options kept."""
    if settings.database_url is None:
        raise ConfigError("DATABASE_URL is not set: the job queue needs a database")
    url = make_url(settings.database_url)
    params: dict[str, Any] = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
    }
    for key, value in url.query.items():
        # A repeated option (host=a&host=b for fail-over) is a comma list in libpq.
        params[key] = ",".join(value) if isinstance(value, tuple) else value
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def connector(settings: Settings) -> PsycopgConnector:
    """The connector of the job queue's App, in workers and in the API alike."""
    return PsycopgConnector(
        conninfo=psycopg_conninfo(settings),
        min_size=1,
        # Per job a connection to finish it, plus the fetcher, the listener and the heartbeat.
        max_size=settings.worker_concurrency + 4,
        kwargs={"application_name": "market-graphql-worker"},
    )
