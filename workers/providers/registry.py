"""Provider lookup by name, and credentials from the environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from workers.providers.alpaca import AlpacaProvider
from workers.providers.base import MarketDataProvider, ProviderConfig
from workers.providers.binance import BinanceProvider
from workers.providers.polygon import PolygonProvider

PROVIDERS: dict[str, Callable[[ProviderConfig | None], MarketDataProvider]] = {
    "alpaca": AlpacaProvider,
    "polygon": PolygonProvider,
    "binance": BinanceProvider,
}

# The variable names each provider's own SDKs and docs use, so existing setups just work.
_ENV_KEYS: dict[str, tuple[str | None, str | None]] = {
    "alpaca": ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY"),
    "polygon": ("POLYGON_API_KEY", None),
    "binance": (None, None),
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
    key_var, secret_var = _ENV_KEYS[_canonical(name)]
    return ProviderConfig(
        api_key=env.get(key_var) if key_var else None,
        api_secret=env.get(secret_var) if secret_var else None,
    )
