"""Gzip by body size: level 5 for ordinary responses, level 1 from 1 MiB (`compression.py`).

The gzip header records the speed trade-off in its XFL byte (RFC 1952): zlib writes 4 for
level 1 ("fastest") and 0 for the middle levels, so the level used is visible in the bytes.
"""

from __future__ import annotations

import gzip
import os

import pytest
from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.testclient import TestClient

from graphql_api.compression import LARGE_BODY, SizedGZipMiddleware

#: Compressible but not trivially: random hex keeps the compressor busy like JSON numbers.
PAYLOAD = os.urandom(LARGE_BODY).hex().encode()


def make_client(level: int = 5, large_level: int = 1) -> TestClient:
    app = FastAPI()
    app.add_middleware(SizedGZipMiddleware, minimum_size=1000, level=level, large_level=large_level)

    @app.get("/body/{size}")
    def body(size: int) -> Response:
        return Response(PAYLOAD[:size], media_type="application/json")

    return TestClient(app)


def raw(client: TestClient, size: int, encoding: str = "gzip") -> tuple[dict[str, str], bytes]:
    with client.stream("GET", f"/body/{size}", headers={"accept-encoding": encoding}) as r:
        return dict(r.headers), b"".join(r.iter_raw())


@pytest.mark.parametrize(
    ("size", "xfl"),
    [(200_000, 0), (LARGE_BODY - 1, 0), (LARGE_BODY, 4), (3 * LARGE_BODY // 2, 4)],
)
def test_level_follows_the_body_size(size: int, xfl: int) -> None:
    headers, body = raw(make_client(), size)
    assert headers["content-encoding"] == "gzip"
    assert body[:2] == b"\x1f\x8b" and body[8] == xfl
    assert gzip.decompress(body) == PAYLOAD[:size]


def test_levels_are_settings() -> None:
    _, body = raw(make_client(level=1, large_level=9), 200_000)
    assert body[8] == 4  # level 1 below the threshold
    _, body = raw(make_client(level=1, large_level=9), LARGE_BODY)
    assert body[8] == 2  # level 9 ("maximum compression") above it
    assert gzip.decompress(body) == PAYLOAD[:LARGE_BODY]


def test_small_bodies_and_clients_without_gzip_get_identity() -> None:
    client = make_client()
    headers, body = raw(client, 500)
    assert "content-encoding" not in headers and body == PAYLOAD[:500]
    headers, body = raw(client, LARGE_BODY, encoding="identity")
    assert "content-encoding" not in headers and body == PAYLOAD[:LARGE_BODY]
