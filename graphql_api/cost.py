"""Query cost analysis before execution, from literals and variables alike.

The cost approximates the number of objects a query can return: every field costs one per
parent object, and list fields multiply what is below them by the page size they ask for
(`first`/`last`, `maxPoints`, the number of `ids`) or by the default page size. A generated
client sends `first` as a variable, so arguments are read through the operation's variables
(the third-party analyser `graphql-complexity` crashed exactly there).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    value_from_ast_untyped,
)

from graphql_api.types.indicators import graphql_field_name
from indicators import INDICATORS

#: The largest cost reported (2**53 - 1, exact in every JSON client); larger costs are capped.
MAX_REPORTED_COST = 2**53 - 1


@dataclass(frozen=True)
class CostRules:
    """How list fields size their children."""

    default_page_size: int
    default_series_points: int = 1000
    #: Fields that return a page of objects when no size argument is given.
    paged_fields: frozenset[str] = frozenset({"symbols", "bars", "ingestJobs", "corporateActions"})
    #: Fields whose size comes from `maxPoints` (columnar series and indicators).
    point_fields: frozenset[str] = frozenset(
        {"series", *(graphql_field_name(spec) for spec in INDICATORS.values())}
    )


def _arg(node: FieldNode, name: str, variables: dict[str, Any]) -> Any:
    for arg in node.arguments or ():
        if arg.name.value == name:
            value: ValueNode = arg.value
            if isinstance(value, VariableNode):
                return variables.get(value.name.value)
            return value_from_ast_untyped(value, variables)
    return None


def _size(node: FieldNode, rules: CostRules, variables: dict[str, Any]) -> int:
    name = node.name.value
    for arg in ("first", "last"):
        value = _arg(node, arg, variables)
        if isinstance(value, int) and value >= 0:
            return value
    if name in rules.point_fields:
        value = _arg(node, "maxPoints", variables)
        return value if isinstance(value, int) and value > 0 else rules.default_series_points
    if name == "nodes":
        ids = _arg(node, "ids", variables)
        if isinstance(ids, list):
            return len(ids)
    if name == "sessions":
        return _day_span(_arg(node, "from", variables), _arg(node, "to", variables))
    if name in rules.paged_fields:
        return rules.default_page_size
    return 1


def _day_span(start: Any, end: Any) -> int:
    """Trading days `sessions(from, to)` can return: at most one per calendar day."""
    try:
        days = (date.fromisoformat(str(end)) - date.fromisoformat(str(start))).days
    except ValueError:
        return 1  # validation refuses the arguments before anything runs
    return max(1, days)


def _selection_cost(
    selection_set: SelectionSetNode | None,
    multiplier: int,
    fragments: dict[str, FragmentDefinitionNode],
    rules: CostRules,
    variables: dict[str, Any],
    seen: frozenset[str],
    memo: dict[str, int],
) -> int:
    if selection_set is None:
        return 0
    total = 0
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode):
            if sel.name.value.startswith("__"):
                total += multiplier
                continue
            size = _size(sel, rules, variables)
            total += multiplier
            total += _selection_cost(
                sel.selection_set,
                multiplier * max(size, 1),
                fragments,
                rules,
                variables,
                seen,
                memo,
            )
        elif isinstance(sel, InlineFragmentNode):
            total += _selection_cost(
                sel.selection_set, multiplier, fragments, rules, variables, seen, memo
            )
        elif isinstance(sel, FragmentSpreadNode):
            name = sel.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:  # cycles are a validation error
                # The cost is linear in the multiplier: each fragment is walked once per
                # document (a fragment spreading the next one twice would otherwise take
                # 2**n steps before any limit is checked).
                if name not in memo:
                    memo[name] = _selection_cost(
                        fragment.selection_set, 1, fragments, rules, variables, seen | {name}, memo
                    )
                total += multiplier * memo[name]
    return total


def query_cost(
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: dict[str, Any] | None,
    rules: CostRules,
) -> int:
    """The cost of running `operation` of `document` with `variables`."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    # A variable the request leaves out takes its default (`$n: Int = 5000`), as in execution.
    values = {
        d.variable.name.value: value_from_ast_untyped(d.default_value)
        for d in operation.variable_definitions or ()
        if d.default_value is not None
    }
    values.update(variables or {})
    cost = _selection_cost(operation.selection_set, 1, fragments, rules, values, frozenset(), {})
    # Beyond any limit; capped so the figure stays a JSON-safe integer in the error.
    return min(cost, MAX_REPORTED_COST)
