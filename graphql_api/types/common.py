"""Types shared by several parts of the schema: intervals, ordering, paging, nodes."""

from __future__ import annotations

import base64
import binascii
import enum
from datetime import date
from typing import Annotated

import strawberry

from core.adjustments import Adjust, resolve
from core.adjustments import Adjustment as CoreAdjustment
from core.errors import BadUserInput
from core.intervals import Interval as CoreInterval


@strawberry.enum(description="Length of one bar. Intraday buckets align to UTC; W1 is an ISO week.")
class Interval(enum.Enum):
    M1 = strawberry.enum_value("M1", description="One minute.")
    M5 = strawberry.enum_value("M5", description="Five minutes.")
    M15 = strawberry.enum_value("M15", description="Fifteen minutes.")
    M30 = strawberry.enum_value("M30", description="Thirty minutes.")
    H1 = strawberry.enum_value("H1", description="One hour.")
    H4 = strawberry.enum_value("H4", description="Four hours (00:00, 04:00, … UTC).")
    D1 = strawberry.enum_value("D1", description="One calendar day (UTC).")
    W1 = strawberry.enum_value("W1", description="One ISO week, Monday to Sunday (UTC).")
    MN1 = strawberry.enum_value("MN1", description="One calendar month (UTC).")

    @property
    def core(self) -> CoreInterval:
        """The same interval in the core (non-GraphQL) enum."""
        return CoreInterval(self.value)

    @classmethod
    def of(cls, interval: CoreInterval) -> Interval:
        """The GraphQL enum member for a core interval."""
        return cls(interval.value)


@strawberry.enum(description="Which end of the time line a list of bars starts from.")
class BarOrder(enum.Enum):
    NEWEST_FIRST = strawberry.enum_value("NEWEST_FIRST", description="Newest bar first.")
    OLDEST_FIRST = strawberry.enum_value("OLDEST_FIRST", description="Oldest bar first.")


@strawberry.enum(
    description="Which corporate actions bar prices and volumes are adjusted for (standard "
    "back-adjustment: a bar is multiplied by the factors of the actions whose ex-date lies "
    "after it; stored bars stay as printed)."
)
class Adjustment(enum.Enum):
    RAW = strawberry.enum_value("RAW", description="Prices and volumes as printed (stored).")
    SPLIT = strawberry.enum_value(
        "SPLIT",
        description="Split-adjusted: prices times 1 / ratio of each later split, volumes "
        "times its ratio (new shares per old share).",
    )
    DIVIDEND = strawberry.enum_value(
        "DIVIDEND",
        description="Dividend-adjusted: prices times 1 - amount / previous close of each later "
        "cash dividend; volumes unchanged.",
    )
    ALL = strawberry.enum_value("ALL", description="Split- and dividend-adjusted.")

    @property
    def core(self) -> CoreAdjustment:
        """The same adjustment in the core (non-GraphQL) enum."""
        return CoreAdjustment(self.value)


#: The `adjustment` argument, the same on every field that reads bars.
AdjustmentArg = Annotated[
    Adjustment,
    strawberry.argument(
        description="Corporate-action adjustment of prices and volumes. Default RAW: the bars "
        "as printed and stored, which is what this field answered before adjustments existed "
        "(clients written then keep their numbers, and stored values never change under them "
        "when an action arrives) and what a backtest of printed prices needs; ask for ALL for "
        "charts and indicators across splits and dividends. Resampling and indicators (with "
        "their warm-up) run on the adjusted bars."
    ),
]
#: The `asOf` argument, next to `adjustment`.
AsOfArg = Annotated[
    date | None,
    strawberry.argument(
        name="asOf",
        description="Apply only the actions known at this date: those with an ex-date on or "
        "before it (default: today, UTC), so a backtest sees prices as they were printed "
        "then. Ignored for RAW.",
    ),
]


def adjust_of(adjustment: Adjustment, as_of: date | None) -> Adjust | None:
    """The loaders' adjustment for a field's `adjustment` and `asOf` (None for raw bars)."""
    return resolve(adjustment.core, as_of)


@strawberry.type(description="Relay page information of a connection.")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="Whether more items follow the last one of this page."
    )
    has_previous_page: bool = strawberry.field(
        description="Whether items precede the first one of this page."
    )
    start_cursor: str | None = strawberry.field(
        description="Cursor of the first item of this page (null when empty)."
    )
    end_cursor: str | None = strawberry.field(
        description="Cursor of the last item of this page (null when empty)."
    )


@strawberry.interface(description="An object with a globally unique, opaque ID (Relay).")
class Node:
    id: strawberry.ID = strawberry.field(description="Globally unique, opaque identifier.")


def global_id(type_name: str, pk: int) -> strawberry.ID:
    """The opaque Relay ID of an object."""
    return strawberry.ID(base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode())


#: Largest primary key of a node table (`symbols.id` is a PostgreSQL integer).
MAX_NODE_PK = 2**31 - 1
#: Longer ids cannot be canonical encodings of any id we issue.
_MAX_ID_LENGTH = 96


def _malformed(value: str) -> BadUserInput:
    shown = value if len(value) <= _MAX_ID_LENGTH else value[:_MAX_ID_LENGTH] + "…"
    return BadUserInput(f"malformed node id {shown!r}")


def parse_global_id(value: str) -> tuple[str, int] | None:
    """Type name and primary key from a Relay ID; None for a well-formed ID that cannot exist.

    Strict: only the canonical encoding of `Type:N` is accepted (padded URL-safe base64,
    ASCII letters, ASCII digits without sign or leading zeros), so one object has exactly one
    ID. A key beyond the table's integer range names nothing (None), rather than reaching the
    driver as an overflow. Anything else is BAD_USER_INPUT.
    """
    if len(value) > _MAX_ID_LENGTH or not value.isascii():
        raise _malformed(value)
    try:
        raw = base64.b64decode(value.encode(), altchars=b"-_", validate=True)
    except (ValueError, binascii.Error):
        raise _malformed(value) from None
    if base64.urlsafe_b64encode(raw) != value.encode() or not raw.isascii():
        raise _malformed(value)
    type_name, sep, pk = raw.decode().partition(":")
    if not sep or not type_name.isalpha() or not pk.isdigit() or (pk.startswith("0") and pk != "0"):
        raise _malformed(value)
    number = int(pk)
    return (type_name, number) if 0 < number <= MAX_NODE_PK else None
