"""Service settings, read from environment variables and an optional `.env` file."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

from graphql_api.errors import ConfigError


class Settings(BaseSettings):
    """Everything the service, the workers and the CLI can be configured with."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL; unset means an embedded server is started from a wheel.",
    )
    redis_url: str | None = Field(default=None, description="Redis URL; unset means in-memory.")
    data_dir: Path | None = Field(
        default=None, description="Where the embedded PostgreSQL keeps its data."
    )

    pool_size: int = Field(default=10, ge=1, le=1000)
    max_overflow: int = Field(default=20, ge=0, le=1000)
    pool_timeout: float = Field(default=10.0, gt=0)
    pool_pre_ping: bool = True
    statement_timeout_ms: int = Field(default=15_000, ge=0)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    max_page_size_symbols: int = Field(default=500, ge=1)
    max_page_size_bars: int = Field(default=10_000, ge=1)
    default_page_size: int = Field(default=100, ge=1)
    max_series_points: int = Field(default=200_000, ge=1)
    max_intraday_range_days: int = Field(
        default=3_660, ge=1, description="Longest time range one request may span below D1."
    )

    allow_anonymous_ingest: bool = Field(
        default=False, description="Allow the ingest mutations without an API key."
    )
    load_demo_data: bool = Field(default=True, description="Load demo data on first embedded run.")

    @field_validator("database_url", "redis_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            url = make_url(value)
        except Exception as exc:
            raise ValueError(f"not a database URL: {exc}") from None
        if url.get_backend_name() not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @cached_property
    def sqlalchemy_url(self) -> URL:
        """The database URL with the asyncpg driver, for SQLAlchemy."""
        if self.database_url is None:
            raise ConfigError("DATABASE_URL is not set and no embedded server was started")
        return make_url(self.database_url).set(drivername="postgresql+asyncpg")

    @property
    def asyncpg_dsn(self) -> str:
        """The database URL in the form asyncpg.connect() takes."""
        return self.sqlalchemy_url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one message that names each variable."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "_".join(str(part) for part in err["loc"]).upper()
            lines.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(lines)) from None
