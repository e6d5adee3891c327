"""The registry, configuration defaults and argument checks (no HTTP involved)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.providers.support import ReplayServer, collect
from workers.providers import (
    TIMEFRAMES,
    AlpacaProvider,
    BinanceProvider,
    MarketDataProvider,
    PolygonProvider,
    ProviderConfig,
    ProviderError,
    config_from_env,
    get_provider,
)
from workers.providers.alpaca import TIMEFRAMES as ALPACA_TIMEFRAMES
from workers.providers.binance import TIMEFRAMES as BINANCE_TIMEFRAMES
from workers.providers.polygon import TIMEFRAMES as POLYGON_TIMEFRAMES

T0 = datetime(2024, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "cls", "base_url"),
    [
        ("alpaca", AlpacaProvider, "https://data.alpaca.markets"),
        ("polygon", PolygonProvider, "https://api.polygon.io"),
        ("binance", BinanceProvider, "https://api.binance.com"),
        (" Binance ", BinanceProvider, "https://api.binance.com"),
    ],
)
async def test_get_provider_builds_each_with_documented_defaults(
    name: str, cls: type[MarketDataProvider], base_url: str
) -> None:
    async with get_provider(name) as provider:
        assert isinstance(provider, cls)
        assert provider.config.base_url == base_url
        assert provider.name == name.strip().lower()


async def test_get_provider_keeps_the_given_config(
    fast_config: Callable[..., ProviderConfig],
) -> None:
    config = fast_config(max_attempts=7)
    async with get_provider("polygon", config) as provider:
        assert provider.config.max_attempts == 7
        assert provider.config.base_url == config.base_url


def test_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match="unknown provider 'yahoo'; known: alpaca, polygon, binance"
    ):
        get_provider("yahoo")


def test_every_provider_maps_every_project_timeframe() -> None:
    for table in (ALPACA_TIMEFRAMES, POLYGON_TIMEFRAMES, BINANCE_TIMEFRAMES):
        assert tuple(table) == TIMEFRAMES


@pytest.mark.parametrize("name", ["alpaca", "polygon", "binance"])
async def test_unknown_timeframe_is_a_clear_value_error_before_any_request(
    name: str, replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    async with get_provider(name, fast_config()) as provider:
        with pytest.raises(ValueError, match=f"{name} cannot serve timeframe 'M2'; it serves M1"):
            await collect(provider, "X", "M2", T0, T0 + timedelta(hours=1))
    assert replay.seen() == []


@pytest.mark.parametrize("name", ["alpaca", "polygon", "binance"])
async def test_naive_or_reversed_ranges_are_value_errors(
    name: str, replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    async with get_provider(name, fast_config()) as provider:
        with pytest.raises(ValueError, match="start must be timezone-aware"):
            await collect(provider, "X", "M1", datetime(2024, 1, 2), T0)
        with pytest.raises(ValueError, match="is after end"):
            await collect(provider, "X", "M1", T0 + timedelta(days=1), T0)
    assert replay.seen() == []


def test_config_from_env_reads_each_providers_documented_variables() -> None:
    env = {"APCA_API_KEY_ID": "AK", "APCA_API_SECRET_KEY": "SK", "POLYGON_API_KEY": "PK"}
    alpaca = config_from_env("alpaca", env)
    assert (alpaca.api_key, alpaca.api_secret) == ("AK", "SK")
    polygon = config_from_env("polygon", env)
    assert (polygon.api_key, polygon.api_secret) == ("PK", None)
    binance = config_from_env("binance", env)
    assert (binance.api_key, binance.api_secret) == (None, None)


def test_config_repr_masks_credentials() -> None:
    text = repr(ProviderConfig(api_key="AKID-visible?", api_secret="hunter2"))
    assert "AKID-visible?" not in text and "hunter2" not in text
    assert "api_key='***'" in text and "timeout_seconds=30.0" in text


@pytest.mark.parametrize(
    "bad",
    [
        {"max_attempts": 0},
        {"requests_per_minute": 0},
        {"timeout_seconds": -1},
        {"burst": 0},
        {"backoff_initial_seconds": -0.1},
    ],
)
def test_config_rejects_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ProviderConfig(**bad)  # type: ignore[arg-type]


def test_reference_url_follows_an_overridden_base_url() -> None:
    # A proxy or replay server set as base_url must not leave listings on the public host.
    resolved = ProviderConfig(base_url="http://proxy:8080").with_defaults(
        base_url="https://data.example", requests_per_minute=1, reference_base_url="https://api.x"
    )
    assert resolved.reference_base_url == "http://proxy:8080"
    default = ProviderConfig().with_defaults(
        base_url="https://data.example", requests_per_minute=1, reference_base_url="https://api.x"
    )
    assert (default.base_url, default.reference_base_url) == (
        "https://data.example",
        "https://api.x",
    )


def test_provider_error_message_names_provider_status_and_reason() -> None:
    error = ProviderError("polygon", 502, "bad gateway")
    assert str(error) == "polygon: HTTP 502: bad gateway"
    assert str(ProviderError("binance", None, "connection failed")) == (
        "binance: no HTTP response: connection failed"
    )
