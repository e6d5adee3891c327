"""Every limit on a GraphQL document, checked in one place for HTTP and WebSocket alike.

Tokens (while parsing), introspection (by principal and INTROSPECTION), cost (with the
request's variables), depth and aliases (graphql-core rules). The HTTP endpoint and the
WebSocket subscribe path both call `Limits.parse` then `Limits.check` before anything runs;
Strawberry's extensions only serve the parse and the schema's own validation from the
document cache. So no limit is checked twice, and none only on one transport (subscriptions
once skipped cost and introspection).

Results that depend only on the document (introspection, depth, aliases) are kept beside it
in the document cache entry, like its validation: a cached document is walked for them once.
Cost depends on the variables and is computed per request (a few microseconds).
"""

from __future__ import annotations

from typing import Any

import orjson
from graphql import ASTValidationRule, DocumentNode, GraphQLError, OperationDefinitionNode
from graphql.validation import NoSchemaIntrospectionCustomRule, validate
from strawberry import Schema
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter

from core.settings import Settings
from graphql_api import documents
from graphql_api.auth import Principal, Scope
from graphql_api.cost import CostRules, query_cost


class LimitError(Exception):
    """A document refused by a limit, with the HTTP status and the code clients see.

    `legacy_status` is the status for a client that accepts only `application/json` (the
    spec's compatibility rule answers document errors with 200).
    """

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        extensions: dict[str, Any] | None = None,
        legacy_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extensions = extensions or {}
        self.legacy_status = status if legacy_status is None else legacy_status

    @property
    def formatted(self) -> dict[str, Any]:
        """The error as both transports send it (locations, if any, beside the message)."""
        extensions = {"code": self.code, **self.extensions}
        locations = extensions.pop("locations", None)
        error: dict[str, Any] = {"message": self.message}
        if locations:
            error["locations"] = locations
        error["extensions"] = extensions
        return error


class Limits:
    """The limits of one schema under one configuration (made once per app)."""

    def __init__(self, schema: Schema, settings: Settings) -> None:
        self.schema = schema
        self.settings = settings
        self.cost_rules = CostRules(default_page_size=settings.default_page_size)
        # Made once: the limiters make a new rule class per instance.
        self.shape_rules: list[type[ASTValidationRule]] = [
            *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
            *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
        ]
        # Keys of the results kept in a document's cache entry (beside its validation).
        self._shape_key = ("limits:shape", settings.max_query_depth, settings.max_aliases)
        self._introspection_key = ("limits:introspection",)

    def parse(self, query: str) -> documents.CachedDocument:
        """The cached entry of `query`, parsed under MAX_TOKENS.

        Raises LimitError over the token limit (or for an alias flood that hit it first), and
        GraphQLSyntaxError for a malformed document.
        """
        try:
            return documents.cached_entry(
                query, self.settings.max_tokens, self.settings.max_aliases
            )
        except documents.DocumentLimitError as exc:
            # Over MAX_TOKENS is a parse failure (200 for legacy clients, as a syntax error);
            # an alias flood found while lexing has always been a 400 for everyone.
            legacy = 200 if exc.code == "GRAPHQL_PARSE_FAILED" else 400
            raise LimitError(400, exc.message, exc.code, legacy_status=legacy) from None

    def check(
        self,
        entry: documents.CachedDocument,
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
        principal: Principal,
    ) -> int:
        """The operation's cost, once every limit passed; LimitError for the first that fails.

        The order is the HTTP endpoint's of old: introspection, then cost, then depth and
        aliases (once schema validation, now refused before rate limiting is charged).
        """
        if self._introspection_refused(principal) and self._introspects(entry):
            raise LimitError(403, "introspection is disabled for this client", "FORBIDDEN")
        cost = self._cost(entry, operation, variables)
        limit = self.settings.max_query_cost
        if cost > limit:
            raise LimitError(
                400,
                f"query cost {cost} exceeds the limit of {limit}; "
                "ask for smaller pages or fewer fields",
                "QUERY_TOO_COSTLY",
                extensions={"cost": cost, "limit": limit},
                legacy_status=200,
            )
        errors = self._cached(entry, self._shape_key, self.shape_rules)
        if errors:
            error = errors[0]
            extensions: dict[str, Any] = {}
            if error.locations:
                extensions["locations"] = [loc._asdict() for loc in error.locations]
            # As schema validation errors were answered: 200 for legacy JSON clients.
            raise LimitError(
                400, error.message, "GRAPHQL_VALIDATION_FAILED", extensions, legacy_status=200
            )
        return cost

    def _cost(
        self,
        entry: documents.CachedDocument,
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
    ) -> int:
        # Remembered per document and variable values: the same request sent again (a
        # chart polling its page) skips walking the document (~50 us for the kit's q3).
        key = (id(operation), orjson.dumps(variables, option=orjson.OPT_SORT_KEYS))
        cost = entry.costs.get(key)
        if cost is None:
            cost = query_cost(entry.document, operation, variables, self.cost_rules)
            if len(entry.costs) >= documents.MAX_COSTS:
                entry.costs.clear()
            entry.costs[key] = cost
        return cost

    def share_of_cost_limit(self, query: str, variables: dict[str, Any] | None) -> float:
        """The cost of the first operation of `query` (a document of this service's own) as
        a share of the cost limit: how many of it fit in one request (graphql_api/download.py
        sizes its groups of symbols with it)."""
        entry = self.parse(query)
        operation = next(
            d for d in entry.document.definitions if isinstance(d, OperationDefinitionNode)
        )
        cost = query_cost(entry.document, operation, variables, self.cost_rules)
        return cost / self.settings.max_query_cost

    def _introspection_refused(self, principal: Principal) -> bool:
        mode = self.settings.introspection
        return mode == "off" or (mode == "admin" and not principal.has(Scope.ADMIN))

    def _introspects(self, entry: documents.CachedDocument) -> bool:
        return bool(self._cached(entry, self._introspection_key, [NoSchemaIntrospectionCustomRule]))

    def _cached(
        self, entry: documents.CachedDocument, key: Any, rules: list[type[ASTValidationRule]]
    ) -> list[GraphQLError]:
        known = entry.validation.get(key)
        if known is None:
            known = self._validate(entry.document, rules)
            entry.validation[key] = known
        return known

    def _validate(
        self, document: DocumentNode, rules: list[type[ASTValidationRule]]
    ) -> list[GraphQLError]:
        return list(validate(self.schema._schema, document, rules))


__all__ = ["LimitError", "Limits"]
