"""Whole-response caching and ETags, keyed on the data version of the database.

The data version changes with every committed write to bars (per-series counters bumped
under a row lock, so their sum grows with each commit) or to symbols. A response computed
after reading version V can only be as new or newer than V, so serving it to a later reader
that sees V again is never stale; the next commit moves V on and the old entries are dead.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import retry_dropped

# Corporate actions: an action that adjusts stored bars also moves their series' version
# (workers.actions), but one that adjusts none (before the first bar, or of a symbol without
# bars) still changes `corporateActions`; and adjusted answers without `asOf` apply the
# actions known today, so the UTC date is part of the version too.
_VERSION_SQL = text(
    "SELECT (SELECT coalesce(sum(version), 0) FROM bar_series)::text || '.' ||"
    " (SELECT count(*) FROM symbols)::text || '.' ||"
    " (SELECT coalesce(extract(epoch FROM max(updated_at)), 0) FROM symbols)::text || '.' ||"
    " (SELECT count(*)::text || ':' || coalesce(extract(epoch FROM max(updated_at)), 0)::text"
    "  FROM corporate_actions) || '.' || (now() AT TIME ZONE 'UTC')::date::text"
)


async def data_version(engine: AsyncEngine) -> str:
    """A string that changes whenever committed market data changes."""

    async def read() -> str:
        async with engine.connect() as conn:
            return str((await conn.execute(_VERSION_SQL)).scalar_one())

    return await retry_dropped(read)


def etag(
    query: str,
    operation_name: str | None,
    variables: dict[str, Any] | None,
    version: str,
    media_type: str,
) -> str:
    """A weak validator for one operation at one data version."""
    digest = hashlib.sha256()
    for part in (
        query.encode(),
        (operation_name or "").encode(),
        orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS),
        version.encode(),
        media_type.encode(),
    ):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return f'W/"{digest.hexdigest()[:32]}"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an If-None-Match header names `tag` (or `*`)."""
    if not if_none_match:
        return False
    candidates = [c.strip() for c in if_none_match.split(",")]
    bare = tag.removeprefix("W/")
    return "*" in candidates or any(c.removeprefix("W/") == bare for c in candidates)
