"""What a storable ticker is: the one check ingest files, providers and the API share."""

from __future__ import annotations

MAX_TICKER_LENGTH = 32


def ticker_problem(ticker: str) -> str | None:
    """Why `ticker` (already trimmed) cannot be stored, or None when it can.

    Control, format and private-use characters are refused: PostgreSQL cannot store NUL at
    all, and the others only make symbols that no one can type or see.
    """
    if not ticker:
        return "missing ticker"
    if len(ticker) > MAX_TICKER_LENGTH:
        return "ticker too long"
    if not ticker.isprintable():
        return "ticker has unprintable characters"
    return None
