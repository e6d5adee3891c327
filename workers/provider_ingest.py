"""Ingesting bars and symbol listings from market-data providers (workers.providers)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

import asyncpg
import numpy as np
import pandas as pd

from core.intervals import Interval, parse_timeframe
from core.providers import PROVIDER_SPECS
from core.settings import Settings
from workers.actions import Action, write_actions
from workers.providers import MarketDataProvider, ProviderConfig, config_from_env
from workers.runs import RunRecorder
from workers.symbols import SymbolInfo, upsert_symbols
from workers.validation import CLEAN_COLUMNS, VALUES, ColumnMap, validate_chunk
from workers.writer import BarWriter

# Provider pages already carry the canonical names (workers.providers.base.BAR_COLUMNS).
_PAGE_COLUMNS = ColumnMap(time="time", values={c: c for c in VALUES})
_EMPTY = pd.DataFrame({c: [] for c in CLEAN_COLUMNS})


@dataclass
class ProviderReport:
    """What one provider ingest of a series did."""

    ticker: str
    timeframe: str
    start: datetime
    end: datetime
    rows_fetched: int = 0
    rows_written: int = 0
    rows_rejected: int = 0


def provider_config(settings: Settings, name: str) -> ProviderConfig:
    """The provider's config: credentials from settings, else from its usual variables."""
    config = config_from_env(name)
    spec = PROVIDER_SPECS.get(name.strip().lower())
    if spec is None:
        return config
    overrides = {key: getattr(settings, spec.setting(key), None) for key in spec.settings}
    return replace(config, **{key: value for key, value in overrides.items() if value})


async def newest_bar(conn: asyncpg.Connection, ticker: str, timeframe: str) -> datetime | None:
    """The start time of the newest stored bar of a series, or None."""
    value: datetime | None = await conn.fetchval(
        "SELECT max(b.ts) FROM bars b JOIN symbols s ON s.id = b.symbol_id "
        "WHERE s.ticker = $1 AND b.timeframe = $2",
        ticker.strip().upper(),
        parse_timeframe(timeframe),
    )
    return value


async def fetch_range(
    conn: asyncpg.Connection,
    ticker: str,
    timeframe: str,
    *,
    start: datetime | None,
    end: datetime | None,
    overlap_bars: int,
    default_lookback: timedelta,
) -> tuple[datetime, datetime]:
    """The range to fetch: without `start`, from just before the newest stored bar (incremental).

    The overlap of a few bars picks up bars the provider revised after we stored them (the
    last, still-forming bar in particular).
    """
    end = end or datetime.now(UTC)
    if start is not None:
        return start, end
    newest = await newest_bar(conn, ticker, timeframe)
    if newest is None:
        return end - default_lookback, end
    step = timedelta(seconds=Interval(parse_timeframe(timeframe)).seconds)
    return min(newest - overlap_bars * step, end), end


async def ingest_provider_bars(
    conn: asyncpg.Connection,
    provider: MarketDataProvider,
    ticker: str,
    timeframe: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    overlap_bars: int = 3,
    default_lookback: timedelta = timedelta(days=30),
    batch_rows: int = 100_000,
    recorder: RunRecorder | None = None,
) -> ProviderReport:
    """Fetch a series from a provider and write it, in batches of about `batch_rows` rows.

    Incremental when `start` is None (see `fetch_range`); an explicit range is fetched whole,
    which is safe to repeat: unchanged bars are left untouched.
    """
    ticker = ticker.strip().upper()
    timeframe = parse_timeframe(timeframe)
    first, last = await fetch_range(
        conn,
        ticker,
        timeframe,
        start=start,
        end=end,
        overlap_bars=overlap_bars,
        default_lookback=default_lookback,
    )
    report = ProviderReport(ticker, timeframe, first, last)
    writer = BarWriter(conn, timeframe, source=f"provider:{provider.name}", recorder=recorder)
    buffered: list[pd.DataFrame] = []
    size = rejected = 0

    async def flush() -> None:
        nonlocal buffered, size, rejected
        if not buffered and not rejected:
            return
        batch = pd.concat(buffered, ignore_index=True) if buffered else _EMPTY
        report.rows_written += await writer.write(batch, rejected=rejected)
        buffered, size, rejected = [], 0, 0

    async for page in provider.fetch_bars(ticker, timeframe, first, last):
        lines = np.arange(report.rows_fetched + 1, report.rows_fetched + 1 + len(page))
        report.rows_fetched += len(page)
        checked = validate_chunk(page, _PAGE_COLUMNS, lines, ticker=ticker)
        report.rows_rejected += len(checked.rejected)
        rejected += len(checked.rejected)
        buffered.append(checked.bars)
        size += len(checked.bars)
        if size >= batch_rows:
            await flush()
    await flush()
    return report


async def sync_symbols(conn: asyncpg.Connection, provider: MarketDataProvider) -> int:
    """Create or update every symbol the provider lists; returns how many it listed."""
    listings = await provider.list_symbols()
    infos = [
        SymbolInfo(
            s.ticker,
            name=s.name,
            exchange=s.exchange,
            asset_class=s.asset_class,
            currency=s.currency,
            timezone=s.timezone,
        )
        for s in listings
        if s.ticker.strip()
    ]
    return len(await upsert_symbols(conn, infos))


async def ingest_provider_actions(
    conn: asyncpg.Connection,
    provider: MarketDataProvider,
    tickers: list[str],
    start: date,
    end: date,
) -> tuple[int, int]:
    """Fetch the splits and cash dividends of `tickers` with an ex-date in [start, end] and
    upsert them (workers.actions: a new or corrected one is an ingest event); returns
    (actions fetched, actions new or changed). Re-running the same window changes nothing."""
    fetched = []
    for ticker in tickers:
        fetched.extend(await provider.fetch_actions(ticker, start, end))
    written, _ = await write_actions(
        conn,
        [Action(a.ticker.upper(), a.kind, a.ex_date, a.value, a.currency) for a in fetched],
        source=f"provider:{provider.name}",
    )
    return len(fetched), written
