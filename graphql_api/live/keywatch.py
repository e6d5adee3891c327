"""Open WebSockets authenticated with an API key, closed soon after the key is revoked.

A socket's key is resolved once, at `connection_init`, and the socket may stay open for
days; HTTP requests re-resolve theirs at most API_KEY_CACHE_SECONDS later (graphql_api.auth
KeyStore). So that a revoked key stops working over WebSocket within the same delay, every
`period` seconds one query checks the keys of all of this process's open connections at once
(not one query per connection), and the connections of keys revoked or deleted since are
closed with 4403. The period is half the cache lifetime (at least MIN_PERIOD).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

#: Close code and reason of a connection whose key was revoked (4403, as for a bad key).
REVOKED_CODE = 4403
REVOKED_REASON = "Forbidden: the API key was revoked"
#: Shortest period between two checks (API_KEY_CACHE_SECONDS=0 would otherwise spin).
MIN_PERIOD = 0.25
#: How long closing one connection may take (a client that stopped reading delays it).
CLOSE_TIMEOUT = 10.0

#: Closes a connection with a code and a reason.
Closer = Callable[[int, str], Awaitable[None]]


def check_period(api_key_cache_seconds: float) -> float:
    """Seconds between two checks: revoked keys are noticed well within the cache lifetime."""
    return max(api_key_cache_seconds / 2, MIN_PERIOD)


class Watched:
    """One open connection and its key (the handle `KeyWatch.add` returns)."""

    __slots__ = ("close", "key_id")

    def __init__(self, key_id: int, close: Closer) -> None:
        self.key_id = key_id
        self.close = close


class KeyWatch:
    """The open connections of this process by key id, and the periodic check of the keys."""

    def __init__(
        self,
        engine: AsyncEngine,
        period: float,
        spawn: Callable[[Coroutine[Any, Any, Any]], None],
    ) -> None:
        self.engine = engine
        self.period = period
        self.spawn = spawn
        self._by_key: dict[int, set[Watched]] = {}
        self.checks = 0  # queries run (one per period while connections are open)
        self.revoked = 0  # connections closed for a revoked key

    def add(self, key_id: int, close: Closer) -> Watched:
        """Watch a connection authenticated with key `key_id`; `close` ends it."""
        watched = Watched(key_id, close)
        self._by_key.setdefault(key_id, set()).add(watched)
        return watched

    def discard(self, watched: Watched) -> None:
        """Stop watching a connection (it closed); harmless if it was closed for revocation."""
        connections = self._by_key.get(watched.key_id)
        if connections is not None:
            connections.discard(watched)
            if not connections:
                del self._by_key[watched.key_id]

    def connections(self) -> int:
        """Connections watched now."""
        return sum(len(c) for c in self._by_key.values())

    async def run(self) -> None:
        """Check every `period` seconds while connections are open (until cancelled)."""
        while True:
            await asyncio.sleep(self.period)
            if not self._by_key:
                continue
            try:
                await self.check()
            except Exception as exc:
                # The database is unreachable: keep the connections (they were valid) and
                # try again next period rather than cut off every client.
                log.warning("API key re-check of open WebSockets failed: %r", exc)

    async def check(self) -> list[int]:
        """One query for the keys of all watched connections; closes those of dead keys.

        Returns the ids of the keys found revoked (or deleted).
        """
        ids = list(self._by_key)
        async with self.engine.connect() as conn:
            result = await conn.execute(
                text("SELECT id FROM api_keys WHERE id = ANY(:ids) AND revoked_at IS NULL"),
                {"ids": ids},
            )
            live = set(result.scalars())
        self.checks += 1
        revoked = [key_id for key_id in ids if key_id not in live]
        for key_id in revoked:
            connections = self._by_key.pop(key_id, set())
            log.info("API key %s revoked: closing %d WebSocket(s)", key_id, len(connections))
            for watched in connections:
                self.revoked += 1
                self.spawn(self._close(watched))
        return revoked

    async def _close(self, watched: Watched) -> None:
        # In its own task: a client that stopped reading must not hold up the others.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(watched.close(REVOKED_CODE, REVOKED_REASON), CLOSE_TIMEOUT)


__all__ = ["REVOKED_CODE", "REVOKED_REASON", "KeyWatch", "Watched", "check_period"]
