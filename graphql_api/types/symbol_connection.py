"""The symbol connection (Relay), keyset-paginated by ticker."""

from __future__ import annotations

import strawberry

from graphql_api.context import Info
from graphql_api.types.common import PageInfo
from graphql_api.types.symbols import Symbol, SymbolEdge
from loaders.symbols import SymbolFilterArgs, symbols_count


@strawberry.type(description="A page of symbols ordered by ticker (Relay connection).")
class SymbolConnection:
    edges: list[SymbolEdge] = strawberry.field(description="The symbols of this page with cursors.")
    page_info: PageInfo = strawberry.field(description="Paging information.")
    filter: strawberry.Private[SymbolFilterArgs]

    @strawberry.field(description="The symbols of this page, without cursors.")
    def nodes(self) -> list[Symbol]:
        return [e.node for e in self.edges]

    @strawberry.field(description="Number of symbols matching the filter (all pages).")
    async def total_count(self, info: Info) -> int:
        return await symbols_count(info.context.read_engine, self.filter)
