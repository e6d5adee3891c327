"""core.calendars.trading_hours against the calendar library's own schedules, and the
`Symbol.tradingHours` field the JS datafeed reads."""

from __future__ import annotations

from datetime import date

import pandas_market_calendars as mcal
import pytest

from core.calendars import trading_hours
from tests.api.helpers import data_of
from tests.conftest import GraphQL


def local_hhmm(ts: object, tz: str) -> str:
    import pandas as pd

    return pd.Timestamp(ts).tz_convert(tz).strftime("%H%M")


@pytest.mark.parametrize(
    ("code", "library", "day"),
    [
        ("XNYS", "NYSE", date(2024, 11, 4)),
        ("XNAS", "NASDAQ", date(2024, 7, 1)),
        ("XLON", "XLON", date(2024, 11, 4)),
    ],
)
def test_regular_hours_match_a_full_day_of_the_schedule(code: str, library: str, day: date) -> None:
    hours = trading_hours(code)
    cal = mcal.get_calendar(library)
    row = (
        cal.schedule(day.isoformat(), day.isoformat(), start="pre", end="post")
        if ("pre" in cal.regular_market_times)
        else cal.schedule(day.isoformat(), day.isoformat())
    )
    tz = str(cal.tz)
    assert hours.timezone == tz
    opens, closes = row["market_open"].iloc[0], row["market_close"].iloc[0]
    span = f"{local_hhmm(opens, tz)}-{local_hhmm(closes, tz)}"
    assert hours.regular == f"{span}:23456"
    if "pre" in row:
        ext = f"{local_hhmm(row['pre'].iloc[0], tz)}-{local_hhmm(row['post'].iloc[0], tz)}"
        assert hours.extended == f"{ext}:23456"
    else:
        assert hours.extended is None


def test_breaks_and_round_the_clock_calendars() -> None:
    tokyo = trading_hours("XTKS")
    row = mcal.get_calendar("XTKS").schedule("2025-03-03", "2025-03-03")
    pause = local_hhmm(row["break_start"].iloc[0], "Asia/Tokyo")
    resume = local_hhmm(row["break_end"].iloc[0], "Asia/Tokyo")
    assert f"-{pause},{resume}-" in tokyo.regular
    assert trading_hours("24/7").regular == "24x7" and trading_hours("24/7").timezone == "Etc/UTC"
    fx = trading_hours("FX")
    assert fx.regular == "0000-0000:23456" and fx.timezone == "Etc/UTC" and fx.extended is None


def test_symbol_trading_hours_field(gql: GraphQL) -> None:
    q = """{ a: symbol(ticker: "UMBRL") { calendar tradingHours { timezone regular extended } }
             b: symbol(ticker: "COINX") { calendar tradingHours { timezone regular extended } } }"""
    data = data_of(gql(q))
    for alias in ("a", "b"):
        hours = trading_hours(data[alias]["calendar"])
        assert data[alias]["tradingHours"] == {
            "timezone": hours.timezone,
            "regular": hours.regular,
            "extended": hours.extended,
        }
    assert data["a"]["tradingHours"]["regular"] == "0930-1600:23456"
    assert data["b"]["tradingHours"]["regular"] == "24x7"
