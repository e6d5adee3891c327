"""Bulk upsert of bars: COPY into a staging table, then one INSERT … ON CONFLICT per batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import numpy as np
import pandas as pd

BAR_COLUMNS = ("symbol_id", "timeframe", "ts", "open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class BarChange:
    """One committed change: a symbol/timeframe and the time range whose bars were written."""

    symbol_id: int
    timeframe: str
    first_ts: datetime
    last_ts: datetime
    rows: int


_UPSERT = """
WITH written AS (
    INSERT INTO bars AS b (symbol_id, timeframe, ts, open, high, low, close, volume)
    SELECT symbol_id, timeframe, ts, open, high, low, close, volume FROM _stage_bars
    ON CONFLICT (symbol_id, timeframe, ts) DO UPDATE
        SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
            close = EXCLUDED.close, volume = EXCLUDED.volume
        -- Unchanged rows are not rewritten: a re-run creates no dead tuples and no events.
        WHERE (b.open, b.high, b.low, b.close, b.volume)
              IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low,
                                EXCLUDED.close, EXCLUDED.volume)
    RETURNING symbol_id, timeframe, ts
)
INSERT INTO bar_changes (symbol_id, timeframe, first_ts, last_ts, rows, source)
SELECT symbol_id, timeframe, min(ts), max(ts), count(*), $1 FROM written
GROUP BY symbol_id, timeframe
RETURNING symbol_id, timeframe, first_ts, last_ts, rows
"""


def frame_records(frame: pd.DataFrame) -> list[tuple[object, ...]]:
    """Rows of a frame with the BAR_COLUMNS, as tuples for COPY (times as aware datetimes)."""
    ts = pd.DatetimeIndex(frame["ts"])
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    cols: list[Sequence[object]] = [
        frame["symbol_id"].astype(np.int64).tolist(),
        frame["timeframe"].astype(str).tolist(),
        ts.to_pydatetime().tolist(),
        *(frame[c].astype(np.float64).tolist() for c in ("open", "high", "low", "close", "volume")),
    ]
    return list(zip(*cols, strict=True))


async def upsert_bars(
    conn: asyncpg.Connection, records: Sequence[tuple[object, ...]], *, source: str = ""
) -> list[BarChange]:
    """Write one batch atomically; revised bars overwrite; returns what actually changed."""
    if not records:
        return []
    times = [r[2] for r in records]
    async with conn.transaction():
        await conn.execute("SELECT ensure_bar_partitions($1, $2)", min(times), max(times))  # type: ignore[type-var]
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _stage_bars "
            "(LIKE bars INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        await conn.copy_records_to_table("_stage_bars", records=records, columns=BAR_COLUMNS)
        rows = await conn.fetch(_UPSERT, source)
    return [BarChange(**dict(r)) for r in rows]
