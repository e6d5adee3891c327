"""The `market-graphql` command line."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from core.errors import ConfigError
from core.settings import Settings, load_settings
from workers.cli import actions, export, ingest, worker

app = typer.Typer(
    help="market-graphql: a GraphQL data service for trading systems.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)  # no 80-column wrapping off a terminal


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


def _require_database(settings: Settings) -> Settings:
    if settings.database_url is None:
        console.print(
            "[red]error:[/] DATABASE_URL is not set (only `serve` starts an embedded server)"
        )
        raise typer.Exit(2)
    return settings


async def _load_demo(settings: Settings) -> None:
    import asyncpg

    from workers.demo import load_demo_data

    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        summary = await load_demo_data(conn)
    finally:
        await conn.close()
    console.print(f"demo data: {summary.symbols} symbols, {summary.bars_written} bars written")


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    from core import db

    settings = _require_database(_settings())
    db.upgrade(settings)
    console.print(f"database at revision {db.head_revision(settings)}")


@app.command("demo-data")
def demo_data() -> None:
    """Load the demo data (bokeh-sampledata daily stocks, synthetic minute bars); idempotent."""
    settings = _require_database(_settings())
    asyncio.run(_load_demo(settings))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: PORT).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (needs DATABASE_URL).")] = 1,
) -> None:
    """Serve the GraphQL API; with no DATABASE_URL, on an embedded PostgreSQL with demo data."""
    import uvicorn

    from core import db
    from core.logging_setup import configure_logging
    from graphql_api.http_protocol import HTTP_PROTOCOL

    settings = _settings()
    configure_logging(settings)
    embedded = None
    if settings.database_url is None:
        from graphql_api.embedded import EmbeddedPostgres

        if workers != 1:
            console.print("[red]error:[/] --workers needs DATABASE_URL (an external server)")
            raise typer.Exit(2)
        embedded = EmbeddedPostgres(settings.data_dir)
        console.print(f"starting embedded PostgreSQL in {embedded.data_dir} …")
        url = embedded.start()
        os.environ["DATABASE_URL"] = url
        settings = load_settings(database_url=url)
    shared_metrics = _multiprocess_metrics(workers)
    try:
        db.upgrade(settings)
        if embedded is not None and settings.load_demo_data:
            asyncio.run(_load_demo(settings))
        bind_host, bind_port = host or settings.host, port or settings.port
        console.print(f"GraphQL at http://{bind_host}:{bind_port}/graphql")
        uvicorn.run(
            # Configures logging, then builds the app: in each worker process too.
            "graphql_api.app:create_logged_app",
            factory=True,
            log_config=None,  # uvicorn's loggers propagate to our structured handler
            host=bind_host,
            port=bind_port,
            workers=workers,
            log_level="info",
            access_log=False,
            # Bounds the request head (size, time) that stock httptools leaves unbounded.
            http=HTTP_PROTOCOL,
        )
    finally:
        if shared_metrics is not None:
            shared_metrics()
        if embedded is not None:
            embedded.stop()
            console.print("embedded PostgreSQL stopped")


def _multiprocess_metrics(workers: int) -> Any:
    """With several workers, have them share metric values in PROMETHEUS_MULTIPROC_DIR.

    The directory must be set before the workers import prometheus_client and must not hold
    files of an earlier run (their counts would be added in): a given directory is emptied
    of metric files, and without one a temporary directory is made and removed at exit.
    Returns the clean-up to run at exit, or None with one worker.
    """
    import shutil
    import tempfile
    from pathlib import Path

    from core.metrics import MULTIPROC_ENV

    if workers <= 1:
        return None
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return lambda: None
    path = Path(tempfile.mkdtemp(prefix="market-graphql-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    return lambda: shutil.rmtree(path, ignore_errors=True)


keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


async def _with_engine(settings: Settings, work: Any) -> Any:
    from core.db import create_engine

    engine = create_engine(settings, pool=False)
    try:
        return await work(engine)
    finally:
        await engine.dispose()


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
    scope: Annotated[
        list[str] | None, typer.Option(help="read, ingest or admin; repeat for several.")
    ] = None,
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from graphql_api.auth import Scope, create_key

    scope = scope or ["read"]
    try:
        scopes = [Scope(s) for s in scope]
    except ValueError:
        console.print(f"[red]error:[/] scopes are {', '.join(s.value for s in Scope)}")
        raise typer.Exit(2) from None
    settings = _require_database(_settings())
    created = asyncio.run(_with_engine(settings, lambda e: create_key(e, name, scopes)))
    console.print(f"key {created.id} ({created.prefix}), scopes {', '.join(scope)}:")
    print(created.token)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (never their secrets)."""
    from rich.table import Table

    from graphql_api.auth import list_keys

    settings = _require_database(_settings())
    keys = asyncio.run(_with_engine(settings, list_keys))
    table = Table("id", "prefix", "name", "scopes", "created", "revoked", "last used")
    for k in keys:
        table.add_row(
            str(k.id),
            k.prefix,
            k.name,
            ",".join(k.scopes),
            str(k.created_at),
            str(k.revoked_at or ""),
            str(k.last_used_at or ""),
        )
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(ident: Annotated[str, typer.Argument(help="Key id or prefix.")]) -> None:
    """Revoke a key; requests with it fail from then on."""
    from graphql_api.auth import revoke_key

    settings = _require_database(_settings())
    if not asyncio.run(_with_engine(settings, lambda e: revoke_key(e, ident))):
        console.print(f"[red]error:[/] no live key {ident!r}")
        raise typer.Exit(1)
    console.print(f"revoked {ident}")


app.command()(worker)
app.command()(ingest)
app.command()(actions)
app.command()(export)


def main() -> None:
    """Entry point of the console script."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        app()
    except ConfigError as exc:
        console.print(f"[red]error:[/] {exc}")
        sys.exit(2)
