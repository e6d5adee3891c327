"""Live updates: GraphQL subscriptions fed by committed ingest batches.

- `hub`: this process's subscribers, the reads that turn a change into bars, slow consumers.
- `fanout`: how a change gets from the writing transaction to every API process.
- `indicators`: the state behind indicatorUpdates (bars kept per symbol and feed).
- `reads`: the SQL (the read API's resampling, in one snapshot with the data version).
- `ws`: the WebSocket side: authentication on `connection_init`, subscriptions only.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from graphql_api.live.hub import Fanout, LiveHub


def create_hub(settings: Settings, engine: AsyncEngine) -> LiveHub:
    """A hub fed through Redis when REDIS_URL is set, else by this process's own LISTEN."""
    from graphql_api.live.fanout import LocalFanout, RedisFanout

    def fanout(hub: LiveHub) -> Fanout:
        """The fan-out matching the settings."""
        return RedisFanout(hub) if settings.redis_url else LocalFanout(hub)

    return LiveHub(settings, engine, fanout)


__all__ = ["LiveHub", "create_hub"]
