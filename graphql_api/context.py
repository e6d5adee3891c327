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


class ColumnSink(dict[tuple[Any, ...], Column]):
    """The numpy-backed columns (loaders/columns.py) a request's fields returned, by response
    path, for a caller in this process that wants the arrays (graphql_api/download.py).

    `json` says whether the result must still carry the columns' JSON: False only when no one
    reads that JSON (no response cache stores it, no second execution is compared with it),
    and then graphql_api/fastpath.py leaves `null` in their place and spares the encoding.
    """

    def __init__(self, json: bool = True) -> None:
        super().__init__()
        self.json = json


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
    def column_sink(self) -> ColumnSink | None:
        """Where this request's numpy-backed columns are collected (graphql_api/download.py
        sets one on the request's state); None: nobody wants them."""
        request = self.request
        if request is None:
            return None
        sink: ColumnSink | None = getattr(request.state, "columns", None)
        return sink


Info = _Info[Context, None]
