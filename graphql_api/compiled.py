"""Compiled operations: a query document planned once, answered by one SQL statement.

The common shapes frontends send (a page of symbols, one symbol, their bar pages and latest
bars) are turned, once per document, into a plan; each request then fills the plan's
parameters from its variables and runs one statement in which PostgreSQL builds the whole
`data` object as JSON. The service splices that text into the response: no resolver, no
loader, no Python object per row or field.

A plan covers only what it can answer exactly as the reference path (Strawberry, with the
loaders) would, and hands every other request to it:

- at compile time: fields, arguments and fragments outside the shapes below, directives,
  and documents that fail validation (the reference path reports the errors);
- at run time (`Decline`): argument values the reference path would refuse or treat
  specially (page sizes out of range, malformed or foreign cursors, sessions other than
  ALL, fills, adjustments, `from`/`to`, backward paging);
- in the statement itself (its `ok` column): a symbol whose bars need more than a plain read
  of one stored timeframe, that is a symbol not on the 24/7 calendar, or whose bars at the
  interval come from a finer stored timeframe (resampling).

Bars of a 24/7 symbol at a stored interval are the stored rows themselves: no session
filter, no bucketing (`graphql_api/bar_queries.py` takes that path for them too). The
suite runs with VERIFY_FAST_PATH on, which runs the reference path beside every plan and
compares the two answers (`graphql_api/http.py`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    VariableNode,
    validate,
    value_from_ast,
)
from graphql.execution.values import VariableValues, get_variable_values

from core.calendars import ALWAYS_OPEN
from core.errors import ApiError
from core.intervals import Interval
from core.settings import Settings
from graphql_api.cursors import decode_bar_cursor, parse_symbol_cursor


class Unsupported(Exception):
    """The document has a part no plan covers: the reference path serves it."""


class Decline(Exception):
    """This request's values are outside the plan: the reference path serves it."""


#: Most fields selected on one object (a bound on the statement's size).
_MAX_KEYS = 50


