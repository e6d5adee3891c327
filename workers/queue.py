"""The procrastinate job queue on the service's PostgreSQL (no other broker)."""

from __future__ import annotations

from typing import Any

from procrastinate import App, PsycopgConnector
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from graphql_api.errors import ConfigError
from graphql_api.settings import Settings
from workers import tasks
from workers.retry import BackoffWithJitter

#: Task names are "<namespace>:<function>"; jobs listed by the API are those of INGEST.
INGEST = "ingest"
MAINTENANCE = "maintenance"


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


def create_app(settings: Settings) -> App:
    """An App with the ingest and maintenance tasks, periodic ones scheduled from settings."""
    connector = PsycopgConnector(
        conninfo=psycopg_conninfo(settings),
        min_size=1,
        # Per job a connection to finish it, plus the fetcher, the listener and the heartbeat.
        max_size=settings.worker_concurrency + 4,
        kwargs={"application_name": "market-graphql-worker"},
    )
    app = App(connector=connector)
    ingest, maintenance = tasks.blueprints()
    app.add_tasks_from(ingest, namespace=INGEST)
    app.add_tasks_from(maintenance, namespace=MAINTENANCE)
    retry = BackoffWithJitter(
        max_attempts=settings.ingest_max_attempts,
        base_seconds=settings.ingest_retry_base_seconds,
        max_seconds=settings.ingest_retry_max_seconds,
    )
    for name, task in app.tasks.items():
        if name.startswith(f"{INGEST}:"):
            task.retry_strategy = retry
    schedule = (
        (settings.retry_stalled_cron, f"{MAINTENANCE}:retry_stalled"),
        (settings.partitions_cron, f"{MAINTENANCE}:ensure_partitions"),
        (settings.refresh_cron, f"{INGEST}:refresh"),
    )
    for cron, name in schedule:
        if name == f"{INGEST}:refresh" and not tasks.refresh_tickers(settings):
            continue
        # A queueing lock per periodic task: a slow run never piles up copies of itself.
        app.periodic(cron=cron, periodic_id=name, queueing_lock=name)(app.tasks[name])
    return app
