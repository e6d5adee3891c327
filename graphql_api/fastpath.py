"""A fast path for lists of plain records in graphql-core's execution.

graphql-core completes every field of every list item through several Python calls (path
objects, resolve info, completion dispatch): ~30 µs a field here, so 1,000 bars with cursors
took ~0.6 s. When a list's items are objects whose selected fields are all plain data —
attributes without resolvers, or synchronous argument-free resolvers such as `cursor` —
this execution context builds the item dicts in one tight loop, serializing leaves with the
same `serialize` functions graphql-core uses. Columns held as numpy arrays
(`loaders.columns.Column`, the series) become JSON in one orjson call, as an
`orjson.Fragment` in the result: whoever encodes the result must use orjson (graphql_api/http.py
does), and the normal path reads the same columns as lists of Python values.

It falls back to the normal path (re-running the whole list there, which is safe because
nothing on the fast path has side effects) whenever its conditions do not hold: arguments,
directives, deferred fields, abstract or nested list types, async resolvers, a null in a
non-null position (so the normal path produces the error), or a leaf that fails to serialize.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from operator import attrgetter
from typing import Any

import orjson
from graphql import (
    GraphQLEnumType,
    GraphQLFloat,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    Undefined,
)
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.field import StrawberryField

from loaders.columns import Column, FloatColumn, TimeColumn

ItemPlan = Callable[[Any], Any]


class _Fallback(Exception):
    """The fast path cannot produce exactly what the normal path would."""


def _getter(field_def: Any) -> Callable[[Any], Any] | None:
    sf = field_def.extensions.get("strawberry-definition")
    if not isinstance(sf, StrawberryField) or sf.permission_classes or sf.extensions:
        return None
    resolver = sf.base_resolver
    if resolver is None:
        return attrgetter(sf.python_name)
    if (
        resolver.is_async
        or resolver.arguments
        or resolver.info_parameter is not None
        or resolver.root_parameter is not None
        or resolver.parent_parameter is not None
        or resolver.self_parameter is None
    ):
        return None
    func: Callable[[Any], Any] = resolver.wrapped_func  # type: ignore[assignment]
    return lambda obj: func(obj)


def _is_non_null_float(gtype: Any) -> bool:
    return isinstance(gtype, GraphQLNonNull) and gtype.of_type is GraphQLFloat


def _finite_float(value: Any) -> float:
    """What GraphQLFloat.serialize returns for a non-null value, or _Fallback on error."""
    if value is None:
        raise _Fallback
    try:
        return float(GraphQLFloat.serialize(value))
    except Exception:
        raise _Fallback from None


_FLOAT_ONLY = frozenset({float})
_DATETIME_ONLY = frozenset({datetime})
_TZINFO = attrgetter("tzinfo")


def _leaf_list(item_type: GraphQLOutputType, values: list[Any]) -> list[Any] | None:
    """Columns of floats (chart series, indicators) completed in one pass; None: normal path."""
    nullable = not isinstance(item_type, GraphQLNonNull)
    inner = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
    # Columns a loader built and checked in numpy (loaders/columns.py): as they are.
    if values.__class__ is FloatColumn and inner is GraphQLFloat:
        if nullable or not values.has_null:
            return values
        return None
    if (
        values.__class__ is TimeColumn
        and isinstance(inner, GraphQLScalarType)
        and inner.name == "DateTime"
    ):
        return values
    if inner is GraphQLFloat:
        # Bulk checks in C first (100,000 points: ~1 ms against ~50 ms item by item): all
        # floats, and a finite sum, which a NaN or an infinity anywhere would spoil.
        if set(map(type, values)) <= _FLOAT_ONLY:
            total = sum(values)
            if total - total == 0.0:
                return values
        for v in values:
            # float (not bool/int subclasses), finite; None only where the type allows it.
            if v.__class__ is not float or v - v != 0.0:
                if v is None and nullable:
                    continue
                return None
        return values
    if (
        isinstance(inner, GraphQLScalarType)
        and inner.name == "DateTime"
        and set(map(type, values)) <= _DATETIME_ONLY
        and None not in map(_TZINFO, values)
    ):
        return values  # aware datetimes go to orjson as they are (see `_leaf`)
    if isinstance(inner, GraphQLScalarType | GraphQLEnumType):
        complete = _leaf(inner, nullable)
        try:
            return [complete(v) for v in values]
        except _Fallback:
            return None
    return None


_NULL = orjson.Fragment(b"null")

#: The GraphQL leaf type each numpy kind of a Column stands for.
_COLUMN_TYPES = {"f": "Float", "M": "DateTime", "b": "Boolean"}


def _column_json(item_type: GraphQLOutputType, column: Column) -> orjson.Fragment | None:
    """A numpy-backed column (loaders.columns) as the JSON array the normal path would write,
    made by orjson in one call: the response's encoder copies it in as it is. None: take the
    normal path (another item type, or a value GraphQL refuses, which it then reports)."""
    inner = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
    if not isinstance(inner, GraphQLScalarType) or _COLUMN_TYPES.get(column.kind) != inner.name:
        return None
    encoded = column.json()
    return None if encoded is None else orjson.Fragment(encoded)


def _leaf(gtype: GraphQLScalarType | GraphQLEnumType, nullable: bool) -> ItemPlan:
    serialize = gtype.serialize
    if gtype.name == "DateTime":
        # orjson writes an aware datetime exactly as Strawberry's serializer (isoformat) would,
        # so the object itself goes to the encoder and the string is built once, in C.
        def complete_datetime(value: Any) -> Any:
            if value.__class__ is datetime and value.tzinfo is not None:
                return value
            if value is None:
                if nullable:
                    return None
                raise _Fallback
            try:
                return serialize(value)
            except Exception:
                raise _Fallback from None

        return complete_datetime

    def complete(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise _Fallback
        try:
            out = serialize(value)
        except Exception:
            raise _Fallback from None
        if out is None or out is Undefined:
            raise _Fallback
        return out

    return complete


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with the plain-record list fast path."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fast_plans: dict[tuple[int, int], tuple[Any, ItemPlan | None]] = {}

    def _object_plan(self, otype: GraphQLObjectType, fdl: Any) -> ItemPlan | None:
        key = (id(otype), id(fdl))
        cached = self._fast_plans.get(key)
        if cached is not None:
            return cached[1]
        plan = self._build_object_plan(otype, fdl)
        self._fast_plans[key] = (fdl, plan)  # keep fdl alive so its id stays unique
        return plan

    def _build_object_plan(self, otype: GraphQLObjectType, fdl: Any) -> ItemPlan | None:
        collected = self.collect_subfields(otype, fdl)
        if collected.new_defer_usages or collected.forbidden_directive_instances:
            return None
        # The item builder is generated code: one dict display with every field inlined runs
        # several times faster than a loop over (key, getter, completer) triples.
        namespace: dict[str, Any] = {"_Fallback": _Fallback, "_finite": _finite_float}
        parts: list[str] = []
        for i, (response_key, details) in enumerate(collected.grouped_field_set.items()):
            nodes = [d.node for d in details]
            if any(d.defer_usage is not None or d.fragment_variable_values for d in details):
                return None
            if any(n.arguments or n.directives for n in nodes):
                return None
            name = nodes[0].name.value
            if name == "__typename":
                parts.append(f"{response_key!r}: {otype.name!r}")
                continue
            field_def = otype.fields.get(name)
            if field_def is None:
                return None
            getter = _getter(field_def)
            if getter is None:
                return None
            namespace[f"g{i}"] = getter
            gtype = field_def.type
            if gtype is GraphQLNonNull(GraphQLFloat) or _is_non_null_float(gtype):
                # Inline the common case (a finite float); anything else gets the full check.
                parts.append(
                    f"{response_key!r}: (v if (v := g{i}(obj)).__class__ is float "
                    f"and v - v == 0.0 else _finite(v))"
                )
                continue
            complete = self._value_plan(gtype, details)
            if complete is None:
                return None
            namespace[f"c{i}"] = complete
            parts.append(f"{response_key!r}: c{i}(g{i}(obj))")
        # Types implementing an interface get Strawberry's is_type_of (an isinstance check that
        # ignores `info`); a False or non-bool answer sends the list down the normal path.
        check = ""
        if otype.is_type_of is not None:
            namespace["is_type_of"] = otype.is_type_of
            check = "    if is_type_of(obj, None) is not True:\n        raise _Fallback\n"
        source = "def build(obj):\n" + check + "    return {" + ", ".join(parts) + "}\n"
        exec(source, namespace)
        build: ItemPlan = namespace["build"]
        return build

    def _value_plan(self, gtype: GraphQLOutputType, fdl: Any) -> ItemPlan | None:
        nullable = not isinstance(gtype, GraphQLNonNull)
        inner = gtype.of_type if isinstance(gtype, GraphQLNonNull) else gtype
        if isinstance(inner, GraphQLScalarType | GraphQLEnumType):
            return _leaf(inner, nullable)
        if isinstance(inner, GraphQLObjectType):
            plan = self._object_plan(inner, fdl)
            if plan is None:
                return None

            def complete(value: Any) -> Any:
                if value is None:
                    if nullable:
                        return None
                    raise _Fallback
                return plan(value)

            return complete
        return None  # lists, interfaces and unions take the normal path

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: Any,
        info: GraphQLResolveInfo,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        if isinstance(result, Column):
            sink = getattr(self.context_value, "column_sink", None)
            if sink is not None:
                sink[tuple(path.as_list())] = result
                if not sink.json:
                    return _NULL
            fragment = _column_json(return_type.of_type, result)
            if fragment is not None:
                return fragment
            result = result.values()
        if isinstance(result, list) and len(result) > 1:
            leaves = _leaf_list(return_type.of_type, result)
            if leaves is not None:
                return leaves
            item = self._value_plan(return_type.of_type, field_details_list)
            if item is not None:
                try:
                    return [item(value) for value in result]
                except _Fallback:
                    pass
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )
