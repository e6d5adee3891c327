"""The job queue's wiring: connection string, tasks, periodic schedule from settings."""

from __future__ import annotations

import psycopg.conninfo

from core.jobs import psycopg_conninfo
from core.settings import load_settings
from workers.queue import create_app


def test_conninfo_keeps_credentials_and_socket_options() -> None:
    settings = load_settings(
        database_url="postgresql://ana:p%40ss%20word@db.example:6543/market?sslmode=require"
    )
    assert psycopg.conninfo.conninfo_to_dict(psycopg_conninfo(settings)) == {
        "host": "db.example",
        "port": "6543",
        "user": "ana",
        "password": "p@ss word",
        "dbname": "market",
        "sslmode": "require",
    }
    embedded = load_settings(database_url="postgresql://postgres@/postgres?host=/tmp/pg%20dir")
    assert psycopg.conninfo.conninfo_to_dict(psycopg_conninfo(embedded)) == {
        "user": "postgres",
        "dbname": "postgres",
        "host": "/tmp/pg dir",
    }


def test_tasks_and_periodic_jobs_follow_the_settings() -> None:
    settings = load_settings(
        database_url="postgresql://u@h/d",
        refresh_tickers=" aapl, msft ,",
        refresh_cron="*/2 * * * *",
        retry_stalled_cron="* * * * * */5",
        ingest_max_attempts=7,
    )
    app = create_app(settings)
    # A second App in the same process gets the same task names (blueprints are per App).
    again = create_app(settings)
    for a in (app, again):
        assert {
            "ingest:ingest_provider",
            "ingest:ingest_file",
            "ingest:sync_symbols",
            "ingest:refresh",
            "maintenance:retry_stalled",
            "maintenance:ensure_partitions",
        } <= set(a.tasks)
    schedule = {p.task.name: p.cron for p in app.periodic_registry.periodic_tasks.values()}
    assert schedule == {
        "maintenance:retry_stalled": "* * * * * */5",
        "maintenance:ensure_partitions": "17 3 * * *",
        "ingest:refresh": "*/2 * * * *",
    }
    retry = app.tasks["ingest:ingest_file"].retry_strategy
    assert retry is not None and retry.max_attempts == 7  # type: ignore[attr-defined]

    quiet = create_app(load_settings(database_url="postgresql://u@h/d", refresh_tickers=""))
    names = {p.task.name for p in quiet.periodic_registry.periodic_tasks.values()}
    assert "ingest:refresh" not in names