def _q(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


# The statement writes JSON text by concatenation: json_build_object looks up the type of
# every argument on every call, and took twice the time per bar (5.5 ms against 2.8 ms for
# 2,000 bars). Every expression below is JSON text and never NULL.


def _string(expr: str) -> str:
    return f"to_json({expr}::text)::text"


def _bool(expr: str) -> str:
    return f"({expr})::text"


def _float(expr: str) -> str:
    # float8's text output is the shortest exact form (`1e+300`, `-0`): valid JSON numbers.
    # Stored prices and volumes are finite (workers/validation.py refuses the rest).
    return f"({expr})::text"


def _nullable(expr: str) -> str:
    return f"coalesce({expr}, 'null')"


def _b64(expr: str, *, padded: bool) -> str:
    # encode(..., 'base64') breaks lines every 76 characters: the newline goes with the
    # alphabet change (translate drops characters it has no replacement for).
    # textsend: the text's bytes in the client's encoding (asyncpg's is UTF-8), a third
    # cheaper than convert_to, which looks the encoding up by name on every call.
    out = f"translate(encode(textsend({expr}), 'base64'), E'+/\\n', '-_')"
    return out if padded else f"rtrim({out}, '=')"


def _time(expr: str) -> str:
    """A timestamptz as the DateTime scalar writes it (`datetime.isoformat()` in UTC)."""
    whole = f"to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
    fraction = f"to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
    return (
        f"('\"' || CASE WHEN {expr} = date_trunc('second', {expr}) THEN {whole} "
        f"ELSE {fraction} END || '+00:00\"')"
    )


def _symbol_cursor(ticker: str) -> str:
    """graphql_api/cursors.py's `symbol_cursor`, as JSON text."""
    return "('\"' || " + _b64(f"'v1:sym:' || {ticker}", padded=False) + " || '\"')"


def _bar_cursor(symbol_id: str, interval: str, ts: str) -> str:
    """graphql_api/cursors.py's `bar_cursor`, as JSON text (extract is exact: numeric)."""
    micros = f"(extract(epoch FROM {ts}) * 1000000)::bigint"
    raw = f"'v2:bar:' || {symbol_id} || ':' || {interval} || ':' || {micros}"
    return "('\"' || " + _b64(raw, padded=False) + " || '\"')"


def _object(pairs: list[tuple[str, str]]) -> str:
    """A JSON object of (key, JSON text expression) pairs; keys are GraphQL names."""
    if not pairs:
        return "'{}'"
    out, literal = [], "{"
    for i, (key, expr) in enumerate(pairs):
        literal += ("," if i else "") + f'"{key}":'
        out.append(_q(literal))
        out.append(expr)
        literal = ""
    out.append("'}'")
    return "(" + " || ".join(out) + ")"


def _array(item: str, keep: str) -> str:
    # No ORDER BY: rows arrive in the order of the subquery's ORDER BY ... LIMIT, which plain
    # aggregates keep (as loaders/bars.py relies on too); a sorted aggregate sorted each
    # symbol's page again and made q1 of the PostGraphile kit ~1.6x slower in PostgreSQL.
    agg = f"string_agg({item}, ',') FILTER (WHERE {keep})"
    return f"('[' || coalesce({agg}, '') || ']')"


class Build:
    """One request's statement in the making: its parameters, the checks of the row scope
    being built (conditions a symbol must meet for the plan's answer to be exact), and the
    choices the values made (`shape`).

    With `render` off only the parameters and the shape are made: the text is the same for
    every request of one shape, so `Plan.statement` renders it once per shape (writing it
    took 25-200 us a request, more than the rest of the request's own Python work).
    """

    def __init__(self, variables: VariableValues, settings: Settings, render: bool) -> None:
        self.variables = variables
        self.settings = settings
        self.render = render
        self.args: list[Any] = []
        self.checks: list[list[str]] = []
        self.shape: list[Any] = []
        self._names = 0

    def param(self, value: Any, cast: str) -> str:
        self.args.append(value)
        return f"${len(self.args)}::{cast}"

    def name(self, prefix: str) -> str:
        self._names += 1
        return f"{prefix}{self._names}"


class Arguments:
    """A field's argument values from a request's variables, as graphql-core's
    `get_argument_values` gives them, with what does not depend on the variables (literals,
    defaults) worked out once at compile time: for a bars field it took ~40 us a request."""

    def __init__(self, field_def: GraphQLField, node: FieldNode) -> None:
        given = {a.name.value: a.value for a in node.arguments or ()}
        self.fixed: dict[str, Any] = {}
        self.variables: list[tuple[str, str, Any]] = []
        for name, arg in field_def.args.items():
            value = given.get(name)
            if value is None:
                if arg.default_value is not Undefined:
                    self.fixed[name] = _internal(arg.default_value)
            elif isinstance(value, VariableNode):
                self.variables.append((name, value.name.value, arg.default_value))
            else:
                literal = value_from_ast(value, arg.type)
                if literal is Undefined:  # holds a variable deeper down: not planned
                    raise Unsupported("variables inside a literal")
                self.fixed[name] = _internal(literal)

    def __call__(self, variables: VariableValues) -> dict[str, Any]:
        out = dict(self.fixed)
        coerced = variables.coerced
        for name, variable, default in self.variables:
            if variable in coerced:
                out[name] = _internal(coerced[variable])
            elif default is not Undefined:
                out[name] = _internal(default)
        return out


def _internal(value: Any) -> Any:
    """Enum members as their values (Strawberry's enums reach graphql-core as members)."""
    return getattr(value, "value", value)


#: A selection's JSON text expression, given the build and the alias of the row it reads.
Emit = Callable[[Build, str], str]
#: Compiles one field of an object type.
Handler = Callable[[FieldNode, GraphQLField], Emit]


@dataclass(frozen=True)
class Selection:
    key: str
    emit: Emit
    #: Whether the emit adds parameters (nested pages), so it runs when only those are made.
    nested: bool = False


def _emit_object(selections: list[Selection], build: Build, row: str) -> str:
    if not build.render:
        for s in selections:
            if s.nested:
                s.emit(build, row)
        return ""
    return _object([(s.key, s.emit(build, row)) for s in selections])


def _const(sql: str) -> Emit:
    return lambda build, row: sql


def _column(template: str) -> Handler:
    def handler(node: FieldNode, field_def: GraphQLField) -> Emit:
        if node.arguments:
            raise Unsupported("arguments")
        return lambda build, row: template.format(row=row)

    return handler


def _key(node: FieldNode) -> str:
    return (node.alias or node.name).value


def _selections(node: FieldNode) -> SelectionSetNode:
    if node.selection_set is None:
        raise Unsupported("no selection")
    return node.selection_set


@dataclass(frozen=True)
class Connection:
    """The selections of a Relay connection: (key, kind, detail) per field, where kind is
    `typename`, `pageInfo` (detail: [(key, PageInfo field)]), `nodes` (detail: the node's
    selections) or `edges` (detail: [(key, kind, node selections)] with kind `typename`,
    `cursor` or `node`)."""

    name: str
    page_info: str
    edge: str
    parts: list[tuple[str, str, Any]]

    def emit(
        self,
        build: Build,
        row: str,
        keep: str,
        cursor: Callable[[str], str],
        page: dict[str, str],
    ) -> str:
        """The connection's JSON over rows `row` (those passing `keep`, in their order);
        `cursor(alias)` is a row's cursor, `page` PageInfo's fields by name."""
        if not build.render:
            for _, kind, detail in self.parts:
                if kind == "nodes":
                    _emit_object(detail, build, row)
                elif kind == "edges":
                    for _, ekind, esub in detail:
                        if ekind == "node":
                            _emit_object(esub, build, row)
            return ""
        out = []
        for key, kind, detail in self.parts:
            if kind == "typename":
                out.append((key, _q(f'"{self.name}"')))
            elif kind == "pageInfo":
                fields = [
                    (k, _q(f'"{self.page_info}"') if n == "__typename" else page[n])
                    for k, n in detail
                ]
                out.append((key, _object(fields)))
            elif kind == "nodes":
                out.append((key, _array(_emit_object(detail, build, row), keep)))
            else:
                fields = []
                for ekey, ekind, esub in detail:
                    if ekind == "typename":
                        fields.append((ekey, _q(f'"{self.edge}"')))
                    elif ekind == "cursor":
                        fields.append((ekey, cursor(row)))
                    else:
                        fields.append((ekey, _emit_object(esub, build, row)))
                out.append((key, _array(_object(fields), keep)))
        return _object(out)


#: Fields whose emit adds parameters of its own.
_NESTED = frozenset({"bars", "latestBar"})


class Compiler:
    """Turns an operation into a `Plan`, or raises Unsupported."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        self.schema = schema
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def fields(self, parent: GraphQLObjectType, selection_set: SelectionSetNode) -> list[FieldNode]:
        """The field nodes of a selection set on `parent`, fragments flattened; a response
        key selected twice is not covered (merging them is the reference path's work)."""
        out: list[FieldNode] = []
        names = {parent.name, *(i.name for i in parent.interfaces)}
        queue = [selection_set]
        seen: set[str] = set()
        while queue:
            for sel in queue.pop(0).selections:
                if sel.directives:
                    raise Unsupported("directives")
                if isinstance(sel, FieldNode):
                    out.append(sel)
                elif isinstance(sel, InlineFragmentNode):
                    cond = sel.type_condition
                    if cond is not None and cond.name.value not in names:
                        raise Unsupported("fragment on another type")
                    queue.append(sel.selection_set)
                elif isinstance(sel, FragmentSpreadNode):
                    fragment = self.fragments.get(sel.name.value)
                    if fragment is None or fragment.directives or sel.name.value in seen:
                        raise Unsupported("fragment")
                    if fragment.type_condition.name.value not in names:
                        raise Unsupported("fragment on another type")
                    seen.add(sel.name.value)
                    queue.append(fragment.selection_set)
        keys = [_key(f) for f in out]
        if len(set(keys)) != len(keys) or len(keys) > _MAX_KEYS:
            raise Unsupported("merged or too many fields")
        return out

    def object(
        self,
        parent: GraphQLObjectType,
        selection_set: SelectionSetNode | None,
        handlers: dict[str, Handler],
    ) -> list[Selection]:
        if selection_set is None:
            raise Unsupported("no selection")
        out = []
        for node in self.fields(parent, selection_set):
            name = node.name.value
            if name == "__typename":
                out.append(Selection(_key(node), _const(_q(f'"{parent.name}"'))))
                continue
            handler = handlers.get(name)
            if handler is None:
                raise Unsupported(f"{parent.name}.{name}")
            nested = name in _NESTED
            out.append(Selection(_key(node), handler(node, parent.fields[name]), nested))
        return out

    def object_type(self, t: Any) -> GraphQLObjectType:
        while isinstance(t, GraphQLNonNull | GraphQLList):
            t = t.of_type
        if not isinstance(t, GraphQLObjectType):
            raise Unsupported("abstract type")
        return t

    def connection(self, field_def: GraphQLField, node: FieldNode, item: Handler) -> Connection:
        conn = self.object_type(field_def.type)
        edge = self.object_type(conn.fields["edges"].type)
        page_info = self.object_type(conn.fields["pageInfo"].type)
        parts: list[tuple[str, str, Any]] = []
        for sub in self.fields(conn, _selections(node)):
            name = sub.name.value
            if sub.arguments:
                raise Unsupported("arguments")
            if name == "__typename":
                parts.append((_key(sub), "typename", None))
            elif name == "pageInfo":
                page_fields = []
                for p in self.fields(page_info, _selections(sub)):
                    if p.arguments:
                        raise Unsupported("arguments")
                    page_fields.append((_key(p), p.name.value))
                parts.append((_key(sub), "pageInfo", page_fields))
            elif name == "nodes":
                parts.append((_key(sub), "nodes", item(sub, conn.fields["nodes"])))
            elif name == "edges":
                edge_parts: list[tuple[str, str, Any]] = []
                for e in self.fields(edge, _selections(sub)):
                    if e.arguments:
                        raise Unsupported("arguments")
                    ename = e.name.value
                    if ename == "__typename":
                        edge_parts.append((_key(e), "typename", None))
                    elif ename == "cursor":
                        edge_parts.append((_key(e), "cursor", None))
                    elif ename == "node":
                        edge_parts.append((_key(e), "node", item(e, edge.fields["node"])))
                    else:
                        raise Unsupported(f"{edge.name}.{ename}")
                parts.append((_key(sub), "edges", edge_parts))
            else:
                raise Unsupported(f"{conn.name}.{name}")
        return Connection(conn.name, page_info.name, edge.name, parts)

    # --- Symbol ---------------------------------------------------------------------------

    def symbol(self, node: FieldNode, field_def: GraphQLField | None = None) -> Any:
        handlers: dict[str, Handler] = {
            "id": _column("('\"' || " + _b64("'Symbol:' || {row}.id", padded=True) + " || '\"')"),
            "ticker": _column(_string("{row}.ticker")),
            "name": _column(_string("{row}.name")),
            "exchange": _column(_string("{row}.exchange")),
            "assetClass": _column(_string("{row}.asset_class")),
            "currency": _column(_string("{row}.currency")),
            "timezone": _column(_string("{row}.timezone")),
            "calendar": _column(_string("{row}.calendar")),
            "active": _column(_bool("{row}.active")),
            "createdAt": _column(_time("{row}.created_at")),
            "updatedAt": _column(_time("{row}.updated_at")),
            "bars": self.bars,
            "latestBar": self.latest_bar,
        }
        return self.object(
            self.object_type(self.schema.type_map["Symbol"]), node.selection_set, handlers
        )

    # --- Bars -----------------------------------------------------------------------------

    def bar(self, node: FieldNode, field_def: GraphQLField | None = None) -> Any:
        prices_type = self.object_type(self.schema.type_map["BarPrices"])
        price_handlers = {
            n: _column(_float("{row}." + n)) for n in ("open", "high", "low", "close")
        }

        def prices(sub: FieldNode, fd: GraphQLField) -> Emit:
            if sub.arguments:
                raise Unsupported("arguments")
            inner = self.object(prices_type, sub.selection_set, price_handlers)
            return lambda build, row: _emit_object(inner, build, row)

        handlers: dict[str, Handler] = {
            "time": _column(_time("{row}.ts")),
            **{
                n: _column(_float("{row}." + n)) for n in ("open", "high", "low", "close", "volume")
            },
            # Stored bars at their own timeframe are complete and fill no slots; a 24/7
            # calendar has no sessions, so no session instants (graphql_api/types/bars.py).
            "closed": _column("'true'"),
            "filled": _column("'false'"),
            "prices": prices,
            "sessionOpen": _column("'null'"),
            "sessionClose": _column("'null'"),
        }
        return self.object(
            self.object_type(self.schema.type_map["Bar"]), node.selection_set, handlers
        )

    def bars(self, node: FieldNode, field_def: GraphQLField) -> Emit:
        conn = self.connection(field_def, node, self.bar)
        arguments = Arguments(field_def, node)

        def emit(build: Build, s: str) -> str:
            page = _bar_page(build, arguments(build.variables))
            interval = build.param(page.interval.value, "text")
            build.checks[-1].append(_bars_check(build, s, page, interval))
            size = build.param(page.size, "int")
            y = build.name("y")
            if not build.render:
                conn.emit(build, y, "", str, {})
                _bar_rows(build, s, page, interval, size)
                return ""
            keep = f"{y}.rn <= {size}"
            first, last = ("max", "min") if page.newest_first else ("min", "max")

            def cursor(row: str) -> str:
                return _bar_cursor(f"{s}.id", interval, f"{row}.ts")

            info = {
                "hasNextPage": _bool(f"count(*) > {size}"),
                "hasPreviousPage": "'true'" if page.after else "'false'",
                "startCursor": _nullable(
                    _bar_cursor(f"{s}.id", interval, f"{first}({y}.ts) FILTER (WHERE {keep})")
                ),
                "endCursor": _nullable(
                    _bar_cursor(f"{s}.id", interval, f"{last}({y}.ts) FILTER (WHERE {keep})")
                ),
            }
            body = conn.emit(build, y, keep, cursor, info)
            rows = _bar_rows(build, s, page, interval, size)
            return (
                f"(SELECT {body} FROM (SELECT r.*, row_number() OVER () AS rn FROM ({rows}) r) {y})"
            )

        return emit

    def latest_bar(self, node: FieldNode, field_def: GraphQLField) -> Emit:
        bar = self.bar(node)
        arguments = Arguments(field_def, node)

        def emit(build: Build, s: str) -> str:
            page = _bar_page(build, {**arguments(build.variables), "first": 1})
            interval = build.param(page.interval.value, "text")
            build.checks[-1].append(_bars_check(build, s, page, interval))
            y = build.name("y")
            body = _emit_object(bar, build, y)
            rows = _bar_rows(build, s, page, interval, "0")
            if not build.render:
                return ""
            return _nullable(f"(SELECT {body} FROM ({rows}) {y})")

        return emit

    # --- Roots ----------------------------------------------------------------------------

    def root(self, node: FieldNode, field_def: GraphQLField) -> Root:
        name = node.name.value
        if name == "symbol":
            return SymbolRoot(_key(node), node, field_def, self.symbol(node))
        if name == "symbols":
            return SymbolsRoot(
                _key(node), node, field_def, self.connection(field_def, node, self.symbol)
            )
        raise Unsupported(f"Query.{name}")


@dataclass(frozen=True)
class BarPage:
    """A bars page as a plan serves it: forward paging over the stored rows."""

    interval: Interval
    size: int
    newest_first: bool
    after: str | None
    after_symbol: int | None
    after_micros: int | None

    @property
    def direction(self) -> str:
        return "DESC" if self.newest_first else "ASC"


def _bar_page(build: Build, a: dict[str, Any]) -> BarPage:
    """The page a plan reads, or Decline where the reference path must decide."""
    settings = build.settings
    for name in ("from", "to", "last", "before", "asOf"):
        if a.get(name) is not None:
            raise Decline(name)
    if a.get("session") not in (None, "ALL"):
        raise Decline("session")
    if a.get("fill", "NONE") != "NONE" or a.get("adjustment", "RAW") != "RAW":
        raise Decline("fill or adjustment")
    first = a.get("first")
    default = min(settings.default_page_size, settings.max_page_size_bars)
    size = first if first is not None else default
    if not 0 < size <= settings.max_page_size_bars:
        raise Decline("first")
    interval = Interval(a["interval"])
    after = a.get("after")
    symbol = micros = None
    if after is not None:
        try:
            symbol, code, micros = decode_bar_cursor(after)
        except ApiError:
            raise Decline("after") from None
        if code != interval.value:
            raise Decline("after")
    newest_first = a.get("order", "NEWEST_FIRST") == "NEWEST_FIRST"
    build.shape.append((newest_first, after is not None, interval))
    return BarPage(interval, size, newest_first, after, symbol, micros)


@functools.cache
def _finer(interval: Interval) -> list[str]:
    """The other timeframes that divide `interval` (a stored one would be resampled)."""
    return [i.value for i in Interval if i != interval and i.divides(interval)]


def _bars_check(build: Build, s: str, page: BarPage, interval: str) -> str:
    """Where a plain read of the stored rows is exactly the reference path's answer: a 24/7
    symbol whose finest stored timeframe dividing the interval is the interval itself."""
    finer = _finer(page.interval)
    check = (
        f"{s}.calendar = {_q(ALWAYS_OPEN)} AND EXISTS (SELECT 1 FROM bar_series bs "
        f"WHERE bs.symbol_id = {s}.id AND bs.timeframe = {interval})"
    )
    if finer:
        check += (
            " AND NOT EXISTS (SELECT 1 FROM bar_series bs WHERE bs.symbol_id = "
            f"{s}.id AND bs.timeframe = ANY({build.param(finer, 'text[]')}))"
        )
    if page.after_symbol is not None:
        # Another symbol's cursor is the reference path's error to report.
        check += f" AND {s}.id = {build.param(page.after_symbol, 'int')}"
    return f"({check})" if build.render else ""


def _bar_rows(build: Build, s: str, page: BarPage, interval: str, size: str) -> str:
    conds = [
        f"symbol_id = {s}.id",
        f"timeframe = {interval}",
        # The reference path reads up to the end of the newest bar the series records.
        f"ts <= (SELECT last_ts FROM bar_series WHERE symbol_id = {s}.id "
        f"AND timeframe = {interval})",
    ]
    if page.after_micros is not None:
        at = build.param(page.after_micros, "bigint")
    if not build.render:
        return ""
    if page.after_micros is not None:
        edge = f"(timestamptz 'epoch' + {at} * interval '1 microsecond')"
        conds.append(f"ts {'<' if page.newest_first else '>'} {edge}")
    return (
        "SELECT ts, open, high, low, close, volume FROM bars WHERE "
        + " AND ".join(conds)
        + f" ORDER BY ts {page.direction} LIMIT {size} + 1"
    )


@dataclass
class Root:
    """A root field: a FROM item giving its JSON text (`j`) and whether it is exact (`ok`)."""

    key: str

    def from_item(self, build: Build, alias: str) -> str | None:
        return None


@dataclass
class TypenameRoot(Root):
    pass


@dataclass
class SymbolRoot(Root):
    node: FieldNode
    field_def: GraphQLField
    selections: list[Selection]

    def __post_init__(self) -> None:
        self.arguments = Arguments(self.field_def, self.node)

    def from_item(self, build: Build, alias: str) -> str:
        a = self.arguments(build.variables)
        ticker = build.param(str(a["ticker"]).strip().upper(), "text")
        s = build.name("s")
        build.checks.append([])
        body = _emit_object(self.selections, build, s)
        checks = " AND ".join(build.checks.pop()) or "true"
        if not build.render:
            return ""
        return (
            f"(SELECT CASE WHEN {s}.id IS NULL THEN 'null' ELSE {body} END AS j, "
            f"({s}.id IS NULL OR ({checks})) AS ok "
            f"FROM (SELECT 1) one LEFT JOIN symbols {s} ON {s}.ticker = {ticker}) {alias}"
        )


@dataclass
class SymbolsRoot(Root):
    node: FieldNode
    field_def: GraphQLField
    connection: Connection

    def __post_init__(self) -> None:
        self.arguments = Arguments(self.field_def, self.node)

    def from_item(self, build: Build, alias: str) -> str:
        a = self.arguments(build.variables)
        settings = build.settings
        for name in ("filter", "last", "before"):
            if a.get(name) is not None:
                raise Decline(name)
        first = a.get("first")
        default = min(settings.default_page_size, settings.max_page_size_symbols)
        size = first if first is not None else default
        if not 0 < size <= settings.max_page_size_symbols:
            raise Decline("first")
        after = a.get("after")
        where = ""
        if after is not None:
            try:
                where = f"WHERE s.ticker > {build.param(parse_symbol_cursor(after), 'text')}"
            except ApiError:
                raise Decline("after") from None
        n = build.param(size, "int")
        x = build.name("x")
        build.shape.append(after is not None)
        if not build.render:
            build.checks.append([])
            self.connection.emit(build, x, "", str, {})
            build.checks.pop()
            return ""
        keep = f"{x}.rn <= {n}"
        info = {
            "hasNextPage": _bool(f"count(*) > {n}"),
            "hasPreviousPage": "'true'" if after is not None else "'false'",
            "startCursor": _nullable(_symbol_cursor(f"min({x}.ticker) FILTER (WHERE {keep})")),
            "endCursor": _nullable(_symbol_cursor(f"max({x}.ticker) FILTER (WHERE {keep})")),
        }
        build.checks.append([])
        body = self.connection.emit(
            build, x, keep, lambda row: _symbol_cursor(f"{row}.ticker"), info
        )
        checks = " AND ".join(build.checks.pop()) or "true"
        return (
            f"(SELECT {body} AS j, coalesce(bool_and({checks}) FILTER (WHERE {keep}), true) "
            f"AS ok FROM (SELECT s.*, row_number() OVER (ORDER BY s.ticker) AS rn FROM "
            f"symbols s {where} ORDER BY s.ticker LIMIT {n} + 1) {x}) {alias}"
        )


#: How long a plan whose statement found a symbol it does not cover stays out of the way of
#: the same request (same arguments): the resolvers answer it without a wasted statement.
DECLINED_SECONDS = 60.0
#: Declined argument sets remembered per plan (forgotten all at once past this).
_MAX_DECLINED = 256
#: Statement texts kept per plan, one per shape (which optional arguments are given, the
#: order and interval of each bars page).
_MAX_SHAPES = 64


@dataclass
class Plan:
    """An operation's statement, built per request from its variables."""

    schema: GraphQLSchema
    operation: OperationDefinitionNode
    roots: list[Root] = field(default_factory=list)
    _declined: dict[tuple[Any, ...], float] = field(default_factory=dict)
    _sql: dict[tuple[Any, ...], str] = field(default_factory=dict)

    def declined(self, args: list[Any]) -> bool:
        """Whether the statement with these arguments found, within DECLINED_SECONDS, a
        symbol the plan does not cover (its answer would be thrown away again)."""
        at = self._declined.get(_hashable(args))
        return at is not None and time.monotonic() - at < DECLINED_SECONDS

    def note_declined(self, args: list[Any]) -> None:
        if len(self._declined) >= _MAX_DECLINED:
            self._declined.clear()
        self._declined[_hashable(args)] = time.monotonic()

    def statement(
        self, variables: dict[str, Any] | None, settings: Settings
    ) -> tuple[str, list[Any]]:
        """The SQL (one row: `j` the data as JSON text, `ok` whether the plan's answer is
        exact) and its arguments; Decline when these variables are the reference path's."""
        coerced = get_variable_values(
            self.schema, self.operation.variable_definitions or (), variables or {}
        )
        if isinstance(coerced, list):
            raise Decline("variables")
        build = Build(coerced, settings, render=False)
        self._build(build)
        key = tuple(build.shape)
        sql = self._sql.get(key)
        if sql is None:
            rendering = Build(coerced, settings, render=True)
            sql = self._build(rendering)
            # Both passes ran the same code on the same values: the same parameters.
            assert rendering.args == build.args
            if len(self._sql) >= _MAX_SHAPES:
                self._sql.clear()
            self._sql[key] = sql
        return sql, build.args

    def _build(self, build: Build) -> str:
        items, pairs, oks = [], [], []
        for i, root in enumerate(self.roots):
            alias = f"r{i}"
            item = root.from_item(build, alias)
            if item is None:
                pairs.append((root.key, "'\"Query\"'"))
                continue
            items.append(item)
            pairs.append((root.key, f"{alias}.j"))
            oks.append(f"{alias}.ok")
        if not build.render:
            return ""
        sql = f"SELECT {_object(pairs)} AS j, {' AND '.join(oks) or 'true'} AS ok"
        if items:
            sql += " FROM " + ", ".join(items)
        return sql


def _hashable(args: list[Any]) -> tuple[Any, ...]:
    return tuple(tuple(a) if isinstance(a, list) else a for a in args)


def compile_plan(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
) -> Plan | None:
    """The plan of a query operation, or None when the reference path must serve it."""
    if operation.operation != OperationType.QUERY or operation.directives:
        return None
    if any(d.directives for d in operation.variable_definitions or ()):
        return None
    if validate(schema, document):
        return None
    compiler = Compiler(schema, document)
    query = schema.query_type
    assert query is not None
    plan = Plan(schema, operation)
    try:
        for node in compiler.fields(query, operation.selection_set):
            if node.name.value == "__typename":
                plan.roots.append(TypenameRoot(_key(node)))
            else:
                field_def = query.fields.get(node.name.value)
                if field_def is None:  # __schema, __type: introspection is not planned
                    return None
                plan.roots.append(compiler.root(node, field_def))
    except Unsupported:
        return None
    return plan
