"""The market-data providers: each one's name, what it serves and which settings it takes.

This is the one declaration of a provider outside its client: the workers' client
(workers/providers/<name>.py) points at its entry here, the settings grow a field for each of
its keys (`<name>_<key>`, e.g. ALPACA_API_KEY in the environment), and the API, which may not
import the workers, validates and describes `requestIngest`'s `provider` from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The settings a provider can take; the workers' ProviderConfig has a field of each name.
SETTING_KEYS = ("api_key", "api_secret", "base_url")


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    description: str
    #: Which of SETTING_KEYS it takes.
    settings: tuple[str, ...]
    #: For a setting, the variable the provider's own SDKs and docs use, read when the setting
    #: is unset, so existing setups just work.
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.settings) - set(SETTING_KEYS) or set(self.env) - set(self.settings)
        if unknown:
            raise ValueError(f"{self.name}: unknown setting keys {sorted(unknown)}")

    def setting(self, key: str) -> str:
        """The name of the Settings field (and, upper-cased, the variable) for `key`."""
        return f"{self.name}_{key}"


PROVIDER_SPECS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            "alpaca",
            "US stock bars from Alpaca (split-adjusted).",
            ("api_key", "api_secret", "base_url"),
            {"api_key": "APCA_API_KEY_ID", "api_secret": "APCA_API_SECRET_KEY"},
        ),
        ProviderSpec(
            "polygon",
            "Aggregate bars from Polygon (stocks).",
            ("api_key", "base_url"),
            {"api_key": "POLYGON_API_KEY"},
        ),
        ProviderSpec(
            "binance", "Spot klines from Binance (volume in the base asset).", ("base_url",)
        ),
    )
}

#: Names of the providers, in the order messages list them.
PROVIDER_NAMES = tuple(PROVIDER_SPECS)


def setting_fields(specs: Mapping[str, ProviderSpec] = PROVIDER_SPECS) -> dict[str, Any]:
    """Pydantic field definitions (optional strings) for every provider's settings."""
    return {
        spec.setting(key): (str | None, None) for spec in specs.values() for key in spec.settings
    }


def names_in_words(specs: Mapping[str, ProviderSpec] = PROVIDER_SPECS) -> str:
    """'alpaca, polygon or binance.'"""
    names = list(specs)
    return (", ".join(names[:-1]) + " or " if len(names) > 1 else "") + names[-1] + "."
