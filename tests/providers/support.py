"""The replay server and assertions shared by the provider tests."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import pandas as pd

from workers.providers import BAR_COLUMNS, MarketDataProvider


@dataclass
class Reply:
    """One scripted response: JSON (or a raw body), status, headers, and a delay before it."""

    json: Any = None
    status: int = 200
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float


Handler = Callable[[Seen], Reply]


class ReplayServer:
    """An ASGI app answering each path from a queue of replies or a handler function."""

    def __init__(self) -> None:
        self.base_url = ""
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Reply]] = {}
        self._handlers: dict[str, Handler] = {}
        self.requests: list[Seen] = []

    def reset(self) -> None:
        """Forget the script and the recorded requests."""
        with self._lock:
            self._queues.clear()
            self._handlers.clear()
            self.requests.clear()

    def queue(self, path: str, *replies: Reply) -> None:
        """Answer `path` with these replies, one per request, in order."""
        with self._lock:
            self._queues.setdefault(path, deque()).extend(replies)

    def route(self, path: str, handler: Handler) -> None:
        """Answer every request for `path` with `handler(request)`."""
        with self._lock:
            self._handlers[path] = handler

    def seen(self, path: str | None = None) -> list[Seen]:
        """Requests received so far, optionally only those for `path`."""
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def _next(self, request: Seen) -> Reply:
        """The reply the script gives `request`; 599 flags a request no test expected."""
        with self._lock:
            self.requests.append(request)
            queue = self._queues.get(request.path)
            if queue:
                return queue.popleft()
            handler = self._handlers.get(request.path)
        if handler is not None:
            return handler(request)
        return Reply({"message": f"unscripted request for {request.path}"}, status=599)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The ASGI entry point."""
        assert scope["type"] == "http"
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        reply = self._next(Seen(scope["path"], query, headers, time.monotonic()))
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.body is not None:
            payload, content_type = reply.body.encode(), "text/plain"
        else:
            payload, content_type = json.dumps(reply.json).encode(), "application/json"
        raw_headers = [(b"content-type", content_type.encode())]
        raw_headers += [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        try:
            await send(
                {"type": "http.response.start", "status": reply.status, "headers": raw_headers}
            )
            await send({"type": "http.response.body", "body": payload})
        except OSError:
            # The client gave up (timeout test); nothing is listening any more.
            pass


async def collect(
    provider: MarketDataProvider, ticker: str, timeframe: str, start: datetime, end: datetime
) -> list[pd.DataFrame]:
    """Every page fetch_bars yields, each checked against the page contract."""
    pages = []
    async for page in provider.fetch_bars(ticker, timeframe, start, end):
        assert_canonical(page)
        pages.append(page)
    return pages


def assert_canonical(page: pd.DataFrame) -> None:
    """The page has the canonical columns, dtypes, and sorted unique times."""
    assert tuple(page.columns) == BAR_COLUMNS
    assert str(page["time"].dtype) == "datetime64[ns, UTC]"
    for column in BAR_COLUMNS[1:]:
        assert page[column].dtype == "float64", column
    assert page["time"].is_monotonic_increasing
    assert page["time"].is_unique
    assert not page.empty
