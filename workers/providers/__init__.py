"""Market-data provider clients: paged OHLCV bars and symbol listings over HTTP.

Usage::

    async with get_provider("alpaca", config_from_env("alpaca")) as provider:
        async for page in provider.fetch_bars("AAPL", "M1", start, end):
            ...  # page: time (datetime64[ns, UTC]), open, high, low, close, volume
"""

from workers.providers.alpaca import AlpacaProvider
from workers.providers.base import (
    BAR_COLUMNS,
    TIMEFRAMES,
    MarketDataProvider,
    ProviderAction,
    ProviderConfig,
    ProviderError,
    SymbolListing,
)
from workers.providers.binance import BinanceProvider
from workers.providers.polygon import PolygonProvider
from workers.providers.registry import PROVIDERS, config_from_env, get_provider

__all__ = [
    "BAR_COLUMNS",
    "PROVIDERS",
    "TIMEFRAMES",
    "AlpacaProvider",
    "BinanceProvider",
    "MarketDataProvider",
    "PolygonProvider",
    "ProviderAction",
    "ProviderConfig",
    "ProviderError",
    "SymbolListing",
    "config_from_env",
    "get_provider",
]
