"""Structured logs: one JSON object per line in production, key=value lines in a terminal.

LOG_FORMAT=json|console (default: console when stderr is a terminal, else JSON). Every record
logged while a GraphQL request is served carries its request id (the X-Request-ID the client
sent, or one generated and echoed back). Each request is logged once, by
`market_graphql.request`: at INFO, or at WARNING when it took SLOW_REQUEST_MS or longer.
Statements slower than SLOW_SQL_MS are logged at WARNING by `market_graphql.sql`, with their
plan (plain EXPLAIN, never ANALYZE: it would run the statement again) when SLOW_SQL_EXPLAIN.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from core import reqstats
from core.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

REQUEST_LOG = logging.getLogger("market_graphql.request")
SQL_LOG = logging.getLogger("market_graphql.sql")
#: Statement text kept in slow-SQL lines.
MAX_STATEMENT_CHARS = 1000
_EXPLAINABLE = frozenset({"SELECT", "WITH", "INSERT", "UPDATE", "DELETE"})

# Attributes every LogRecord has; anything else on a record came from `extra=` and is output.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName", "color_message"}  # uvicorn: ANSI copy of msg
)


class RequestIdFilter(logging.Filter):
    """Adds the current request's id to records logged while a request is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record; only annotates it."""
        if not hasattr(record, "request_id"):
            stats = reqstats.CURRENT.get()
            if stats is not None and stats.request_id:
                record.request_id = stats.request_id
        return True


def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    # In the order they were given (a readable line starts with the request id).
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and k[:1] != "_"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        out: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra that JSON cannot encode is shown, not lost with the line.
        return orjson.dumps(out, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class ConsoleFormatter(logging.Formatter):
    """`HH:MM:SS.mmm LEVEL logger: msg key=value …`, for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a readable line (plus a traceback, if any)."""
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        pairs = " ".join(f"{k}={_console_value(v)}" for k, v in _extras(record).items())
        line = f"{when} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if pairs:
            line = f"{line}  {pairs}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _console_value(value: object) -> str:
    text = str(value)
    return repr(text) if (" " in text or not text) else text


def resolve_format(settings: Settings, stream: TextIO | None = None) -> str:
    """ "json" or "console": LOG_FORMAT, or console on a terminal and JSON elsewhere."""
    if settings.log_format != "auto":
        return settings.log_format
    target = stream if stream is not None else sys.stderr
    isatty = getattr(target, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


def configure_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one structured handler; returns it."""
    fmt = resolve_format(settings, stream)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Alembic logs every migration step at INFO on each start; uvicorn's access log is off
    # (our request line replaces it), its other loggers propagate here.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return handler


def request_fields(stats: reqstats.RequestStats, seconds: float, method: str) -> dict[str, Any]:
    """The fields of a request's log line."""
    info = stats.info
    operation = getattr(info, "operation", None) if info is not None else None
    principal = getattr(info, "principal", None) if info is not None else None
    key_id = getattr(principal, "key_id", None)
    return {
        "request_id": stats.request_id,
        "method": method,
        "operation": operation.name.value if operation is not None and operation.name else None,
        "operation_type": operation.operation.value if operation is not None else None,
        "outcome": stats.outcome,
        "status": stats.status,
        "duration_ms": round(seconds * 1000, 2),
        "sql_count": stats.sql_count,
        "sql_ms": round(stats.sql_seconds * 1000, 2),
        "cache_hits": stats.cache_hits,
        "cache_misses": stats.cache_misses,
        "cache_errors": stats.cache_errors,
        "cost": getattr(info, "cost", None),
        "principal": f"key:{key_id}" if key_id is not None else "anonymous",
    }


def log_request(stats: reqstats.RequestStats, seconds: float, method: str, slow_ms: float) -> None:
    """Log one finished request: INFO, or WARNING when it took `slow_ms` or more."""
    slow = seconds * 1000 >= slow_ms
    level = logging.WARNING if slow else logging.INFO
    if REQUEST_LOG.isEnabledFor(level):
        REQUEST_LOG.log(
            level,
            "slow request" if slow else "request",
            extra=request_fields(stats, seconds, method),
        )


def log_slow_sql(statement: str, seconds: float) -> None:
    """Log a slow statement (its text without parameter values: they are never inlined)."""
    SQL_LOG.warning(
        "slow SQL",
        extra={
            "duration_ms": round(seconds * 1000, 2),
            "statement": " ".join(statement.split())[:MAX_STATEMENT_CHARS],
        },
    )


async def log_plans(
    engine: AsyncEngine, stats: reqstats.RequestStats, timeout_ms: int = 5000
) -> None:
    """Log the EXPLAIN plan of each slow statement of a finished request."""
    token = reqstats.INTERNAL.set(True)
    try:
        await _log_plans(engine, stats, timeout_ms)
    finally:
        reqstats.INTERNAL.reset(token)


async def _log_plans(engine: AsyncEngine, stats: reqstats.RequestStats, timeout_ms: int) -> None:
    for statement, parameters, seconds in stats.slow_statements:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        if verb not in _EXPLAINABLE:
            continue
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
                result = await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
                plan = "\n".join(str(r[0]) for r in result.all())
                await conn.rollback()
        except Exception as exc:
            plan = f"(no plan: {type(exc).__name__}: {exc})"
        SQL_LOG.warning(
            "slow SQL plan",
            extra={
                "request_id": stats.request_id,
                "duration_ms": round(seconds * 1000, 2),
                "statement": " ".join(statement.split())[:MAX_STATEMENT_CHARS],
                "plan": plan,
            },
        )
