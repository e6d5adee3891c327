"""Clients built on the last released schema keep working: the schema built from the code has no
breaking change against clients/released/schema.graphql, and every example operation of the
Python and TypeScript clients validates against it."""

from __future__ import annotations

import re
import warnings
from importlib.metadata import version
from pathlib import Path

import pytest
from graphql import (
    BreakingChangeType,
    DocumentNode,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    find_breaking_changes,
    find_dangerous_changes,
    parse,
    validate,
)
from strawberry.printer import print_schema

from graphql_api.schema import schema as code_schema

REPO = Path(__file__).resolve().parents[2]
RELEASED = REPO / "clients" / "released" / "schema.graphql"
OPERATIONS = {
    "python": REPO / "clients" / "python" / "queries.graphql",
    "typescript": REPO / "clients" / "typescript" / "operations.graphql",
}
HOW_TO_RELEASE = (
    "If the break is intended, release it: bump `version` in pyproject.toml, say what breaks "
    "in the release notes, then copy the schema to the released one\n"
    "    cp schema.graphql clients/released/schema.graphql\n"
    "and set the version in its first line (`# market-graphql X.Y.Z ...`). Fix the example "
    "operations in clients/python/queries.graphql and clients/typescript/operations.graphql "
    "if they use what was removed."
)


def current() -> GraphQLSchema:
    return code_schema._schema


def released() -> GraphQLSchema:
    return build_schema(RELEASED.read_text())


def breaking_report(old: GraphQLSchema, new: GraphQLSchema) -> list[str]:
    return [f"{c.type.name}: {c.description}" for c in find_breaking_changes(old, new)]


def operation_errors(schema: GraphQLSchema, document: DocumentNode) -> list[str]:
    return [e.message for e in validate(schema, document)]


def test_no_breaking_change_since_the_released_schema() -> None:
    breaking = breaking_report(released(), current())
    dangerous = [
        f"{c.type.name}: {c.description}" for c in find_dangerous_changes(released(), current())
    ]
    if dangerous:  # reported, not failed: e.g. an enum value or an argument default added
        warnings.warn(
            "dangerous (non-breaking) schema changes since the release:\n  "
            + "\n  ".join(dangerous),
            stacklevel=1,
        )
    assert not breaking, (
        "the schema breaks clients of the released one:\n  "
        + "\n  ".join(breaking)
        + "\n"
        + HOW_TO_RELEASE
    )


def test_released_schema_names_a_version_not_after_the_package() -> None:
    first_line = RELEASED.read_text().splitlines()[0]
    match = re.match(r"# market-graphql (\d+)\.(\d+)\.(\d+)\b", first_line)
    assert match, f"the first line of {RELEASED} must be `# market-graphql X.Y.Z ...`"
    released_version = tuple(int(part) for part in match.groups())
    package = tuple(int(part) for part in re.findall(r"\d+", version("market-graphql"))[:3])
    assert released_version <= package


@pytest.mark.parametrize("client", sorted(OPERATIONS))
def test_example_operations_validate_against_the_schema(client: str) -> None:
    document = parse(OPERATIONS[client].read_text())
    names = [d.name.value for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert len(names) >= 5 and len(set(names)) == len(names)
    assert operation_errors(current(), document) == []
    assert operation_errors(released(), document) == []


def test_the_guard_catches_a_removed_field_and_a_new_required_argument() -> None:
    sdl = print_schema(code_schema)
    assert '  ticker: String!\n\n  """Full name of the instrument."""\n  name: String!' in sdl
    broken_sdl = sdl.replace('  """Full name of the instrument."""\n  name: String!\n', "", 1)
    broken_sdl = broken_sdl.replace(
        '  """One symbol by ticker (case-insensitive); null if unknown."""\n  symbol(',
        '  """One symbol by ticker (case-insensitive); null if unknown."""\n  symbol(\n'
        '    """Venue."""\n    venue: String!\n',
        1,
    )
    broken = build_schema(broken_sdl)
    changes = {(c.type, c.description) for c in find_breaking_changes(current(), broken)}
    assert len(changes) == 2
    assert any(t is BreakingChangeType.FIELD_REMOVED and "Symbol.name" in d for t, d in changes)
    assert any(
        t is BreakingChangeType.REQUIRED_ARG_ADDED and "Query.symbol" in d and "venue" in d
        for t, d in changes
    )
    errors = operation_errors(broken, parse(OPERATIONS["python"].read_text()))
    assert "Cannot query field 'name' on type 'Symbol'." in errors
    assert (
        "Argument 'Query.symbol(venue:)' of type 'String!' is required, but it was not provided."
        in errors
    )
    # Additions are neither breaking nor dangerous.
    added = sdl.replace(
        "  ticker: String!\n", '  ticker: String!\n  """New."""\n  isin: String\n', 1
    )
    assert breaking_report(current(), build_schema(added)) == []
    assert find_dangerous_changes(current(), build_schema(added)) == []
