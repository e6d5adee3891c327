"""Symbol lookups: by ticker, by id, and filtered keyset pages, with their stored series."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncEngine

from core.intervals import Interval
from loaders.rows import StoredSeries, SymbolRow
from loaders.sql import fetch

_SELECT = """
SELECT s.id, s.ticker, s.name, s.exchange, s.asset_class, s.currency, s.timezone, s.active,
       s.created_at, s.updated_at, c.tfs, c.firsts, c.lasts, c.versions, s.calendar
FROM symbols s
LEFT JOIN LATERAL (
    SELECT array_agg(timeframe) AS tfs, array_agg(first_ts) AS firsts,
           array_agg(last_ts) AS lasts, array_agg(version) AS versions
    FROM bar_series WHERE symbol_id = s.id
) c ON true
"""


def _symbol(row: Sequence[Any]) -> SymbolRow:
    tfs, firsts, lasts, versions = row[10:14]
    series = tuple(
        sorted(
            (
                StoredSeries(Interval(tf), f, la, v)
                for tf, f, la, v in zip(
                    tfs or (), firsts or (), lasts or (), versions or (), strict=True
                )
            ),
            key=lambda s: s.timeframe.seconds,
        )
    )
    return SymbolRow(
        id=row[0],
        ticker=row[1],
        name=row[2],
        exchange=row[3],
        asset_class=row[4],
        currency=row[5],
        timezone=row[6],
        active=row[7],
        created_at=row[8],
        updated_at=row[9],
        series=series,
        calendar=row[14],
    )


class SymbolByTickerLoader(DataLoader[str, SymbolRow | None]):
    """Symbols by ticker (case-insensitive); None for an unknown ticker."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self.engine = engine

    async def batch_load_fn(self, keys: list[str]) -> list[SymbolRow | None]:
        rows = await fetch(self.engine, _SELECT + " WHERE s.ticker = ANY($1::text[])", list(keys))
        found = {r[1]: _symbol(r) for r in rows}
        return [found.get(k) for k in keys]


class SymbolByIdLoader(DataLoader[int, SymbolRow | None]):
    """Symbols by id; None for an unknown id."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self.engine = engine

    async def batch_load_fn(self, keys: list[int]) -> list[SymbolRow | None]:
        rows = await fetch(self.engine, _SELECT + " WHERE s.id = ANY($1::int[])", list(keys))
        found = {r[0]: _symbol(r) for r in rows}
        return [found.get(k) for k in keys]


@dataclass(frozen=True)
class SymbolFilterArgs:
    """Normalised symbol filter; None means "no condition"."""

    search: str | None = None
    exchange: str | None = None
    asset_class: str | None = None
    active: bool | None = None
    tickers: tuple[str, ...] | None = None


def _where(f: SymbolFilterArgs, args: list[Any]) -> list[str]:
    conds: list[str] = []

    def param(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if f.search:
        prefix = f.search.upper().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        words = [w for w in "".join(c if c.isalnum() else " " for c in f.search).split() if w]
        name_cond = "false"
        if words:
            query = " & ".join(f"{w}:*" for w in words)
            name_cond = f"to_tsvector('simple', s.name) @@ to_tsquery('simple', {param(query)})"
        conds.append(f"(s.ticker LIKE {param(prefix + '%')} OR {name_cond})")
    if f.exchange is not None:
        conds.append(f"upper(s.exchange) = upper({param(f.exchange)})")
    if f.asset_class is not None:
        conds.append(f"lower(s.asset_class) = lower({param(f.asset_class)})")
    if f.active is not None:
        conds.append(f"s.active = {param(f.active)}")
    if f.tickers is not None:
        conds.append(f"s.ticker = ANY({param(list(f.tickers))}::text[])")
    return conds


async def symbols_page(
    engine: AsyncEngine,
    f: SymbolFilterArgs,
    *,
    limit: int,
    after: str | None = None,
    before: str | None = None,
    descending: bool = False,
) -> tuple[list[SymbolRow], bool]:
    """Up to `limit` symbols by ticker strictly between the cursors, walking down if
    `descending`; and whether more lay beyond."""
    args: list[Any] = []
    conds = _where(f, args)
    if after is not None:
        args.append(after)
        conds.append(f"s.ticker > ${len(args)}")
    if before is not None:
        args.append(before)
        conds.append(f"s.ticker < ${len(args)}")
    where = " WHERE " + " AND ".join(conds) if conds else ""
    args.append(limit + 1)
    order = "DESC" if descending else "ASC"
    rows = await fetch(
        engine, f"{_SELECT}{where} ORDER BY s.ticker {order} LIMIT ${len(args)}", *args
    )
    return [_symbol(r) for r in rows[:limit]], len(rows) > limit


async def symbols_count(engine: AsyncEngine, f: SymbolFilterArgs) -> int:
    """How many symbols match the filter."""
    args: list[Any] = []
    conds = _where(f, args)
    where = " WHERE " + " AND ".join(conds) if conds else ""
    rows = await fetch(engine, f"SELECT count(*) FROM symbols s{where}", *args)
    return int(rows[0][0])
