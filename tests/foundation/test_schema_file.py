"""schema.graphql is generated from the code and documents every type and field."""

from __future__ import annotations

from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
)
from strawberry.printer import print_schema

from graphql_api.schema import schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_schema_file_matches_the_code() -> None:
    exported = print_schema(schema)
    on_disk = SCHEMA_FILE.read_text().rstrip("\n")
    assert on_disk == exported.rstrip("\n"), (
        "schema.graphql drifted from the code; regenerate it with "
        "`strawberry export-schema graphql_api.schema:schema --output schema.graphql`"
    )


def test_every_type_field_and_argument_has_a_description() -> None:
    missing: list[str] = []
    for name, gtype in schema._schema.type_map.items():
        if name.startswith("__") or name in {"String", "Int", "Float", "Boolean", "ID"}:
            continue
        if not gtype.description:
            missing.append(name)
        if isinstance(gtype, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
            for field_name, field in gtype.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in getattr(field, "args", {}).items():
                    if not arg.description:
                        missing.append(f"{name}.{field_name}({arg_name})")
        if isinstance(gtype, GraphQLEnumType):
            missing += [f"{name}.{v}" for v, val in gtype.values.items() if not val.description]
    assert missing == []
