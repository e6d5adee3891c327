"""Corporate actions from Polygon (splits, dividends) and Alpaca (corporate actions) against
the replay server, in the providers' documented shapes; Binance publishes none."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from tests.providers.support import ReplayServer, Reply
from workers.providers import (
    AlpacaProvider,
    BinanceProvider,
    PolygonProvider,
    ProviderAction,
    ProviderConfig,
    ProviderError,
)

START, END = date(2020, 1, 1), date(2020, 12, 31)


def polygon_body(
    results: list[dict[str, object]], next_url: str | None = None
) -> dict[str, object]:
    out: dict[str, object] = {"status": "OK", "request_id": "abc", "results": results}
    if next_url is not None:
        out["next_url"] = next_url
    return out


async def test_polygon_splits_and_dividends_follow_next_url(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue(
        "/v3/reference/splits",
        Reply(
            polygon_body(
                [{"execution_date": "2020-08-31", "split_from": 1, "split_to": 4,
                  "ticker": "AAPL", "id": "E1"}],
                f"{replay.base_url}/v3/reference/splits?cursor=Y3Vyc29y",
            )
        ),
        Reply(
            polygon_body(
                [{"execution_date": "2020-09-14", "split_from": 10, "split_to": 1,
                  "ticker": "AAPL", "id": "E2"}]
            )
        ),
    )  # fmt: skip
    replay.queue(
        "/v3/reference/dividends",
        Reply(
            polygon_body(
                [
                    {"cash_amount": 0.82, "currency": "USD", "dividend_type": "CD",
                     "ex_dividend_date": "2020-05-08", "pay_date": "2020-05-14",
                     "ticker": "AAPL", "frequency": 4},
                    {"cash_amount": 0.205, "currency": "usd", "dividend_type": "CD",
                     "ex_dividend_date": "2020-08-07", "ticker": "AAPL", "frequency": 4},
                ]
            )
        ),
    )  # fmt: skip
    async with PolygonProvider(fast_config(api_key="pk_123")) as provider:
        actions = await provider.fetch_actions("AAPL", START, END)
    assert actions == [
        ProviderAction("AAPL", "DIVIDEND", date(2020, 5, 8), 0.82, "USD"),
        ProviderAction("AAPL", "DIVIDEND", date(2020, 8, 7), 0.205, "USD"),
        ProviderAction("AAPL", "SPLIT", date(2020, 8, 31), 4.0),
        ProviderAction("AAPL", "SPLIT", date(2020, 9, 14), 0.1),
    ]
    first, second = replay.seen("/v3/reference/splits")
    assert first.query["ticker"] == "AAPL" and first.query["apiKey"] == "pk_123"
    assert first.query["execution_date.gte"] == "2020-01-01"
    assert first.query["execution_date.lte"] == "2020-12-31"
    assert second.query == {"cursor": "Y3Vyc29y", "apiKey": "pk_123"}
    (div,) = replay.seen("/v3/reference/dividends")
    assert div.query["ex_dividend_date.gte"] == "2020-01-01"


async def test_polygon_malformed_action_is_a_provider_error(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue(
        "/v3/reference/splits",
        Reply(polygon_body([{"execution_date": "2020-08-31", "split_from": 0, "split_to": 4}])),
    )
    async with PolygonProvider(fast_config(api_key="pk_123")) as provider:
        with pytest.raises(ProviderError, match="split 0 lacks"):
            await provider.fetch_actions("AAPL", START, END)


async def test_alpaca_corporate_actions_follow_page_tokens(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    path = "/v1/corporate-actions"
    replay.queue(
        path,
        Reply(
            {
                "corporate_actions": {
                    "forward_splits": [
                        {"symbol": "AAPL", "new_rate": 4, "old_rate": 1,
                         "ex_date": "2020-08-31", "record_date": "2020-08-24",
                         "payable_date": "2020-08-28", "process_date": "2020-08-31"}
                    ],
                    "cash_dividends": [
                        {"symbol": "AAPL", "rate": 0.82, "special": False, "foreign": False,
                         "ex_date": "2020-05-08", "record_date": "2020-05-11",
                         "payable_date": "2020-05-14", "process_date": "2020-05-14"}
                    ],
                },
                "next_page_token": "t2",
            }
        ),
        Reply(
            {
                "corporate_actions": {
                    "reverse_splits": [
                        {"symbol": "AAPL", "new_rate": 1, "old_rate": 10,
                         "ex_date": "2020-09-14"}
                    ]
                },
                "next_page_token": None,
            }
        ),
    )  # fmt: skip
    async with AlpacaProvider(fast_config()) as provider:
        actions = await provider.fetch_actions("AAPL", START, END)
    assert actions == [
        ProviderAction("AAPL", "DIVIDEND", date(2020, 5, 8), 0.82),
        ProviderAction("AAPL", "SPLIT", date(2020, 8, 31), 4.0),
        ProviderAction("AAPL", "SPLIT", date(2020, 9, 14), 0.1),
    ]
    first, second = replay.seen(path)
    assert first.query["symbols"] == "AAPL"
    assert first.query["types"] == "forward_split,reverse_split,cash_dividend"
    assert first.query["start"] == "2020-01-01" and first.query["end"] == "2020-12-31"
    assert first.headers["apca-api-key-id"] == "test-key-id"
    assert second.query["page_token"] == "t2"


async def test_alpaca_malformed_body_is_a_provider_error(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue("/v1/corporate-actions", Reply({"something": "else"}))
    async with AlpacaProvider(fast_config()) as provider:
        with pytest.raises(ProviderError, match="corporate_actions"):
            await provider.fetch_actions("AAPL", START, END)


async def test_binance_publishes_no_actions(fast_config: Callable[..., ProviderConfig]) -> None:
    async with BinanceProvider(fast_config()) as provider:
        with pytest.raises(ProviderError, match="does not publish corporate actions"):
            await provider.fetch_actions("BTCUSDT", START, END)
