"""Parsed GraphQL documents: size limits enforced while lexing, and a cache bounded in bytes.

Every HTTP request and every WebSocket subscribe goes through `cached_entry` (by way of
graphql_api/limits.py, which keeps its limit results in the entry too): the parser
counts tokens (comments included) as it reads and stops at `max_tokens`, so an oversized
document is refused after reading at most that many tokens, whatever its length. Parsed
documents and their validation results are kept in one LRU cache whose budget is in bytes
(an estimate of the source and AST size), not in entries: a cache of N entries keyed by the
whole text held N x 20 MB when each text was 20 MB (issue 13, item 1).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSyntaxError, Lexer, Source, parse
from graphql.language import TokenKind
from strawberry.extensions import SchemaExtension

#: Estimated bytes one token costs once parsed: the token itself (kept in the document's
#: linked list for locations) plus its share of AST nodes. Measured with tracemalloc on
#: typical queries: 350-400 bytes.
BYTES_PER_TOKEN = 400
#: Fixed overhead of an entry (key tuple, entry object, dictionary slot).
ENTRY_OVERHEAD = 512
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
#: Costs remembered per document (graphql_api/limits.py), forgotten all at once past this.
MAX_COSTS = 32


class DocumentLimitError(Exception):
    """A document refused for its size, before it was parsed whole."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class CachedDocument:
    """A parsed document and, once known, its validation errors (by schema rules key)."""

    document: DocumentNode
    size: int
    validation: dict[Any, list[GraphQLError]] = field(default_factory=dict)
    #: Compiled plans by operation name (graphql_api/compiled.py), None where none applies.
    #: Not counted in `size`: a plan holds references into the document and a few closures.
    plans: dict[str | None, Any] = field(default_factory=dict)
    #: Query costs by (operation, variables as JSON), at most MAX_COSTS (a few bytes each).
    costs: dict[tuple[int, bytes], int] = field(default_factory=dict)


class DocumentCache:
    """LRU of parsed documents bounded by an estimate of their memory, thread-safe."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[tuple[int, str], CachedDocument] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def resize(self, max_bytes: int) -> None:
        """Change the budget, evicting the least recently used entries past it."""
        with self._lock:
            self.max_bytes = max_bytes
            self._evict()

    def clear(self) -> None:
        """Forget every document."""
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def get(self, query: str, max_tokens: int) -> CachedDocument | None:
        """The cached entry of a text parsed under this token limit, if any."""
        key = (max_tokens, query)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, query: str, max_tokens: int, entry: CachedDocument) -> None:
        """Keep an entry unless it alone would take more than an eighth of the budget."""
        if entry.size > self.max_bytes // 8:
            return
        key = (max_tokens, query)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old.size
            self._entries[key] = entry
            self.bytes += entry.size
            self._evict()

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and self._entries:
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= dropped.size


#: The process's document cache (`create_app` sets its budget from DOCUMENT_CACHE_BYTES).
cache = DocumentCache()


def _token_count(document: DocumentNode) -> int:
    count = 0
    token = document.loc.start_token if document.loc is not None else None
    while token is not None:
        count += 1
        token = token.next
    return count


def count_aliases(query: str, max_tokens: int) -> int:
    """Aliases among the first `max_tokens` tokens: a name followed by a colon outside
    parentheses (inside them, `name:` is an argument or a variable definition)."""
    lexer = Lexer(Source(query))
    depth = aliases = 0
    previous = None
    for _ in range(max_tokens):
        token = lexer.advance()
        kind = token.kind
        if kind == TokenKind.EOF:
            break
        if kind == TokenKind.PAREN_L:
            depth += 1
        elif kind == TokenKind.PAREN_R:
            depth = max(depth - 1, 0)
        elif kind == TokenKind.COLON and depth == 0 and previous == TokenKind.NAME:
            aliases += 1
        previous = kind
    return aliases


def _parse(query: str, max_tokens: int, max_aliases: int | None) -> DocumentNode:
    try:
        return parse(query, max_tokens=max_tokens)
    except GraphQLSyntaxError as exc:
        if "tokens. Parsing aborted" not in exc.message:
            raise
    # Over the token limit. A flood of aliases is the usual cause: name it when it is.
    if max_aliases is not None:
        aliases = count_aliases(query, max_tokens)
        if aliases > max_aliases:
            raise DocumentLimitError(
                f"at least {aliases} aliases found. Allowed: {max_aliases} (MAX_ALIASES)",
                "GRAPHQL_VALIDATION_FAILED",
            ) from None
    raise DocumentLimitError(
        f"the document has more than {max_tokens} tokens (MAX_TOKENS); send a smaller query",
        "GRAPHQL_PARSE_FAILED",
    ) from None


def cached_entry(
    query: str, max_tokens: int, max_aliases: int | None = None, store: DocumentCache = cache
) -> CachedDocument:
    """The parsed document of `query` (from the cache, or parsed and cached).

    Raises GraphQLSyntaxError for a malformed document and DocumentLimitError for one over
    the token limit.
    """
    entry = store.get(query, max_tokens)
    if entry is None:
        document = _parse(query, max_tokens, max_aliases)
        size = ENTRY_OVERHEAD + len(query) + BYTES_PER_TOKEN * _token_count(document)
        entry = CachedDocument(document, size)
        store.put(query, max_tokens, entry)
    return entry


def parse_document(
    query: str, max_tokens: int, max_aliases: int | None = None, store: DocumentCache = cache
) -> DocumentNode:
    """`cached_entry(...).document`."""
    return cached_entry(query, max_tokens, max_aliases, store).document


class DocumentCacheExtension(SchemaExtension):
    """Strawberry's parse and validation steps served from the byte-bounded cache.

    Replaces strawberry's ParserCache, ValidationCache and MaxTokensLimiter: their caches are
    bounded in entries (each holding a whole document), and the limiter only set an option.
    """

    def __init__(self, max_tokens: int, max_aliases: int, rules_key: Any) -> None:
        super().__init__()
        self.max_tokens = max_tokens
        self.max_aliases = max_aliases
        self.rules_key = rules_key
        self.entry: CachedDocument | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            try:
                self.entry = cached_entry(context.query, self.max_tokens, self.max_aliases)
            except DocumentLimitError as exc:
                raise GraphQLError(exc.message, extensions={"code": exc.code}) from None
            context.graphql_document = self.entry.document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        entry = self.entry
        if entry is not None and entry.document is context.graphql_document:
            known = entry.validation.get(self.rules_key)
            if known is not None:
                # Strawberry validates when pre_execution_errors is None: a list skips it.
                context.pre_execution_errors = list(known)
                yield
                return
            yield
            errors: Sequence[GraphQLError] = context.pre_execution_errors or []
            entry.validation[self.rules_key] = list(errors)
            return
        yield
