"""The async engine and the migration commands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.settings import Settings

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def client_timeout(settings: Settings) -> float | None:
    """The driver's deadline for one call: a little above the server's statement timeout.

    Beyond the statement timeout the server has given up already, so a call still waiting
    means the server is frozen or the network is gone; holding the request longer (it was
    30 s) only piles up waiting requests.
    """
    if settings.db_client_timeout_seconds is not None:
        return settings.db_client_timeout_seconds
    if settings.statement_timeout_ms == 0:
        return None
    return settings.statement_timeout_ms / 1000 + 2.0


def create_engine(settings: Settings, *, pool: bool = True, url: URL | None = None) -> AsyncEngine:
    """An asyncpg engine with the pool and statement timeout from settings.

    `url` (a replica's, from READ_DATABASE_URLS) replaces DATABASE_URL.
    """
    url = url or settings.sqlalchemy_url
    connect_args = {
        "server_settings": {
            "statement_timeout": str(settings.statement_timeout_ms),
            "application_name": "market-graphql",
            "timezone": "UTC",
            "plan_cache_mode": settings.plan_cache_mode,
        },
        # asyncpg's prepared-statement cache breaks behind PgBouncer in transaction mode;
        # we keep it (much faster) and document the PgBouncer setting instead.
        "command_timeout": client_timeout(settings),
        "timeout": settings.db_connect_timeout_seconds,
    }
    if not pool:
        return create_async_engine(url, connect_args=connect_args, poolclass=_null_pool())
    return create_async_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout,
        pool_pre_ping=settings.pool_pre_ping,
        connect_args=connect_args,
    )


async def retry_dropped(call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, once more when its pooled connection turned out to be dead.

    Pooled connections are not pinged before use (POOL_PRE_PING is off by default: a round
    trip per checkout, ~0.1 ms of a small request). A connection the server dropped (a
    restart, an idle timeout) fails on its first statement instead; SQLAlchemy then
    invalidates the pool's connections of that age, so the second call gets a fresh one.
    Only for calls that may run twice: reads, or a transaction that failed before commit.
    """
    try:
        return await call()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return await call()


def _null_pool() -> type:
    from sqlalchemy.pool import NullPool

    return NullPool


def alembic_config(settings: Settings) -> Config:
    """An Alembic config pointing at `migrations/` and the configured database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option(
        "sqlalchemy.url",
        settings.sqlalchemy_url.render_as_string(hide_password=False).replace("%", "%%"),
    )
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Migrate the database up to `revision`."""
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str = "base") -> None:
    """Migrate the database down to `revision`."""
    command.downgrade(alembic_config(settings), revision)


def head_revision(settings: Settings) -> str | None:
    """The newest revision in `migrations/`."""
    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()


def _current_revision(sync_conn: Connection) -> str | None:
    return MigrationContext.configure(sync_conn).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current_revision)
