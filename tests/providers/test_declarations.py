"""A provider is declared once (core/providers.py); settings, credentials and the API follow."""

from __future__ import annotations

import pytest
from pydantic import create_model
from pydantic_settings import BaseSettings

from core.providers import (
    PROVIDER_NAMES,
    PROVIDER_SPECS,
    ProviderSpec,
    names_in_words,
    setting_fields,
)
from core.settings import Settings, load_settings
from workers.provider_ingest import provider_config
from workers.providers import PROVIDERS, config_from_env

KRAKEN = ProviderSpec(
    "kraken", "Spot OHLC from Kraken.", ("api_key", "base_url"), {"api_key": "KRAKEN_KEY"}
)


def test_a_declared_provider_gets_its_settings_and_its_place_in_the_description() -> None:
    specs = {**PROVIDER_SPECS, KRAKEN.name: KRAKEN}
    fields = setting_fields(specs)
    assert {"kraken_api_key", "kraken_base_url"} <= set(fields)
    assert "kraken_api_secret" not in fields
    model = create_model("WithKraken", __base__=BaseSettings, **fields)
    assert model(kraken_api_key="k").kraken_api_key == "k"  # type: ignore[attr-defined]
    assert names_in_words(specs) == "alpaca, polygon, binance or kraken."


def test_the_shipped_providers_are_declared_once() -> None:
    assert tuple(PROVIDERS) == PROVIDER_NAMES
    for name, client in PROVIDERS.items():
        assert client.spec is PROVIDER_SPECS[name]  # type: ignore[attr-defined]
        assert client.spec.description  # type: ignore[attr-defined]
    expected = {spec.setting(key) for spec in PROVIDER_SPECS.values() for key in spec.settings}
    assert expected <= set(Settings.model_fields)


def test_settings_override_the_sdk_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", "from-sdk-variable")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "sdk-secret")
    monkeypatch.setenv("ALPACA_API_KEY", "from-settings")
    monkeypatch.setenv("POLYGON_BASE_URL", "https://polygon.example")
    settings = load_settings()
    alpaca = provider_config(settings, "alpaca")
    assert (alpaca.api_key, alpaca.api_secret) == ("from-settings", "sdk-secret")
    assert provider_config(settings, "polygon").base_url == "https://polygon.example"
    assert config_from_env("binance", {}).api_key is None


def test_the_api_names_every_provider() -> None:
    from graphql_api.schema import schema

    mutation = schema._schema.mutation_type  # type: ignore[attr-defined]
    argument = mutation.fields["requestIngest"].args["provider"]
    assert argument.description == names_in_words() == "alpaca, polygon or binance."
