"""Provider lookup by name, and credentials from the environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from core.providers import PROVIDER_SPECS
from workers.providers.alpaca import AlpacaProvider
from workers.providers.base import MarketDataProvider, ProviderConfig
from workers.providers.binance import BinanceProvider
from workers.providers.polygon import PolygonProvider

#: The client of each provider declared in core/providers.py, in the same order.
PROVIDERS: dict[str, Callable[[ProviderConfig | None], MarketDataProvider]] = {
    cls.spec.name: cls for cls in (AlpacaProvider, PolygonProvider, BinanceProvider)
}


def _canonical(name: str) -> str:
    """The registry key for `name`, or a ValueError listing the known ones."""
    key = name.strip().lower()
    if key not in PROVIDERS:
        raise ValueError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")
    return key


def get_provider(name: str, config: ProviderConfig | None = None) -> MarketDataProvider:
    """A new client for the named provider; None config means its documented defaults."""
    return PROVIDERS[_canonical(name)](config)


def config_from_env(name: str, environ: Mapping[str, str] | None = None) -> ProviderConfig:
    """A default config carrying the provider's credentials from the environment, if set."""
    env = os.environ if environ is None else environ
    spec = PROVIDER_SPECS[_canonical(name)]

    def read(key: str) -> str | None:
        var = spec.env.get(key)
        return env.get(var) if var else None

    return ProviderConfig(api_key=read("api_key"), api_secret=read("api_secret"))
