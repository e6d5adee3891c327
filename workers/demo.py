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

#: Synthetic tickers with one-minute bars (clearly fictional, on a fictional exchange). They
#: predate calendars: their fixed 14:30-21:00 UTC minutes cross the March 2024 DST change,
#: so they stay on the 24/7 calendar (the buckets they always had; tests rely on them).
INTRADAY_SYMBOLS = (
    SymbolInfo(
        "ACME", "Acme Synthetic Corp.", "SYNTH", "equity", "USD", "America/New_York", "24/7"
    ),
    SymbolInfo(
        "GLOBX", "Globex Synthetic Inc.", "SYNTH", "equity", "USD", "America/New_York", "24/7"
    ),
    SymbolInfo(
        "INITECH", "Initech Synthetic Ltd.", "SYNTH", "equity", "USD", "America/New_York", "24/7"
    ),
)

#: A synthetic stock trading NYSE sessions in New York time, with sparse pre- and
#: post-market minutes, over a DST change (2024-11-03), Thanksgiving (2024-11-28, closed)
#: and its half day (2024-11-29, closing 13:00), and two month ends.
SESSION_SYMBOL = SymbolInfo(
    "UMBRL", "Umbrella Synthetic Corp.", "NYSE", "equity", "USD", "America/New_York", "XNYS"
)
SESSION_FIRST_DAY = date(2024, 10, 28)
SESSION_LAST_DAY = date(2024, 12, 6)
#: Share of pre/post-market minutes that trade (extended hours are thin).
EXTENDED_TRADE_SHARE = 0.15
#: A synthetic coin trading around the clock (24/7), over the November/December month end.
CRYPTO_SYMBOL = SymbolInfo(
    "COINX", "CoinX Synthetic Token", "SYNTH", "crypto", "USD", "UTC", "24/7"
)
CRYPTO_FIRST_DAY = date(2024, 11, 25)
CRYPTO_DAYS = 10
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


def _walk(rng: np.random.Generator, starts: pd.DatetimeIndex, start_price: float) -> pd.DataFrame:
    n = len(starts)
    close = start_price * np.exp(np.cumsum(rng.normal(0.0, 0.0008, n)))
    open_ = np.concatenate([[start_price], close[:-1]])
    wiggle = np.abs(rng.normal(0.0, 0.0005, (2, n))) * close
    top, bottom = np.maximum(open_, close).round(4), np.minimum(open_, close).round(4)
    return pd.DataFrame(
        {
            "ts": starts,
            "open": open_.round(4),
            "high": np.maximum((np.maximum(open_, close) + wiggle[0]).round(4), top),
            "low": np.minimum((np.minimum(open_, close) - wiggle[1]).round(4), bottom),
            "close": close.round(4),
            "volume": rng.integers(100, 5_000, n).astype(float) * 10,
        }
    )


def session_minutes(seed: int = 7, start_price: float = 42.0) -> pd.DataFrame:
    """SESSION_SYMBOL's one-minute bars: every regular minute of each NYSE session (from the
    calendar, so the half day stops at 13:00 and the holiday has none) and a seeded share of
    its pre/post-market minutes."""
    from core.calendars import session_frame

    rng = np.random.default_rng(seed)
    frame = session_frame("XNYS", SESSION_FIRST_DAY, SESSION_LAST_DAY)
    minute = pd.Timedelta(minutes=1)
    starts: list[pd.Timestamp] = []
    for pre, op, cl, post in frame[["pre_open", "open", "close", "post_close"]].itertuples(
        index=False
    ):
        regular = pd.date_range(op, cl - minute, freq="min")
        extended = pd.date_range(pre, op - minute, freq="min").append(
            pd.date_range(cl, post - minute, freq="min")
        )
        keep = rng.random(len(extended)) < EXTENDED_TRADE_SHARE
        starts.extend(regular)
        starts.extend(extended[keep])
    index = pd.DatetimeIndex(sorted(starts)).tz_convert("UTC")
    return _walk(rng, index, start_price).assign(ticker=SESSION_SYMBOL.ticker)


def crypto_minutes(seed: int = 11, start_price: float = 3.0) -> pd.DataFrame:
    """CRYPTO_SYMBOL's one-minute bars: every minute of CRYPTO_DAYS UTC days."""
    rng = np.random.default_rng(seed)
    first = pd.Timestamp(CRYPTO_FIRST_DAY, tz="UTC")
    index = pd.date_range(first, periods=CRYPTO_DAYS * 1440, freq="min")
    return _walk(rng, index, start_price).assign(ticker=CRYPTO_SYMBOL.ticker)


async def load_demo_data(conn: asyncpg.Connection) -> DemoSummary:
    """Load (or re-load, changing nothing) all demo symbols and bars."""
    ids = await upsert_symbols(
        conn, (*DAILY_SYMBOLS, *INTRADAY_SYMBOLS, SESSION_SYMBOL, CRYPTO_SYMBOL)
    )
    daily = daily_stocks().assign(timeframe="D1")
    minutes = pd.concat(
        [
            synthetic_minutes(s.ticker, seed, price).assign(timeframe="M1")
            for seed, (s, price) in enumerate(
                zip(INTRADAY_SYMBOLS, (50.0, 120.0, 8.0), strict=True)
            )
        ]
        + [session_minutes().assign(timeframe="M1"), crypto_minutes().assign(timeframe="M1")]
    )
    written = 0
    for frame in (daily, minutes):
        frame = frame.assign(symbol_id=frame["ticker"].map(ids))
        changes = await upsert_bars(conn, frame_records(frame), source="demo")
        written += sum(c.rows for c in changes)
    await write_actions(conn, DEMO_ACTIONS, source="demo")
    return DemoSummary(symbols=len(ids), bars_written=written)
