"""Trading sessions of a symbol's calendar: what a chart needs to draw session boundaries."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from core.calendars import session_rows
from core.errors import BadUserInput

#: Most calendar days one `sessions` request may span (about eight years).
MAX_SESSION_DAYS = 3_000


@strawberry.type(
    description="One trading day of an exchange calendar (times in UTC; pre/post-market equal "
    "the open/close where the calendar has no extended hours)."
)
class TradingSession:
    date: date = strawberry.field(
        description="The trading date (what a D1 bar of the session is stamped with, at 00:00 UTC)."
    )
    pre_open: datetime = strawberry.field(description="Start of the pre-market hours.")
    open: datetime = strawberry.field(description="Regular session open.")
    close: datetime = strawberry.field(description="Regular session close (early on a half day).")
    post_close: datetime = strawberry.field(description="End of the post-market hours.")


def trading_sessions(calendar: str, start: date, end: date) -> list[TradingSession]:
    """The sessions of `calendar` with dates in [start, end)."""
    if end <= start:
        return []
    if (end - start).days > MAX_SESSION_DAYS:
        raise BadUserInput(f"`from`/`to` may span at most {MAX_SESSION_DAYS} days of sessions")
    rows = [r for r in session_rows(calendar) if start <= r[1] < end]
    return [
        TradingSession(date=day, pre_open=pre, open=op, close=cl, post_close=post)
        for _, day, pre, op, cl, post in rows
    ]
