"""Demo data: public-domain daily stocks from bokeh-sampledata plus synthetic one-minute bars."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from importlib import resources

import asyncpg
import numpy as np
import pandas as pd

from workers.actions import Action, write_actions
from workers.symbols import SymbolInfo, upsert_symbols
from workers.upsert import frame_records, upsert_bars

DAILY_SYMBOLS = (
    SymbolInfo("AAPL", "Apple Inc.", "NASDAQ", "equity", "USD", "America/New_York"),
    SymbolInfo(
        "FB", "Meta Platforms Inc. (Facebook)", "NASDAQ", "equity", "USD", "America/New_York"
    ),
    SymbolInfo("GOOG", "Alphabet Inc. (Google)", "NASDAQ", "equity", "USD", "America/New_York"),
    SymbolInfo(
        "IBM", "International Business Machines Corp.", "NYSE", "equity", "USD", "America/New_York"
    ),
    SymbolInfo("MSFT", "Microsoft Corp.", "NASDAQ", "equity", "USD", "America/New_York"),
)

#: Synthetic tickers with one-minute bars (clearly fictional, on a fictional exchange).
INTRADAY_SYMBOLS = (
    SymbolInfo("ACME", "Acme Synthetic Corp.", "SYNTH", "equity", "USD", "America/New_York"),
    SymbolInfo("GLOBX", "Globex Synthetic Inc.", "SYNTH", "equity", "USD", "America/New_York"),
    SymbolInfo("INITECH", "Initech Synthetic Ltd.", "SYNTH", "equity", "USD", "America/New_York"),
)
INTRADAY_FIRST_DAY = date(2024, 3, 4)
INTRADAY_DAYS = 10  # trading days (weekends skipped)
SESSION_OPEN_UTC = timedelta(hours=14, minutes=30)  # 09:30 New York in March 2024 (EST/EDT)
SESSION_MINUTES = 390


#: Known splits and cash dividends in the daily history's period (2000-03-01 .. 2013-03-01),
#: as announced (ratio: new shares per old; amount: USD per share as of the ex-date), so
#: `adjustment: ALL` shows AAPL's and MSFT's history without its split-day crashes. MSFT's
#: 2004-11-15 entry is the $3.00 special and the $0.08 regular dividend of that day together.
DEMO_ACTIONS = (
    Action("AAPL", "SPLIT", date(2000, 6, 21), 2.0),
    Action("AAPL", "SPLIT", date(2005, 2, 28), 2.0),
    Action("AAPL", "DIVIDEND", date(2012, 8, 9), 2.65),
    Action("AAPL", "DIVIDEND", date(2012, 11, 7), 2.65),
    Action("AAPL", "DIVIDEND", date(2013, 2, 7), 2.65),
    Action("MSFT", "SPLIT", date(2003, 2, 18), 2.0),
    Action("MSFT", "DIVIDEND", date(2003, 2, 19), 0.08),
    Action("MSFT", "DIVIDEND", date(2003, 10, 15), 0.16),
    Action("MSFT", "DIVIDEND", date(2004, 8, 23), 0.08),
    Action("MSFT", "DIVIDEND", date(2004, 11, 15), 3.08),
)


@dataclass(frozen=True)
class DemoSummary:
    """How many rows the demo load wrote (zero on a re-run)."""

    symbols: int
    bars_written: int


def daily_stocks() -> pd.DataFrame:
    """The bokeh-sampledata daily stocks as a frame (ticker, ts, open … volume)."""
    path = resources.files("bokeh_sampledata") / "_data" / "stocks.csv.gz"
    with resources.as_file(path) as file:
        raw = pd.read_csv(file)
    return pd.DataFrame(
        {
            "ticker": raw["Ticker"].astype(str),
            # Daily bars start at midnight UTC of their trading date.
            "ts": pd.to_datetime(raw["Date"]).dt.tz_localize("UTC"),
            "open": raw["Open"].astype(float),
            "high": raw["High"].astype(float),
            "low": raw["Low"].astype(float),
            "close": raw["Close"].astype(float),
            "volume": raw["Volume"].astype(float),
        }
    )


def synthetic_minutes(ticker: str, seed: int, start_price: float) -> pd.DataFrame:
    """Deterministic one-minute bars over INTRADAY_DAYS trading sessions (a seeded random walk)."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range(INTRADAY_FIRST_DAY, periods=INTRADAY_DAYS)
    starts = [
        datetime(d.year, d.month, d.day) + SESSION_OPEN_UTC + timedelta(minutes=m)
        for d in days
        for m in range(SESSION_MINUTES)
    ]
    n = len(starts)
    steps = rng.normal(0.0, 0.0008, n)
    close = start_price * np.exp(np.cumsum(steps))
    open_ = np.concatenate([[start_price], close[:-1]])
    wiggle = np.abs(rng.normal(0.0, 0.0005, (2, n))) * close
    high = np.maximum(open_, close) + wiggle[0]
    low = np.minimum(open_, close) - wiggle[1]
    volume = rng.integers(100, 5_000, n).astype(float) * 10
    return pd.DataFrame(
        {
            "ticker": ticker,
            "ts": pd.DatetimeIndex(starts).tz_localize("UTC"),
            "open": open_.round(4),
            "high": high.round(4),
            "low": low.round(4),
            "close": close.round(4),
            "volume": volume,
        }
    )


async def load_demo_data(conn: asyncpg.Connection) -> DemoSummary:
    """Load (or re-load, changing nothing) all demo symbols and bars."""
    ids = await upsert_symbols(conn, DAILY_SYMBOLS + INTRADAY_SYMBOLS)
    daily = daily_stocks().assign(timeframe="D1")
    minutes = pd.concat(
        [
            synthetic_minutes(s.ticker, seed, price).assign(timeframe="M1")
            for seed, (s, price) in enumerate(
                zip(INTRADAY_SYMBOLS, (50.0, 120.0, 8.0), strict=True)
            )
        ]
    )
    written = 0
    for frame in (daily, minutes):
        frame = frame.assign(symbol_id=frame["ticker"].map(ids))
        changes = await upsert_bars(conn, frame_records(frame), source="demo")
        written += sum(c.rows for c in changes)
    await write_actions(conn, DEMO_ACTIONS, source="demo")
    return DemoSummary(symbols=len(ids), bars_written=written)
