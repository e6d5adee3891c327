"""Formatting GraphQL errors for clients: expected ones keep their code, the rest are masked."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

from core.errors import ApiError

log = logging.getLogger("graphql_api.errors")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or any(current is s for s in seen) or len(seen) > 20:
            continue
        seen.append(current)
        stack += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return seen


#: SQLSTATEs for text PostgreSQL cannot store: 22021 (NUL in text), 22P05 (NUL escape in jsonb).
_UNSTORABLE_TEXT = frozenset({"22021", "22P05"})


def classify(exc: BaseException) -> tuple[str, str] | None:
    """A (code, message) for infrastructure failures a client can act on; None otherwise."""
    import asyncpg
    import sqlalchemy.exc

    for e in _chain(exc):
        if isinstance(e, asyncpg.exceptions.QueryCanceledError):
            return "QUERY_TIMEOUT", "the query ran longer than the statement timeout; narrow it"
        if getattr(e, "sqlstate", None) in _UNSTORABLE_TEXT:
            # Text PostgreSQL cannot hold (a NUL character) came in a client's argument: a
            # client mistake, not a server fault, whichever driver (asyncpg, or psycopg under
            # the job queue) reported it.
            return "BAD_USER_INPUT", "text arguments must not contain NUL (\\u0000) characters"
        if isinstance(
            e,
            OSError
            | asyncpg.exceptions.ConnectionDoesNotExistError
            | asyncpg.exceptions.CannotConnectNowError
            | asyncpg.exceptions.TooManyConnectionsError
            | sqlalchemy.exc.TimeoutError,
        ):
            return "SERVICE_UNAVAILABLE", "the database is unavailable; retry shortly"
    return None


def format_error(error: GraphQLError, request_id: str) -> dict[str, Any]:
    """One error as JSON; unexpected exceptions are logged once and shown without details."""
    original = error.original_error
    if original is None or isinstance(original, ApiError | GraphQLError):
        formatted = dict(error.formatted)
        if original is None and "extensions" not in formatted:
            formatted["extensions"] = {"code": "GRAPHQL_VALIDATION_FAILED"}
        return formatted
    known = classify(original)
    if known is not None:
        code, message = known
        log.warning("%s at %s (request %s): %s", code, error.path, request_id, original)
    else:
        code, message = "INTERNAL_SERVER_ERROR", "internal server error"
        log.error("unexpected error at %s (request %s)", error.path, request_id, exc_info=original)
    masked = GraphQLError(
        message,
        nodes=error.nodes,
        path=error.path,
        extensions={"code": code, "requestId": request_id},
    )
    return dict(masked.formatted)
