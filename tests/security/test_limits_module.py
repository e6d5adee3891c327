"""Every document limit lives in graphql_api.limits: the transports call it, and a cached
document is walked for its limits once, not per request."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from graphql import OperationDefinitionNode

from graphql_api.auth import anonymous
from graphql_api.limits import LimitError, Limits
from graphql_api.schema import build_schema
from tests.conftest import migrated_settings

API = Path(__file__).resolve().parents[2] / "graphql_api"
#: Names that mean "a limit is checked here".
LIMIT_CHECKS = re.compile(
    r"\bquery_cost\b|NoSchemaIntrospectionCustomRule|QueryDepthLimiter|MaxAliasesLimiter"
    r"|AddValidationRules|max_query_cost|max_query_depth"
)


def test_limits_are_checked_only_in_the_limits_module() -> None:
    found = {
        path.relative_to(API).as_posix()
        for path in API.rglob("*.py")
        if LIMIT_CHECKS.search(path.read_text())
    }
    # cost.py computes the cost; limits.py alone compares it (and the rest) with the limits.
    assert found == {"limits.py", "cost.py"}


def _limits(**overrides: Any) -> Limits:
    settings = migrated_settings("postgresql://nowhere/none", **overrides)
    return Limits(build_schema(), settings)


def test_a_cached_document_is_validated_for_limits_once(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = _limits(introspection="off")
    calls: list[object] = []
    validate = limits._validate
    monkeypatch.setattr(limits, "_validate", lambda *a: calls.append(a) or validate(*a))
    query = "{ symbols(first: 10) { edges { node { ticker } } } }"
    for _ in range(3):
        entry = limits.parse(query)
        operation = entry.document.definitions[0]
        assert isinstance(operation, OperationDefinitionNode)
        assert limits.check(entry, operation, None, anonymous("test")) == 31
    assert len(calls) == 2  # introspection, then depth and aliases: on the first request only


def test_the_cost_still_follows_the_variables_of_each_request() -> None:
    limits = _limits(max_query_cost=100)
    entry = limits.parse("query($n: Int) { symbols(first: $n) { edges { cursor } } }")
    operation = entry.document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    assert limits.check(entry, operation, {"n": 5}, anonymous("test")) == 11
    with pytest.raises(LimitError) as refused:
        limits.check(entry, operation, {"n": 50}, anonymous("test"))
    assert (refused.value.status, refused.value.code) == (400, "QUERY_TOO_COSTLY")
    assert refused.value.extensions == {"cost": 101, "limit": 100}
