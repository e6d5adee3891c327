"""The API-key cache stays small whatever the tokens clients send (issue 13, item 7)."""

from __future__ import annotations

import asyncio
import tracemalloc
from typing import Any

import pytest

from core.errors import Unauthenticated
from graphql_api.auth import KeyStore


def test_remembered_tokens_cost_the_same_whatever_their_length() -> None:
    # Malformed tokens are refused without the database, so no engine is needed; they are
    # remembered like unknown ones. Before the fix each was kept whole as the cache's key:
    # 100 tokens of 64 KiB held 6.4 MiB, and the cache keeps up to 10,000.
    store = KeyStore(engine=None, ttl=60.0)  # type: ignore[arg-type]

    async def refuse_all(tokens: list[str]) -> None:
        for token in tokens:
            with pytest.raises(Unauthenticated):
                await store.resolve(token, "203.0.113.9")

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tokens: list[Any] = [f"{i:04d}" + "x" * 65_536 for i in range(100)]
        asyncio.run(refuse_all(tokens))
        del tokens  # only what the store keeps is left
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 256 * 1024, f"the key cache holds {held / 2**20:.1f} MiB for 100 tokens"
