"""Corporate actions as GraphQL types: what a chart marks on its time axis."""

from __future__ import annotations

import enum
from datetime import date, datetime

import strawberry

from loaders.rows import ActionRow


@strawberry.enum(description="Kind of corporate action.")
class CorporateActionKind(enum.Enum):
    SPLIT = strawberry.enum_value(
        "SPLIT", description="A stock split (a reverse split has a ratio below 1)."
    )
    DIVIDEND = strawberry.enum_value("DIVIDEND", description="A cash dividend.")


@strawberry.type(
    description="A split or cash dividend of a symbol, as applied by `adjustment` on bars."
)
class CorporateAction:
    row: strawberry.Private[ActionRow]

    @strawberry.field(description="SPLIT or DIVIDEND.")
    def kind(self) -> CorporateActionKind:
        return CorporateActionKind(self.row.kind)

    @strawberry.field(
        description="Ex-date: bars starting before 00:00 UTC of this date are adjusted for it."
    )
    def ex_date(self) -> date:
        return self.row.ex_date

    @strawberry.field(
        description="Splits: new shares per old share (2 for 2-for-1, 0.1 for 1-for-10); "
        "null for dividends."
    )
    def ratio(self) -> float | None:
        return self.row.value if self.row.kind == "SPLIT" else None

    @strawberry.field(
        description="Dividends: cash per share as of the ex-date, in `currency`; null for splits."
    )
    def amount(self) -> float | None:
        return self.row.value if self.row.kind == "DIVIDEND" else None

    @strawberry.field(description="Currency of `amount` (ISO 4217).")
    def currency(self) -> str:
        return self.row.currency

    @strawberry.field(description="Where the action came from (a file, a provider).")
    def source(self) -> str:
        return self.row.source

    @strawberry.field(description="When the action was last recorded or corrected.")
    def updated_at(self) -> datetime:
        return self.row.updated_at
