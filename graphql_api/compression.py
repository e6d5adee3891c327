"""Gzip for responses, at a compression level chosen by the body's size.

Level 5 costs about a third of level 9's CPU for nearly its ratio, which suits the typical
response (a chart page of 10-500 KB). For multi-megabyte bodies (a 100,000-point series is
7 MB of JSON) level 5 still takes ~185 ms of CPU against ~55 ms at level 1, for 17% more
bytes: level 1 wins on any link faster than ~20 Mbit/s, so large bodies get `large_level`.

Built on Starlette's GZipMiddleware (which already compresses chunks of 128 KiB and more in
a worker thread, off the event loop): only the level of a response's compressor is decided
from its first body chunk, before the compressor exists.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.gzip import (
    DEFAULT_EXCLUDED_CONTENT_TYPES,
    GZipMiddleware,
    GZipResponder,
    IdentityResponder,
)
from starlette.types import ASGIApp, Receive, Scope, Send

#: Bodies from this size on are compressed at the large level.
LARGE_BODY = 1024 * 1024

#: Never gzipped: Arrow IPC streams (graphql_api/download.py) are binary columns that gzip
#: shrinks little at a cost comparable to producing them; clients read them as they come.
EXCLUDED = (*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/vnd.apache.arrow.stream")


class _SizedGZipResponder(GZipResponder):
    def __init__(self, app: ASGIApp, minimum_size: int, level: int, large_level: int) -> None:
        super().__init__(app, minimum_size, compresslevel=level, exclude_content_types=EXCLUDED)
        self.large_level = large_level

    async def apply_compression(self, body: bytes, *, more_body: bool) -> bytes:
        if self._compressor is None and len(body) >= LARGE_BODY:
            self.compresslevel = self.large_level
        return await super().apply_compression(body, more_body=more_body)


class SizedGZipMiddleware(GZipMiddleware):
    """GZipMiddleware with `level` for ordinary bodies and `large_level` from LARGE_BODY up."""

    def __init__(
        self, app: ASGIApp, minimum_size: int = 1000, level: int = 5, large_level: int = 1
    ) -> None:
        super().__init__(app, minimum_size=minimum_size, compresslevel=level)
        self.large_level = large_level

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        responder: ASGIApp
        if "gzip" in Headers(scope=scope).get("accept-encoding", ""):
            responder = _SizedGZipResponder(
                self.app, self.minimum_size, self.compresslevel, self.large_level
            )
        else:
            responder = IdentityResponder(
                self.app, self.minimum_size, exclude_content_types=EXCLUDED
            )
        await responder(scope, receive, send)
