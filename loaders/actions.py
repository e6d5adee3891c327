"""Corporate actions of many symbols in date ranges: one statement per batch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncEngine

from loaders.rows import ActionRow
from loaders.sql import fetch

#: Stand-ins for an open date range end.
MIN_DATE = date(1800, 1, 1)
MAX_DATE = date(2500, 1, 1)


@dataclass(frozen=True, slots=True)
class ActionsKey:
    """One symbol's actions with an ex-date in [lo, hi)."""

    symbol_id: int
    lo: date
    hi: date


class CorporateActionsLoader(DataLoader[ActionsKey, list[ActionRow]]):
    """Actions for many symbols, oldest ex-date first."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self.engine = engine

    async def batch_load_fn(self, keys: list[ActionsKey]) -> list[list[ActionRow]]:
        rows = await fetch(
            self.engine,
            """
            SELECT k.idx, a.kind, a.ex_date, a.value, a.currency, a.source, a.created_at,
                   a.updated_at
            FROM unnest($1::int[], $2::date[], $3::date[]) WITH ORDINALITY AS k(sid, lo, hi, idx)
            JOIN corporate_actions a
              ON a.symbol_id = k.sid AND a.ex_date >= k.lo AND a.ex_date < k.hi
            ORDER BY k.idx, a.ex_date, a.kind DESC
            """,
            [k.symbol_id for k in keys],
            [k.lo for k in keys],
            [k.hi for k in keys],
        )
        out: list[list[ActionRow]] = [[] for _ in keys]
        for r in rows:
            out[r[0] - 1].append(ActionRow(*r[1:]))
        return out
