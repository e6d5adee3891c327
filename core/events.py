"""Bar change events: recorded and announced inside the writing transaction, read after commit.

The one internal event API for everything that reacts to new or revised bars (the cache's
invalidation, live updates). A writer calls `record_changes` in the transaction that wrote
the bars: it inserts one `bar_changes` row per symbol/timeframe and sends the same facts as a
`pg_notify` payload, which PostgreSQL delivers only if (and when) that transaction commits.

A series' data version is the id of its newest `bar_changes` row. Writers hold a per-series
advisory lock while they write (see workers.upsert), so for one series these ids grow in
commit order and a version never goes back or repeats for different data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from core import metrics

#: The NOTIFY channel carrying bar change events.
CHANNEL = "bar_changes"
#: Version of the JSON payload; bumped on any incompatible change of its fields.
PAYLOAD_VERSION = 1


@dataclass(frozen=True)
class BarChange:
    """What one symbol/timeframe got in one committed write; `id` is its new data version."""

    symbol_id: int
    timeframe: str
    first_ts: datetime
    last_ts: datetime
    rows: int
    id: int = 0
    source: str = ""

    def to_payload(self) -> str:
        """The NOTIFY payload: small versioned JSON (well under PostgreSQL's 8000-byte cap)."""
        return json.dumps(
            {
                "v": PAYLOAD_VERSION,
                "id": self.id,
                "symbol_id": self.symbol_id,
                "timeframe": self.timeframe,
                "first_ts": self.first_ts.astimezone(UTC).isoformat(),
                "last_ts": self.last_ts.astimezone(UTC).isoformat(),
                "rows": self.rows,
                "source": self.source,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_payload(cls, payload: str) -> BarChange:
        """Parse a NOTIFY payload; raises ValueError for a payload version it does not know."""
        data: dict[str, Any] = json.loads(payload)
        if data.get("v") != PAYLOAD_VERSION:
            raise ValueError(f"unknown bar change payload version: {data.get('v')!r}")
        return cls(
            symbol_id=int(data["symbol_id"]),
            timeframe=str(data["timeframe"]),
            first_ts=datetime.fromisoformat(data["first_ts"]),
            last_ts=datetime.fromisoformat(data["last_ts"]),
            rows=int(data["rows"]),
            id=int(data["id"]),
            source=str(data.get("source", "")),
        )


_RECORD = """
INSERT INTO bar_changes (symbol_id, timeframe, first_ts, last_ts, rows, source)
SELECT * FROM unnest($1::int[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::int[],
                     $6::text[])
RETURNING id, symbol_id, timeframe, first_ts, last_ts, rows, source
"""


async def record_changes(
    conn: asyncpg.Connection, changes: Sequence[BarChange], *, source: str = ""
) -> list[BarChange]:
    """Insert `bar_changes` rows and NOTIFY them; call inside the transaction that wrote bars."""
    if not conn.is_in_transaction():
        raise RuntimeError("record_changes must run inside the transaction that wrote the bars")
    changes = [c for c in changes if c.rows > 0]
    if not changes:
        return []
    rows = await conn.fetch(
        _RECORD,
        [c.symbol_id for c in changes],
        [c.timeframe for c in changes],
        [c.first_ts for c in changes],
        [c.last_ts for c in changes],
        [c.rows for c in changes],
        [source] * len(changes),
    )
    recorded = [BarChange(**dict(r)) for r in rows]
    await conn.execute(
        "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
        CHANNEL,
        [c.to_payload() for c in recorded],
    )
    # Counted here, the one place every writer records its changes (inside the transaction,
    # so a batch whose commit then fails is over-counted: rare, and only a counter).
    metrics.ingest_written(recorded)
    return recorded


async def data_version(conn: asyncpg.Connection, symbol_id: int, timeframe: str) -> int:
    """The current data version of one series (0 when nothing was ever written)."""
    versions = await data_versions(conn, [(symbol_id, timeframe)])
    return versions[(symbol_id, timeframe)]


async def data_versions(
    conn: asyncpg.Connection, keys: Iterable[tuple[int, str]]
) -> dict[tuple[int, str], int]:
    """Current data versions of many series in one query; 0 for those never written."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = await conn.fetch(
        """
        SELECT k.symbol_id, k.timeframe,
               coalesce((SELECT max(c.id) FROM bar_changes c
                         WHERE c.symbol_id = k.symbol_id AND c.timeframe = k.timeframe), 0) AS v
        FROM unnest($1::int[], $2::text[]) AS k(symbol_id, timeframe)
        """,
        [k[0] for k in wanted],
        [k[1] for k in wanted],
    )
    return {(r["symbol_id"], r["timeframe"]): r["v"] for r in rows}


async def changes_since(
    conn: asyncpg.Connection, after_id: int, *, limit: int = 1000
) -> list[BarChange]:
    """Changes with id > after_id, oldest first: catch-up for a listener that reconnected."""
    rows = await conn.fetch(
        "SELECT id, symbol_id, timeframe, first_ts, last_ts, rows, source FROM bar_changes "
        "WHERE id > $1 ORDER BY id LIMIT $2",
        after_id,
        limit,
    )
    return [BarChange(**dict(r)) for r in rows]


async def add_listener(
    conn: asyncpg.Connection, callback: Callable[[BarChange], object]
) -> Callable[[], Any]:
    """Call `callback` with every committed change; returns a coroutine function that stops it.

    `conn` must be a dedicated connection (not one borrowed from a pool for queries): LISTEN
    lasts as long as the connection. Payloads of an unknown version are skipped.
    """

    def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            change = BarChange.from_payload(payload)
        except (ValueError, KeyError, TypeError):
            return
        callback(change)

    await conn.add_listener(CHANNEL, on_notify)

    async def remove() -> None:
        await conn.remove_listener(CHANNEL, on_notify)

    return remove


@contextlib.asynccontextmanager
async def listen(conn: asyncpg.Connection) -> AsyncIterator[asyncio.Queue[BarChange]]:
    """Listen on `conn` for the duration of the block; changes arrive on the yielded queue."""
    queue: asyncio.Queue[BarChange] = asyncio.Queue()
    remove = await add_listener(conn, queue.put_nowait)
    try:
        yield queue
    finally:
        await remove()
