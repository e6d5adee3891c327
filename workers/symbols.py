"""Creating and updating symbols from provider listings and files, never duplicating them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from core.calendars import default_calendar, normalize_calendar, sync_sessions


@dataclass(frozen=True)
class SymbolInfo:
    """What a source knows about a symbol; empty strings mean "unknown, keep what is stored"."""

    ticker: str
    name: str = ""
    exchange: str = ""
    asset_class: str = ""
    currency: str = ""
    timezone: str = ""
    calendar: str = ""  # exchange calendar code; "" derives one from exchange/asset class


async def upsert_symbols(conn: asyncpg.Connection, infos: Iterable[SymbolInfo]) -> dict[str, int]:
    """Create missing symbols and fill in what is known; returns ticker → id for all of them."""
    by_ticker: dict[str, SymbolInfo] = {}
    for info in infos:
        ticker = info.ticker.strip().upper()
        if not ticker:
            raise ValueError("a symbol needs a non-empty ticker")
        calendar = info.calendar and normalize_calendar(info.calendar)
        if not calendar and info.asset_class:
            # A source that says what it lists (providers, files with an asset_class column)
            # gets that asset class's calendar, refined by the exchange. An exchange name
            # alone (free text in a file) changes nothing: the symbol keeps all its hours.
            calendar = default_calendar(info.asset_class, info.exchange)
        by_ticker[ticker] = SymbolInfo(
            ticker,
            info.name,
            info.exchange,
            info.asset_class,
            info.currency,
            info.timezone,
            calendar,
        )
    if not by_ticker:
        return {}
    rows = list(by_ticker.values())
    # Sorted so concurrent writers lock rows in the same order and cannot deadlock.
    rows.sort(key=lambda r: r.ticker)
    records = await conn.fetch(
        """
        WITH t AS (
            SELECT u.ticker, old.id AS old_id, old.calendar AS old_calendar,
                   coalesce(nullif(u.name, ''), old.name, '') AS name,
                   coalesce(nullif(u.exchange, ''), old.exchange, '') AS exchange,
                   coalesce(nullif(u.asset_class, ''), old.asset_class, 'equity') AS asset_class,
                   coalesce(nullif(u.currency, ''), old.currency, 'USD') AS currency,
                   coalesce(nullif(u.timezone, ''), old.timezone, 'UTC') AS timezone,
                   -- A source that says nothing about the market filters nothing: 24/7.
                   coalesce(nullif(u.calendar, ''), old.calendar, '24/7') AS calendar
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                        $7::text[])
                 AS u(ticker, name, exchange, asset_class, currency, timezone, calendar)
            LEFT JOIN symbols old ON old.ticker = u.ticker
        ), written AS (
        INSERT INTO symbols AS s (ticker, name, exchange, asset_class, currency, timezone,
                                  calendar)
        SELECT ticker, name, exchange, asset_class, currency, timezone, calendar FROM t
        ON CONFLICT (ticker) DO UPDATE SET
            name = EXCLUDED.name, exchange = EXCLUDED.exchange,
            asset_class = EXCLUDED.asset_class, currency = EXCLUDED.currency,
            timezone = EXCLUDED.timezone, calendar = EXCLUDED.calendar,
            updated_at = CASE
                WHEN (s.name, s.exchange, s.asset_class, s.currency, s.timezone, s.calendar)
                     IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.exchange, EXCLUDED.asset_class,
                                       EXCLUDED.currency, EXCLUDED.timezone, EXCLUDED.calendar)
                THEN now() ELSE s.updated_at END
        RETURNING id, ticker, calendar
        )
        SELECT w.id, w.ticker, w.calendar,
               -- A new symbol, a changed calendar, or a calendar without sessions yet.
               (t.old_calendar IS DISTINCT FROM w.calendar
                OR NOT EXISTS (SELECT FROM trading_sessions ts WHERE ts.calendar = w.calendar))
               AS check_sessions
        FROM written w JOIN t ON t.ticker = w.ticker
        """,
        [r.ticker for r in rows],
        [r.name for r in rows],
        [r.exchange for r in rows],
        [r.asset_class for r in rows],
        [r.currency for r in rows],
        [r.timezone for r in rows],
        [r.calendar for r in rows],
    )
    # The read path joins the calendars' sessions: write any missing ones now. A calendar
    # that already has sessions and whose symbols are unchanged is not checked again here
    # (that takes the calendar library, ~0.5 s a process): the API's start-up re-checks
    # every calendar in use against the library (graphql_api/app.py).
    await sync_sessions(conn, {r["calendar"] for r in records if r["check_sessions"]})
    return {r["ticker"]: r["id"] for r in records}
