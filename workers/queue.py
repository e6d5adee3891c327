"""The procrastinate job queue on the service's PostgreSQL (no other broker)."""

from __future__ import annotations

from procrastinate import App

from core.jobs import INGEST, MAINTENANCE, connector
from core.settings import Settings
from workers import tasks
from workers.retry import BackoffWithJitter


def create_app(settings: Settings) -> App:
    """An App with the ingest and maintenance tasks, periodic ones scheduled from settings."""
    app = App(connector=connector(settings))
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
        (settings.actions_cron, f"{INGEST}:refresh_actions"),
    )
    for cron, name in schedule:
        if name == f"{INGEST}:refresh" and not tasks.refresh_tickers(settings):
            continue
        if name == f"{INGEST}:refresh_actions" and not settings.actions_provider:
            continue
        # A queueing lock per periodic task: a slow run never piles up copies of itself.
        app.periodic(cron=cron, periodic_id=name, queueing_lock=name)(app.tasks[name])
    return app
