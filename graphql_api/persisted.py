"""Persisted queries: the Apollo automatic persisted queries protocol, and a registered-only mode.

A client first sends only `extensions.persistedQuery.sha256Hash`; an unknown hash answers
`PERSISTED_QUERY_NOT_FOUND`, the client retries with the query text, which is checked against
the hash and stored. Hash-only GETs then make short, cacheable URLs.
"""

from __future__ import annotations

import hashlib
from typing import Any

from core.cache import FieldCache

#: Persisted queries a process keeps in memory.
LOCAL_ENTRIES = 10_000

#: Stored queries outlive data versions; a month without use retires them.
TTL = 30 * 24 * 3600.0


class PersistedQueryError(Exception):
    """A persisted-query request that cannot be served; `code` goes to extensions.code."""

    def __init__(self, message: str, code: str, status: int = 200) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def requested_hash(extensions: dict[str, Any] | None) -> str | None:
    """The sha256 hash of an APQ request, validated; None when the request is not APQ."""
    if not extensions or "persistedQuery" not in extensions:
        return None
    pq = extensions["persistedQuery"]
    if not isinstance(pq, dict) or pq.get("version") != 1:
        raise PersistedQueryError(
            "persistedQuery must be {version: 1, sha256Hash}", "BAD_REQUEST", 400
        )
    digest = pq.get("sha256Hash")
    if not isinstance(digest, str) or len(digest) != 64:
        raise PersistedQueryError("sha256Hash must be 64 hex digits", "BAD_REQUEST", 400)
    return digest.lower()


class PersistedQueries:
    """Looks up and registers query texts by hash in the field cache's backend."""

    def __init__(self, cache: FieldCache, mode: str) -> None:
        self.cache = cache
        self.mode = mode
        # hash -> text never changes, so a process keeps what it has seen (bounded) and a
        # hash-only request costs no round trip to Redis.
        self._local: dict[str, str] = {}

    def _remember(self, digest: str, query: str) -> None:
        if len(self._local) >= LOCAL_ENTRIES:
            self._local.clear()
        self._local[digest] = query

    async def resolve(
        self, query: str | None, extensions: dict[str, Any] | None, *, may_register: bool
    ) -> str | None:
        """The query text to run (None only when neither text nor hash was sent)."""
        digest = requested_hash(extensions) if self.mode != "off" else None
        if digest is None:
            if self.mode == "registered" and query and not may_register:
                raise PersistedQueryError(
                    "only registered persisted queries are accepted",
                    "PERSISTED_QUERY_REQUIRED",
                    400,
                )
            return query
        key = self.cache.key("pq", digest)
        if query is None:
            known = self._local.get(digest)
            if known is not None:
                return known
            (stored,) = await self.cache.get_many([key])
            if stored is None:
                raise PersistedQueryError("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
            self._remember(digest, stored.decode())
            return stored.decode()
        if hashlib.sha256(query.encode()).hexdigest() != digest:
            raise PersistedQueryError("provided sha does not match query", "BAD_REQUEST", 400)
        if self.mode == "registered" and not may_register:
            raise PersistedQueryError(
                "registering queries needs an admin key", "PERSISTED_QUERY_REQUIRED", 400
            )
        await self.cache.set_many({key: query.encode()}, TTL)
        self._remember(digest, query)
        return query
