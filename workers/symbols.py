"""Creating and updating symbols from provider listings and files, never duplicating them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class SymbolInfo:
    """What a source knows about a symbol; empty strings mean "unknown, keep what is stored"."""

    ticker: str
    name: str = ""
    exchange: str = ""
    asset_class: str = ""
    currency: str = ""
    timezone: str = ""


async def upsert_symbols(conn: asyncpg.Connection, infos: Iterable[SymbolInfo]) -> dict[str, int]:
    """Create missing symbols and fill in what is known; returns ticker → id for all of them."""
    by_ticker: dict[str, SymbolInfo] = {}
    for info in infos:
        ticker = info.ticker.strip().upper()
        if not ticker:
            raise ValueError("a symbol needs a non-empty ticker")
        by_ticker[ticker] = SymbolInfo(
            ticker, info.name, info.exchange, info.asset_class, info.currency, info.timezone
        )
    if not by_ticker:
        return {}
    rows = list(by_ticker.values())
    # Sorted so concurrent writers lock rows in the same order and cannot deadlock.
    rows.sort(key=lambda r: r.ticker)
    records = await conn.fetch(
        """
        WITH t AS (
            SELECT u.ticker, old.id AS old_id,
                   coalesce(nullif(u.name, ''), old.name, '') AS name,
                   coalesce(nullif(u.exchange, ''), old.exchange, '') AS exchange,
                   coalesce(nullif(u.asset_class, ''), old.asset_class, 'equity') AS asset_class,
                   coalesce(nullif(u.currency, ''), old.currency, 'USD') AS currency,
                   coalesce(nullif(u.timezone, ''), old.timezone, 'UTC') AS timezone
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                 AS u(ticker, name, exchange, asset_class, currency, timezone)
            LEFT JOIN symbols old ON old.ticker = u.ticker
        )
        INSERT INTO symbols AS s (ticker, name, exchange, asset_class, currency, timezone)
        SELECT ticker, name, exchange, asset_class, currency, timezone FROM t
        ON CONFLICT (ticker) DO UPDATE SET
            name = EXCLUDED.name, exchange = EXCLUDED.exchange,
            asset_class = EXCLUDED.asset_class, currency = EXCLUDED.currency,
            timezone = EXCLUDED.timezone,
            updated_at = CASE
                WHEN (s.name, s.exchange, s.asset_class, s.currency, s.timezone)
                     IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.exchange, EXCLUDED.asset_class,
                                       EXCLUDED.currency, EXCLUDED.timezone)
                THEN now() ELSE s.updated_at END
        RETURNING id, ticker
        """,
        [r.ticker for r in rows],
        [r.name for r in rows],
        [r.exchange for r in rows],
        [r.asset_class for r in rows],
        [r.currency for r in rows],
        [r.timezone for r in rows],
    )
    return {r["ticker"]: r["id"] for r in records}
