"""API keys with scopes: creation, revocation, and resolving a request's credentials."""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import retry_dropped
from core.errors import Unauthenticated

KEY_PREFIX = "mgk"


class Scope(enum.StrEnum):
    """What a key may do; `admin` implies the others."""

    READ = "read"
    INGEST = "ingest"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key (with its scopes) or an anonymous client (by address)."""

    key_id: int | None
    name: str
    scopes: frozenset[Scope]
    client: str

    @property
    def authenticated(self) -> bool:
        """True when a valid key was presented."""
        return self.key_id is not None

    def has(self, scope: Scope) -> bool:
        """Whether this principal holds `scope` (admin holds every scope)."""
        return scope in self.scopes or Scope.ADMIN in self.scopes

    @property
    def rate_key(self) -> str:
        """The bucket this principal's requests are counted in."""
        return f"key:{self.key_id}" if self.key_id is not None else f"ip:{self.client}"


def anonymous(client: str) -> Principal:
    """A caller without a key."""
    return Principal(None, "anonymous", frozenset(), client)


@dataclass(frozen=True)
class CreatedKey:
    """A new key: `token` is shown once and never stored."""

    id: int
    prefix: str
    token: str
    scopes: tuple[Scope, ...]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(token: str) -> tuple[str, str] | None:
    parts = token.split("_")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


async def create_key(engine: AsyncEngine, name: str, scopes: list[Scope]) -> CreatedKey:
    """Create a key with `scopes`; returns the token, which cannot be recovered later."""
    if not scopes:
        raise ValueError("a key needs at least one scope")
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32).replace("_", "-")
    async with engine.begin() as conn:
        key_id = (
            await conn.execute(
                text(
                    "INSERT INTO api_keys (prefix, secret_hash, name, scopes) "
                    "VALUES (:p, :h, :n, :s) RETURNING id"
                ),
                {"p": prefix, "h": _hash(secret), "n": name, "s": [s.value for s in scopes]},
            )
        ).scalar_one()
    return CreatedKey(key_id, prefix, f"{KEY_PREFIX}_{prefix}_{secret}", tuple(scopes))


@dataclass(frozen=True)
class KeyInfo:
    """A stored key, without its secret."""

    id: int
    prefix: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


async def list_keys(engine: AsyncEngine) -> list[KeyInfo]:
    """All keys, newest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT id, prefix, name, scopes, created_at, revoked_at, last_used_at "
                "FROM api_keys ORDER BY id DESC"
            )
        )
        return [KeyInfo(r[0], r[1], r[2], tuple(r[3]), r[4], r[5], r[6]) for r in rows]


async def revoke_key(engine: AsyncEngine, ident: str) -> bool:
    """Revoke a key by id or prefix; False when no live key matched."""
    async with engine.begin() as conn:
        result = await conn.execute(
            text(
                "UPDATE api_keys SET revoked_at = now() WHERE revoked_at IS NULL "
                "AND (prefix = :ident OR id::text = :ident)"
            ),
            {"ident": ident},
        )
        return bool(result.rowcount)


class KeyStore:
    """Resolves bearer tokens to principals, remembering answers briefly.

    Remembering saves a query per request; `ttl` bounds how long a revoked key keeps
    working in a running process.
    """

    def __init__(self, engine: AsyncEngine, ttl: float) -> None:
        self.engine = engine
        self.ttl = ttl
        self._cache: dict[bytes, tuple[float, Any]] = {}

    async def principal(self, authorization: str | None, client: str) -> Principal:
        """The principal for an Authorization header value; raises Unauthenticated if invalid."""
        if not authorization:
            return anonymous(client)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("expected `Authorization: Bearer <api key>`")
        return await self.resolve(token.strip(), client)

    async def resolve(self, token: str, client: str) -> Principal:
        """The principal of a token; the same error for unknown, revoked and malformed keys."""
        now = time.monotonic()
        # Remembered by digest: a token is as long as the client makes the header, and the
        # cache keeps up to 10,000 of them (refused ones included).
        ident = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        cached = self._cache.get(ident)
        if cached is not None and now - cached[0] < self.ttl:
            row = cached[1]
        else:
            # Looked up again if the connection was dead: the update of last_used_at had not
            # been committed, so running the transaction twice is safe.
            row = await retry_dropped(lambda: self._lookup(token))
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[ident] = (now, row)
        if row is None:
            raise Unauthenticated("invalid API key")
        key_id, name, scopes = row
        return Principal(key_id, name, frozenset(Scope(s) for s in scopes), client)

    async def _lookup(self, token: str) -> tuple[int, str, list[str]] | None:
        parts = _split(token)
        if parts is None:
            return None
        prefix, secret = parts
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT id, name, scopes, secret_hash FROM api_keys "
                        "WHERE prefix = :p AND revoked_at IS NULL"
                    ),
                    {"p": prefix},
                )
            ).first()
            # Compare even when no row was found, so timing does not tell a prefix exists.
            expected = row[3] if row is not None else "0" * 64
            if not hmac.compare_digest(expected, _hash(secret)) or row is None:
                return None
            await conn.execute(
                text("UPDATE api_keys SET last_used_at = now() WHERE id = :id"), {"id": row[0]}
            )
        return row[0], row[1], list(row[2])
