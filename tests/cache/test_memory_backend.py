"""The in-process cache (no REDIS_URL) is bounded in bytes, and holds what it stores compactly.

Found by the soak test (benchmarks/soak.py, issue 13 item 7): without Redis, whole responses
(an hour) and bar pages (a day) stay in process memory, keyed by a data version that every
ingest moves on; the store was bounded at 100,000 entries of any size, and each value was
orjson's output, which keeps a buffer of at least 4 KiB (more for larger outputs) whatever
its length.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import orjson
import pytest

from core import cache as cache_module
from core.cache import FieldCache


def _held(work: object) -> int:
    """Bytes still allocated after running `work` (a coroutine function) to completion."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        asyncio.run(work())  # type: ignore[operator]
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_small_values_are_held_compactly() -> None:
    # A guard for the store's copy: kept as orjson returned them, these would hold 4 KiB each.
    cache = FieldCache(None)

    async def fill() -> None:
        for i in range(2_000):
            value = orjson.dumps([i, "ACME", 101.25, 102.5, 100.75, 101.0, 1200.0, True])
            await cache.set_many({cache.key("bars", i): value}, 3600)

    held = _held(fill)
    # ~60 bytes of value, a ~20-byte key and the entry's bookkeeping: well under 1 KiB each.
    assert held < 2_000 * 1024, f"{held / 2_000:.0f} bytes per 60-byte entry"


def test_memory_is_bounded_in_bytes_not_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    # The default budget, made small: 500 entries of 20 KB were all kept before (10 MB).
    monkeypatch.setattr(cache_module, "MEMORY_BYTES", 1 << 20, raising=False)
    cache = FieldCache(None)
    value = orjson.dumps(["x" * 20_000])

    async def fill() -> None:
        for i in range(500):  # 10 MB offered to a 1 MiB budget
            await cache.set_many({cache.key("resp", i): value}, 3600)

    held = _held(fill)
    assert held < 1.5 * (1 << 20), f"{held / 2**20:.1f} MiB held under a 1 MiB budget"


def test_least_recently_used_goes_first_and_expired_entries_miss() -> None:
    async def scenario() -> None:
        cache = FieldCache(None, memory_bytes=64 * 1024)
        value = b"v" * 4_000
        await cache.set_many({"a": value, "b": value}, 3600)
        assert await cache.get_many(["a"]) == [value]  # now "b" is the least recently used
        for i in range(14):
            await cache.set_many({f"k{i}": value}, 3600)
        assert await cache.get_many(["a", "b"]) == [value, None]
        await cache.set_many({"short": value}, 0.05)
        await asyncio.sleep(0.1)
        assert await cache.get_many(["short"]) == [None]
        # Values too large for the budget are not kept (they would evict everything).
        await cache.set_many({"huge": b"h" * 60_000}, 3600)
        assert await cache.get_many(["huge", "a"]) == [None, value]

    asyncio.run(scenario())


def test_single_flight_locks_in_memory() -> None:
    async def scenario() -> None:
        cache = FieldCache(None)
        calls = 0

        async def compute(indexes: list[int]) -> list[bytes]:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.05)
            return [b"value"] * len(indexes)

        got = await asyncio.gather(*(cache.read_through(["k"], compute, [60.0]) for _ in range(5)))
        assert got == [[b"value"]] * 5
        assert calls == 1

    asyncio.run(scenario())
