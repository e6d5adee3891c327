"""Checks on resolver arguments that turn bad input into BAD_USER_INPUT errors."""

from __future__ import annotations

from datetime import UTC, datetime

from core.errors import BadUserInput


def aware(name: str, value: datetime | None) -> datetime | None:
    """Reject a time without a UTC offset: which time zone it meant cannot be guessed."""
    if value is not None and value.tzinfo is None:
        raise BadUserInput(
            f"`{name}` must carry a UTC offset (e.g. 2024-03-04T14:30:00Z), got {value.isoformat()}"
        )
    return value


#: Times the service accepts: wide enough for any market history, narrow enough that every
#: bucket around them (a week, a month) is still a valid datetime.
EARLIEST = datetime(1800, 1, 1, tzinfo=UTC)
LATEST = datetime(2400, 1, 1, tzinfo=UTC)


def in_bounds(name: str, value: datetime) -> datetime:
    """Reject times outside [EARLIEST, LATEST)."""
    if not EARLIEST <= value < LATEST:
        raise BadUserInput(
            f"`{name}` must lie between {EARLIEST.date()} and {LATEST.date()}, got "
            f"{value.isoformat()}"
        )
    return value


def time_range(start: datetime | None, end: datetime | None) -> None:
    """Both ends aware and within bounds, and `from` not after `to`."""
    for name, value in (("from", start), ("to", end)):
        aware(name, value)
        if value is not None:
            in_bounds(name, value)
    if start is not None and end is not None and start > end:
        raise BadUserInput(f"`from` ({start.isoformat()}) is after `to` ({end.isoformat()})")
