"""barUpdates without GraphQL execution per bar and per client: render once, send to many.

Strawberry executes a subscription's selection set for every event of every subscriber: about
0.3 ms of CPU per message here, so 100 clients of one symbol cost 30 ms per bar. Those clients
receive the same bars; when their documents select the same fields, the JSON of a bar is the
same too. So a subscription whose document is a single `barUpdates` field selecting plain
fields (aliases and `__typename` allowed; no fragments, directives, variables in odd places
or other root fields) is served here: the document is validated and its arguments coerced by
graphql-core as usual, the bars come from the same stream as the resolver's
(graphql_api.live.stream), and each bar's payload is rendered once per distinct selection and
shared by every client of that selection. Anything else runs through Strawberry. The messages
are those Strawberry would send (the live tests run both ways and compare).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from graphql import (
    FieldNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_operation_ast,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry import Schema

from core.adjustments import Adjust
from core.bar import BAR_FIELDS
from core.settings import Settings
from graphql_api import documents
from graphql_api.context import Context
from graphql_api.live.hub import LiveBar
from graphql_api.live.stream import bar_stream
from graphql_api.types.common import Adjustment, adjust_of, choice

log = logging.getLogger(__name__)

#: Fields each type may select on the fast path (anything else goes through Strawberry).
_UPDATE_FIELDS = frozenset({"ticker", "interval", "bar", "version", "replayed", "__typename"})
#: GraphQL name → BarRow attribute of each bar value field.
_BAR_VALUES = {f.graphql: f.name for f in BAR_FIELDS}
_BAR_FIELDS = frozenset({"time", *_BAR_VALUES, "closed", "filled", "__typename"})
#: Rendered payloads kept for other clients of the same bar and selection.
_RENDERED_MAX = 8_192
_MAX_QUERY = 10_000
_MAX_FIELDS = 30

Fields = tuple[tuple[str, str, "Fields | None"], ...]  # (response key, field name, sub-fields)


@dataclass(frozen=True, slots=True)
class Plan:
    """A barUpdates subscription the fast path can serve."""

    root_key: str
    fields: Fields
    tickers: list[str]
    interval: Any  # the GraphQL Interval enum member
    since: datetime | None
    session: Any = None  # the GraphQL Session enum member, or None for the symbol's default
    alignment: Any = None  # the GraphQL Alignment enum member
    adjust: Adjust | None = None  # from `adjustment` and `asOf`; None: raw bars


_DEFAULT_MAX_TOKENS: int = Settings.model_fields["max_tokens"].default


def plan(
    schema: Schema,
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    max_tokens: int = _DEFAULT_MAX_TOKENS,
) -> Plan | None:
    """The fast plan of a subscribe message, or None to let Strawberry run it.

    `max_tokens` is the connection's MAX_TOKENS: the subscribe path's limit check parsed the
    document under it already, so this finds it in the same cache entry.
    """
    if not isinstance(query, str) or len(query) > _MAX_QUERY:
        return None
    try:
        document = documents.parse_document(query, max_tokens)
    except Exception:
        return None
    if not all(isinstance(d, OperationDefinitionNode) for d in document.definitions):
        return None  # fragments
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation != OperationType.SUBSCRIPTION:
        return None
    roots = operation.selection_set.selections
    if operation.directives or len(roots) != 1:
        return None
    root = roots[0]
    if not isinstance(root, FieldNode) or root.name.value != "barUpdates" or root.directives:
        return None
    fields = _fields(root.selection_set, _UPDATE_FIELDS)
    if fields is None or _count(fields) > _MAX_FIELDS:
        return None  # many aliases: Strawberry's alias limit decides
    gschema = schema._schema
    if validate(gschema, document):
        return None  # Strawberry reports the errors in its own format
    coerced = get_variable_values(gschema, operation.variable_definitions or (), variables or {})
    if isinstance(coerced, list):
        return None
    assert gschema.subscription_type is not None
    field_def = gschema.subscription_type.fields["barUpdates"]
    try:
        args = get_argument_values(field_def, root, coerced)
    except Exception:
        return None
    return Plan(
        root.alias.value if root.alias else "barUpdates",
        fields,
        list(args["tickers"]),
        args["interval"],
        args.get("since"),
        args.get("session"),
        args.get("alignment"),
        adjust_of(args.get("adjustment", Adjustment.RAW), args.get("asOf")),
    )


def _fields(selection_set: SelectionSetNode | None, allowed: frozenset[str]) -> Fields | None:
    if selection_set is None:
        return None
    out: list[tuple[str, str, Fields | None]] = []
    for selection in selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.directives or selection.arguments:
            return None
        name = selection.name.value
        if name not in allowed:
            return None
        sub: Fields | None = None
        if name == "bar":
            sub = _fields(selection.selection_set, _BAR_FIELDS)
            if sub is None:
                return None
        elif selection.selection_set is not None:
            return None
        key = selection.alias.value if selection.alias else name
        if any(k == key for k, _, _ in out):
            return None  # merged fields: leave it to graphql-core
        out.append((key, name, sub))
    return tuple(out)


def _count(fields: Fields) -> int:
    return sum(1 + (_count(sub) if sub else 0) for _, _, sub in fields)


_rendered: OrderedDict[tuple[str, Fields, int], tuple[LiveBar, bytes]] = OrderedDict()


def render(plan: Plan, bar: LiveBar, ticker: str) -> bytes:
    """The `payload` of a next message for `bar` (shared by clients with the same selection)."""
    key = (plan.root_key, plan.fields, id(bar))
    hit = _rendered.get(key)
    if hit is not None and hit[0] is bar:  # the bar itself is kept, so its id is not reused
        return hit[1]
    data = {plan.root_key: _update(plan.fields, bar, ticker)}
    # A copy of exactly its length: orjson's result keeps at least a 4 KiB buffer, so 8,192
    # cached ~150-byte messages held 32 MB (benchmarks/soak.py found RSS growing here).
    payload = bytes(memoryview(orjson.dumps({"data": data})))
    _rendered[key] = (bar, payload)
    if len(_rendered) > _RENDERED_MAX:
        _rendered.popitem(last=False)
    return payload


def _update(fields: Fields, bar: LiveBar, ticker: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, name, sub in fields:
        if name == "bar":
            assert sub is not None
            out[key] = _bar(sub, bar)
        elif name == "ticker":
            out[key] = ticker
        elif name == "interval":
            out[key] = bar.interval.value
        elif name == "version":
            out[key] = float(bar.version)
        elif name == "replayed":
            out[key] = bar.replayed
        else:
            out[key] = "BarUpdate"
    return out


def _bar(fields: Fields, bar: LiveBar) -> dict[str, Any]:
    row = bar.row
    out: dict[str, Any] = {}
    for key, name, _ in fields:
        if name == "time":
            out[key] = row.ts.isoformat()  # as Strawberry's DateTime serializes
        elif name == "closed":
            out[key] = row.closed
        elif name == "filled":
            out[key] = False  # live bars are stored bars, never gap fills
        elif name == "__typename":
            out[key] = "Bar"
        else:
            out[key] = float(getattr(row, _BAR_VALUES[name]))
    return out


class Gone(Exception):
    """The client went away while the subscription was sending."""


async def run(context: Context, op_id: str, plan: Plan) -> None:
    """Stream the subscription to the client until its stream ends.

    Raises Gone when the connection closed under it (nothing more can be sent); any other
    exception is the stream's (bad arguments, unknown tickers, the database down), for the
    handler to report as Strawberry would (graphql_api.live.ws).
    """
    websocket = context.request
    assert isinstance(websocket, WebSocket)
    head = b'{"id":' + orjson.dumps(op_id) + b',"type":"next","payload":'
    stream = bar_stream(
        context,
        plan.tickers,
        plan.interval.core,
        plan.since,
        choice(plan.session, plan.alignment),
        plan.adjust,
    )
    async with aclosing(stream):
        async for bar, ticker in stream:
            message = (head + render(plan, bar, ticker) + b"}").decode()
            try:
                await websocket.send_text(message)
            except (WebSocketDisconnect, RuntimeError) as exc:
                # Starlette: WebSocketDisconnect once the peer is gone, RuntimeError
                # after the socket was closed (by a slow-consumer cut-off).
                raise Gone from exc
