"""The GraphQL schema: root query and its resolvers."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry.types import ExecutionContext

from core.errors import ApiError, BadUserInput
from graphql_api.context import Info
from graphql_api.cursors import parse_symbol_cursor, symbol_cursor
from graphql_api.fastpath import FastExecutionContext
from graphql_api.relay import page_args, page_info
from graphql_api.types.common import Node, parse_global_id
from graphql_api.types.jobs import IngestJobConnection, Mutation, ingest_jobs
from graphql_api.types.live import Subscription
from graphql_api.types.symbol_connection import SymbolConnection
from graphql_api.types.symbols import Symbol, SymbolEdge, SymbolFilter
from loaders.symbols import SymbolFilterArgs, symbols_page


async def _node(info: Info, node_id: str) -> Node | None:
    parsed = parse_global_id(node_id)
    if parsed is None:
        return None
    type_name, pk = parsed
    if type_name == "Symbol":
        row = await info.context.loaders.symbol_by_id.load(pk)
        return Symbol.from_row(row) if row else None
    return None


def _filter_args(f: SymbolFilter | None) -> SymbolFilterArgs:
    if f is None:
        return SymbolFilterArgs()
    search = f.search.strip() if f.search else None
    return SymbolFilterArgs(
        search=search or None,
        exchange=f.exchange,
        asset_class=f.asset_class,
        active=f.active,
        tickers=tuple(t.strip().upper() for t in f.tickers) if f.tickers is not None else None,
    )


@strawberry.type(description="Read market data: symbols, bars at any interval, chart series.")
class Query:
    ingest_jobs: IngestJobConnection = strawberry.field(
        resolver=ingest_jobs,
        description="Ingest jobs, newest first (needs an `ingest` or `admin` key).",
    )

    @strawberry.field(description="Fetch any object by its global ID (Relay).")
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global ID.")],
    ) -> Node | None:
        return await _node(info, id)

    @strawberry.field(description="Fetch several objects by global ID; null for unknown IDs.")
    async def nodes(
        self,
        info: Info,
        ids: Annotated[list[strawberry.ID], strawberry.argument(description="Global IDs.")],
    ) -> list[Node | None]:
        if len(ids) > info.context.settings.max_page_size_symbols:
            raise BadUserInput(
                f"at most {info.context.settings.max_page_size_symbols} ids per request"
            )
        # A malformed id is an error at its own position (nodes.<i>), not of the whole list:
        # graphql-core completes a returned exception as that item's located error.
        results = await asyncio.gather(*(_node(info, i) for i in ids), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, ApiError):
                raise result
        return results  # type: ignore[return-value]

    @strawberry.field(description="One symbol by ticker (case-insensitive); null if unknown.")
    async def symbol(
        self,
        info: Info,
        ticker: Annotated[str, strawberry.argument(description="Ticker, e.g. AAPL.")],
    ) -> Symbol | None:
        row = await info.context.loaders.symbol_by_ticker.load(ticker.strip().upper())
        return Symbol.from_row(row) if row else None

    @strawberry.field(description="Symbols ordered by ticker, filtered, keyset-paginated (Relay).")
    async def symbols(
        self,
        info: Info,
        filter: Annotated[
            SymbolFilter | None, strawberry.argument(description="Conditions on the symbols.")
        ] = None,
        first: Annotated[int | None, strawberry.argument(description="Page size.")] = None,
        after: Annotated[
            str | None, strawberry.argument(description="Start after this cursor.")
        ] = None,
        last: Annotated[
            int | None, strawberry.argument(description="Page size from the end.")
        ] = None,
        before: Annotated[
            str | None, strawberry.argument(description="End before this cursor.")
        ] = None,
    ) -> SymbolConnection:
        settings = info.context.settings
        page = page_args(
            first,
            after,
            last,
            before,
            default=settings.default_page_size,
            maximum=settings.max_page_size_symbols,
        )
        f = _filter_args(filter)
        after_t = parse_symbol_cursor(after) if after is not None else None
        before_t = parse_symbol_cursor(before) if before is not None else None
        rows, more = await symbols_page(
            info.context.read_engine,
            f,
            limit=page.size,
            after=after_t,
            before=before_t,
            descending=page.from_end,
        )
        if page.from_end:
            rows.reverse()
        return SymbolConnection(
            edges=[SymbolEdge(node=Symbol.from_row(r)) for r in rows],
            page_info=page_info(page, more, rows, lambda r: symbol_cursor(r.ticker)),
            filter=f,
        )


class MarketSchema(strawberry.Schema):
    """Logs server errors once; client mistakes (expected ApiErrors, validation) are not errors."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        import logging

        log = logging.getLogger("graphql_api.errors")
        context = getattr(execution_context, "context", None)
        if getattr(context, "request", None) is not None:
            return  # the HTTP endpoint formats and logs errors itself, with the request id
        for error in errors:
            original = error.original_error
            if original is None or isinstance(original, ApiError):
                continue
            log.error("unexpected error in %s", error.path, exc_info=original)


def build_schema(*, fast_path: bool = True, **kwargs: Any) -> strawberry.Schema:
    """The schema with the given extensions; `fast_path` completes plain lists in one loop."""
    if fast_path:
        kwargs.setdefault("execution_context_class", FastExecutionContext)
    return MarketSchema(
        query=Query, mutation=Mutation, subscription=Subscription, types=[Symbol], **kwargs
    )


schema = build_schema()
