"""The fast path's bulk leaf-list checks give what graphql-core's own completion gives.

A small schema run both ways (FastExecutionContext and the Strawberry context it extends) on
lists where the bulk checks must pass (plain floats, aware datetimes, huge but finite floats
whose sum overflows) and where they must hand over to the normal path (NaN, infinity, ints,
None in a non-null list, naive datetimes): data and errors must be the same.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import strawberry

from graphql_api.fastpath import FastExecutionContext

VALUES: dict[str, list[Any]] = {}


@strawberry.type
class Query:
    @strawberry.field
    def floats(self, name: str) -> list[float]:
        return VALUES[name]

    @strawberry.field
    def maybe_floats(self, name: str) -> list[float | None]:
        return VALUES[name]

    @strawberry.field
    def times(self, name: str) -> list[datetime]:
        return VALUES[name]


SCHEMAS = {
    "fast": strawberry.Schema(query=Query, execution_context_class=FastExecutionContext),
    "normal": strawberry.Schema(query=Query),
}
T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
CASES = {
    "plain": [1.5, 2.25, 1e-7, 123456.789],
    "overflowing_sum": [1.7e308, 1.7e308, -1.0],
    "nan": [1.0, math.nan, 2.0],
    "inf": [1.0, math.inf],
    "ints": [1, 2.5, 3],
    "none": [1.0, None, 2.0],
    "bools": [True, 1.0],
    "aware": [T0 + timedelta(minutes=i) for i in range(5)],
    "offsets": [T0, T0.astimezone(UTC).replace(tzinfo=None).replace(tzinfo=UTC)],
    "naive": [T0, T0.replace(tzinfo=None)],
}


def run(query: str, path: str) -> tuple[bytes, list[str]]:
    result = SCHEMAS[path].execute_sync(query)
    return orjson.dumps(result.data), sorted(e.message for e in result.errors or [])


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("field", ["floats", "maybeFloats", "times"])
def test_fast_and_normal_paths_agree(name: str, field: str) -> None:
    VALUES[name] = CASES[name]
    query = f'{{ {field}(name: "{name}") }}'
    fast = run(query, "fast")
    normal = run(query, "normal")
    assert fast == normal


def test_the_bulk_checks_accept_what_they_should() -> None:
    VALUES["plain"] = CASES["plain"]
    VALUES["overflowing_sum"] = CASES["overflowing_sum"]
    data, errors = run('{ a: floats(name: "plain") b: floats(name: "overflowing_sum") }', "fast")
    assert errors == []
    assert orjson.loads(data) == {"a": CASES["plain"], "b": CASES["overflowing_sum"]}


def test_bad_values_still_error_on_the_fast_path() -> None:
    VALUES["nan"] = CASES["nan"]
    VALUES["none"] = CASES["none"]
    data, nan_errors = run('{ floats(name: "nan") }', "fast")
    assert data == b"null"
    assert nan_errors == ["Float cannot represent non numeric value: nan"]
    data, none_errors = run('{ floats(name: "none") }', "fast")
    assert data == b"null"
    assert len(none_errors) == 1 and "null" in none_errors[0]
