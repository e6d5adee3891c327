"""The field cache: cashews over Redis (when configured) or a store in process memory bounded
in bytes, holding serialized bytes.

Values are bytes we encode ourselves (orjson): never pickle from Redis (cashews pickles by
default, and a planted pickle executes code on read) and never live objects (the memory
backend hands back the stored object itself). Keys carry a data version, so a commit makes
the next read miss instead of relying on deletes. With Redis down or slow, every call
degrades to a miss or a no-op within `timeout`, and the failure is counted and logged (at
most once a minute).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cashews import Cache

from core import reqstats

# The logger keeps the name it had inside graphql_api, which log filters and dashboards use.
log = logging.getLogger("graphql_api.cache")

#: How long the backend is skipped after a failure before it is tried again.
RETRY_SECONDS = 5.0

#: Bumped when the shape of cached values changes, so old entries are never decoded.
SCHEMA_VERSION = "1"

#: What the in-process store (no REDIS_URL) may hold, in bytes of keys and values.
MEMORY_BYTES = 64 * 1024 * 1024
#: Estimated bytes of one in-process entry besides its key and value (tuple, dict slot).
MEMORY_ENTRY_OVERHEAD = 200


class MemoryStore:
    """The in-process backend: least recently used entries go first once the values and keys
    held exceed `max_bytes`; expired ones miss.

    Bounded in bytes, not entries: every ingest moves the data version on, so entries of the
    old version are never read again, and 100,000 of them (cashews' memory backend, bounded
    by count) held whole responses of any size. Dead entries drift to the old end and go
    first. Implements the part of the cashews backend interface FieldCache uses.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[float, bytes, int]] = OrderedDict()
        self._locks: dict[str, tuple[float, Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: str) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[2]

    async def get_many(self, *keys: str) -> tuple[bytes | None, ...]:
        now = time.monotonic()
        out: list[bytes | None] = []
        for key in keys:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= now:
                if entry is not None:
                    self._drop(key)
                out.append(None)
                continue
            self._entries.move_to_end(key)
            out.append(entry[1])
        return tuple(out)

    async def set_many(self, pairs: Mapping[str, bytes], expire: float | None = None) -> None:
        expires = time.monotonic() + expire if expire else float("inf")
        for key, value in pairs.items():
            self._drop(key)
            # A compact copy: orjson's output keeps a buffer of at least 4 KiB (and several
            # times its length for larger outputs), which a long-lived entry would pin.
            value = bytes(memoryview(value))
            size = len(value) + len(key) + MEMORY_ENTRY_OVERHEAD
            if size > self.max_bytes // 8:
                continue  # one value must not empty the cache
            self._entries[key] = (expires, value, size)
            self.bytes += size
        while self.bytes > self.max_bytes and self._entries:
            _, (_, _, size) = self._entries.popitem(last=False)
            self.bytes -= size

    async def set_lock(self, key: str, value: Any, expire: float) -> bool:
        now = time.monotonic()
        held = self._locks.get(key)
        if held is not None and held[0] > now:
            return False
        if len(self._locks) > 10_000:  # locks of callers that never unlocked (cancelled)
            self._locks = {k: v for k, v in self._locks.items() if v[0] > now}
        self._locks[key] = (now + expire, value)
        return True

    async def unlock(self, key: str, value: Any) -> bool:
        held = self._locks.get(key)
        if held is None or held[1] != value:
            return False
        del self._locks[key]
        return True

    async def close(self) -> None:
        self._entries.clear()
        self._locks.clear()
        self.bytes = 0


@dataclass
class CacheStats:
    """Counters for metrics and tests."""

    hits: int = 0
    misses: int = 0
    errors: int = 0
    computed: int = 0


class FieldCache:
    """get_many / set_many / single-flight over one cashews backend."""

    def __init__(
        self,
        redis_url: str | None,
        *,
        timeout: float = 0.25,
        prefix: str = "mg",
        memory_bytes: int | None = None,
    ) -> None:
        self.backend: Any
        self.redis = redis_url is not None
        if redis_url:
            self.backend = Cache()
            self.backend.setup(
                redis_url,
                pickle_type="null",  # bytes in, bytes out
                suppress=False,  # we count and degrade ourselves
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
            )
        else:
            self.backend = MemoryStore(MEMORY_BYTES if memory_bytes is None else memory_bytes)
        self.prefix = f"{prefix}:{SCHEMA_VERSION}"
        self.timeout = timeout
        self.stats = CacheStats()
        self._last_warning = 0.0
        self._retry_at = 0.0

    def key(self, *parts: object) -> str:
        """A namespaced cache key."""
        return ":".join((self.prefix, *(str(p) for p in parts)))

    def _available(self) -> bool:
        # After a failure the backend is left alone for a few seconds: a Redis that hangs
        # would otherwise cost every request several timeouts.
        return time.monotonic() >= self._retry_at

    def _failed(self, exc: BaseException) -> None:
        self.stats.errors += 1
        reqstats.add_cache_error()
        now = time.monotonic()
        self._retry_at = now + RETRY_SECONDS
        if now - self._last_warning > 60:
            self._last_warning = now
            log.warning("cache unavailable, serving from PostgreSQL: %r", exc)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values for `keys` (None for misses, or for all when the backend fails)."""
        if not keys:
            return []
        if not self._available():
            self.stats.misses += len(keys)
            return [None] * len(keys)
        try:
            values = await asyncio.wait_for(self.backend.get_many(*keys), self.timeout * 2)
        except Exception as exc:
            self._failed(exc)
            self.stats.misses += len(keys)
            reqstats.add_cache(0, len(keys))
            return [None] * len(keys)
        out = [v if isinstance(v, bytes) else None for v in values]
        hits = sum(v is not None for v in out)
        self.stats.hits += hits
        self.stats.misses += len(out) - hits
        reqstats.add_cache(hits, len(out) - hits)  # per request, for its log line
        return out

    async def set_many(self, items: dict[str, bytes], ttl: float) -> None:
        """Store values (pipelined); failures are counted, not raised."""
        if not items or not self._available():
            return
        try:
            await asyncio.wait_for(self.backend.set_many(items, expire=ttl), self.timeout * 2)
        except Exception as exc:
            self._failed(exc)

    async def _lock(self, key: str, token: str, ttl: float) -> bool:
        if not self._available():
            return True  # no cache, no coordination: compute
        try:
            return bool(
                await asyncio.wait_for(
                    self.backend.set_lock(f"{key}:lock", token, expire=ttl), self.timeout * 2
                )
            )
        except Exception as exc:
            self._failed(exc)
            return True  # no cache, no coordination: compute

    async def _unlock(self, key: str, token: str) -> None:
        if not self._available():
            return
        try:
            await asyncio.wait_for(self.backend.unlock(f"{key}:lock", token), self.timeout * 2)
        except Exception as exc:
            self._failed(exc)

    async def read_through(
        self,
        keys: Sequence[str],
        compute: Callable[[list[int]], Awaitable[list[bytes]]],
        ttls: Sequence[float],
        *,
        wait: float = 2.0,
    ) -> list[bytes]:
        """Values for `keys`: hits from one MGET, misses computed once across processes.

        `compute(indexes)` computes the values at those indexes of `keys` (one SQL statement
        for all of them). A miss whose lock another caller holds is awaited for up to `wait`
        seconds, then computed here anyway: a stuck peer must not stall the request.
        """
        values = await self.get_many(keys)
        missing = [i for i, v in enumerate(values) if v is None]
        if not missing:
            return values  # type: ignore[return-value]
        token = secrets.token_hex(8)
        locks = await asyncio.gather(*(self._lock(keys[i], token, wait * 2) for i in missing))
        mine = [i for i, got in zip(missing, locks, strict=True) if got]
        theirs = [i for i, got in zip(missing, locks, strict=True) if not got]
        if mine:
            try:
                computed = await compute(mine)
                self.stats.computed += len(mine)
                for i, value in zip(mine, computed, strict=True):
                    values[i] = value
                by_ttl: dict[float, dict[str, bytes]] = {}
                for i, value in zip(mine, computed, strict=True):
                    by_ttl.setdefault(ttls[i], {})[keys[i]] = value
                for ttl, items in by_ttl.items():
                    await self.set_many(items, ttl)
            finally:
                await asyncio.gather(*(self._unlock(keys[i], token) for i in mine))
        deadline = time.monotonic() + wait
        while theirs and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            got = await self.get_many([keys[i] for i in theirs])
            for i, found in zip(list(theirs), got, strict=True):
                if found is not None:
                    values[i] = found
                    theirs.remove(i)
        if theirs:
            computed = await compute(theirs)
            self.stats.computed += len(theirs)
            for i, value in zip(theirs, computed, strict=True):
                values[i] = value
        return values  # type: ignore[return-value]

    async def close(self) -> None:
        """Release the backend's connections."""
        try:
            await self.backend.close()
        except Exception as exc:
            self._failed(exc)
