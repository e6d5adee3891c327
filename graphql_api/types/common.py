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
from core.calendars import Buckets
from core.calendars import Fill as CoreFill
from core.calendars import SessionKind as CoreSessionKind
from core.errors import BadUserInput
from core.intervals import Interval as CoreInterval


@strawberry.enum(
    description="Length of one bar. Where buckets start is set by `alignment` (see `Alignment`): "
    "by default at the exchange's session open, in its time zone; with `alignment: UTC` on the "
    "UTC grid, as before sessions existed."
)
class Interval(enum.Enum):
    M1 = strawberry.enum_value("M1", description="One minute.")
    M5 = strawberry.enum_value("M5", description="Five minutes.")
    M15 = strawberry.enum_value("M15", description="Fifteen minutes.")
    M30 = strawberry.enum_value("M30", description="Thirty minutes.")
    H1 = strawberry.enum_value("H1", description="One hour.")
    H4 = strawberry.enum_value(
        "H4", description="Four hours (from the session open; 00:00, 04:00, … on the UTC grid)."
    )
    D1 = strawberry.enum_value(
        "D1",
        description="One trading session, stamped 00:00 UTC of its trading date (a UTC "
        "calendar day with `alignment: UTC`).",
    )
    W1 = strawberry.enum_value(
        "W1", description="One trading week, Monday to Sunday, stamped 00:00 UTC of its Monday."
    )
    MN1 = strawberry.enum_value(
        "MN1", description="One trading month, stamped 00:00 UTC of its first day."
    )

    @property
    def core(self) -> CoreInterval:
        """The same interval in the core (non-GraphQL) enum."""
        return CoreInterval(self.value)

    @classmethod
    def of(cls, interval: CoreInterval) -> Interval:
        """The GraphQL enum member for a core interval."""
        return cls(interval.value)


@strawberry.enum(
    description="Which hours of a trading day bars cover. Intraday stored bars outside them "
    "are left out before resampling; stored daily bars are never filtered."
)
class Session(enum.Enum):
    REGULAR = strawberry.enum_value(
        "REGULAR",
        description="The regular session only (09:30-16:00 New York for US equities; a half "
        "day ends at 13:00). The default for symbols on an exchange calendar.",
    )
    EXTENDED = strawberry.enum_value(
        "EXTENDED",
        description="Pre-market, regular and post-market hours (04:00-20:00 New York for US "
        "equities); each part is bucketed from its own start.",
    )
    ALL = strawberry.enum_value(
        "ALL",
        description="Every stored bar, overnight and non-trading days included (the hours "
        "outside the sessions form parts bounded by local midnight). The default for 24/7 "
        "and FX calendars, where it equals the others.",
    )

    @property
    def core(self) -> CoreSessionKind:
        """The same choice in core's enum."""
        return CoreSessionKind(self.value)


@strawberry.enum(description="Where bar buckets start.")
class Alignment(enum.Enum):
    SESSION = strawberry.enum_value(
        "SESSION",
        description="The default: at the start of each session part in the exchange's time "
        "zone (an H1 bar of a NYSE stock starts 09:30, 10:30, …, the last one is cut at the "
        "close); D1 is one trading session, W1/MN1 the trading week/month. This is what "
        "brokers and charting tools show. On 24/7 calendars it equals UTC.",
    )
    UTC = strawberry.enum_value(
        "UTC",
        description="On the UTC grid (00:00, 01:00, … UTC; D1 a UTC calendar day): the "
        "buckets served before sessions existed, kept for clients that rely on them.",
    )


@strawberry.enum(description="What a bucket with no stored bars becomes.")
class Fill(enum.Enum):
    NONE = strawberry.enum_value("NONE", description="Left out (the default).")
    NULL = strawberry.enum_value(
        "NULL",
        description="A bar for every slot of trading hours, as PREVIOUS, where nothing traded "
        "with null prices: `Bar.prices` null and null in the `BarSeries.prices` columns, "
        "volume 0, `filled` true. (`open`…`close` are non-null for released clients: they "
        "repeat the previous close there.)",
    )
    PREVIOUS = strawberry.enum_value(
        "PREVIOUS",
        description="A bar for every slot of trading hours (the `session` chosen; never on a "
        "holiday or overnight for equities), between the symbol's first and newest stored "
        "bars: an empty slot's open, high, low and close equal the previous bar's close, its "
        "volume is 0 and `filled` is true. Slots before the first bar are left out.",
    )

    @property
    def core(self) -> CoreFill:
        """The same choice in core's enum."""
        return CoreFill(self.value)


def choice(session: Session | None, alignment: Alignment | None) -> Buckets:
    """The `session` and `alignment` arguments as the planner's Buckets (None: defaults)."""
    return Buckets(
        None if session is None else session.core,
        alignment is None or alignment == Alignment.SESSION,
    )


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
