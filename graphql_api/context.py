"""The per-request context: settings, engines, loaders, and the HTTP request/response."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.fastapi import BaseContext
from strawberry.types import Info as _Info

from core.intervals import Interval as CoreInterval
from core.settings import Settings
from loaders import Loaders
from loaders.columns import Column


class Context(BaseContext):
    """What every resolver can reach through `info.context`."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        loaders: Loaders,
        read_engine: AsyncEngine | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        #: The primary: writes, and reads that must see this request's own writes.
        self.engine = engine
        #: Where this request's reads go: a replica, or the primary (core/replicas.py).
        self.read_engine = read_engine or engine
        self.loaders = loaders
        self.extras: dict[str, Any] = {}
        #: Calendar of each bar row this request serves from an exchange calendar, by the
        #: row's id(): what `Bar.sessionOpen`/`sessionClose` read (rows are shared tuples
        #: that carry no calendar of their own).
        self.bar_calendars: dict[int, tuple[str, CoreInterval]] = {}

    @property
    def column_sink(self) -> dict[tuple[Any, ...], Column] | None:
        """Where the numpy-backed columns this request's fields return are collected, by
        response path, for a caller in this process that wants the arrays rather than their
        JSON (graphql_api/download.py sets it on the request's state); None: nobody does."""
        request = self.request
        if request is None:
            return None
        sink: dict[tuple[Any, ...], Column] | None = getattr(request.state, "columns", None)
        return sink


Info = _Info[Context, None]
