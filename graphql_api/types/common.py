"""Types shared by several parts of the schema: intervals, ordering, paging, nodes."""

from __future__ import annotations

import base64
import binascii
import enum

import strawberry

from graphql_api.errors import BadUserInput
from graphql_api.intervals import Interval as CoreInterval


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


def parse_global_id(value: str) -> tuple[str, int]:
    """Type name and primary key from a Relay ID."""
    try:
        type_name, _, pk = base64.urlsafe_b64decode(value.encode()).decode().partition(":")
        return type_name, int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadUserInput(f"malformed node id {value!r}") from None
