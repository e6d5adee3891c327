"""uvicorn's httptools protocol with bounds on the request head: size and time.

Stock uvicorn with httptools buffers request headers without limit (a 10 MB header was
accepted and answered 200) and waits forever for a head that trickles in a byte at a time.
This protocol answers 431 once the head passes MAX_HEADER_BYTES and 408 when it is not
complete within HEADER_TIMEOUT_SECONDS, then closes the connection. Bodies are bounded by the
GraphQL endpoint itself (graphql_api/http.py, `read_body`).

`market-graphql serve` runs uvicorn with `http=HTTP_PROTOCOL`; each worker process's
`create_app` calls `configure` with its settings.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: The import string uvicorn takes as its `http` option.
HTTP_PROTOCOL = "graphql_api.http_protocol:BoundedHttpToolsProtocol"

_limits = {"max_head_bytes": 65_536, "head_timeout": 10.0}

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def configure(max_head_bytes: int, head_timeout: float) -> None:
    """Set the bounds for connections accepted from now on in this process."""
    _limits["max_head_bytes"] = max_head_bytes
    _limits["head_timeout"] = head_timeout


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses request heads that are too large or too slow."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_head = int(_limits["max_head_bytes"])
        self._head_timeout = float(_limits["head_timeout"])
        self._in_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        was_in_head = self._in_head
        super().data_received(data)
        # Counted only for a read that found the head under way and left it so: a read that
        # completes a head or a message also carries body bytes, which are not head.
        if was_in_head and self._in_head and not self._refused:
            self._head_bytes += len(data)
            if self._head_bytes > self._max_head:
                self._refuse(431, f"request head exceeds {self._max_head} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = False  # idle until the next request's first byte

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(self._head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        # Armed on connecting and on each request's first byte, disarmed once its head is
        # complete: idle keep-alive time after a response is uvicorn's (timeout_keep_alive).
        if self._in_head and not self._refused:
            self._refuse(408, f"request head not received within {self._head_timeout:g} s")

    def _refuse(self, status: int, message: str) -> None:
        self._refused = True
        self._disarm_head_timer()
        body = message.encode()
        self.logger.warning("Refused request: %s", message)
        if self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, _REASONS[status], len(body), body)
        )
        self.transport.close()
