"""Token-bucket rate limiting weighted by query cost: Redis across processes, memory otherwise."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Runs atomically in Redis; uses the server's clock so that every API process agrees.
_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1]) or capacity
local ts = tonumber(data[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= cost then
    tokens = tokens - cost
    allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return {allowed, tostring(tokens)}
"""


#: How long the limiter stays in memory after a Redis failure before trying Redis again.
REDIS_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class Decision:
    """The outcome of taking `cost` tokens from a bucket."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the bucket is full again
    retry_after: int  # until `cost` tokens are available (0 when allowed)


class RateLimiter:
    """Buckets of `capacity` cost units refilled at `capacity` per `window` seconds."""

    def __init__(self, capacity: int, window: float, redis: Any = None) -> None:
        self.capacity = capacity
        self.rate = capacity / window
        self.redis = redis
        self._script: Any = redis.register_script(_LUA) if redis is not None else None
        self._memory: dict[str, tuple[float, float]] = {}
        self._redis_retry_at = 0.0  # after a Redis failure, memory only until then

    async def take(self, key: str, cost: int) -> Decision:
        """Take `cost` tokens from `key`'s bucket if it holds them."""
        cost = max(cost, 1)
        if self._script is not None and time.monotonic() >= self._redis_retry_at:
            try:
                allowed, tokens = await self._script(
                    keys=[f"mg:rl:{key}"], args=[self.capacity, self.rate, cost]
                )
                return self._decision(bool(allowed), float(tokens), cost)
            except Exception as exc:  # Redis down: limit per process rather than not at all
                # A hung Redis costs a socket timeout per call: back off instead of paying it
                # (and logging it) on every request.
                self._redis_retry_at = time.monotonic() + REDIS_RETRY_SECONDS
                log.warning(
                    "rate limiter falling back to memory for %.0f s: %s", REDIS_RETRY_SECONDS, exc
                )
        return self._take_memory(key, cost)

    def _take_memory(self, key: str, cost: int) -> Decision:
        now = time.monotonic()
        tokens, ts = self._memory.get(key, (float(self.capacity), now))
        tokens = min(self.capacity, tokens + (now - ts) * self.rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        if len(self._memory) > 100_000:
            self._memory.clear()
        self._memory[key] = (tokens, now)
        return self._decision(allowed, tokens, cost)

    def _decision(self, allowed: bool, tokens: float, cost: int) -> Decision:
        reset = math.ceil((self.capacity - tokens) / self.rate)
        retry = 0 if allowed else max(1, math.ceil((cost - tokens) / self.rate))
        return Decision(allowed, self.capacity, int(tokens), reset, retry)
