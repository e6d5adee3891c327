"""Structured logs: one line per request with its id, SQL count and duration; slow logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from core.logging_setup import (
    ConsoleFormatter,
    JsonFormatter,
    configure_logging,
    resolve_format,
)
from core.settings import load_settings
from tests.ops.conftest import LAG_TICKER, LogLines
from tests.ops.test_metrics import TWO_SERIES, count_statements, post

Open = Callable[..., TestClient]
REQUEST = "market_graphql.request"
SQL = "market_graphql.sql"


def test_one_json_line_per_request_with_the_echoed_id(
    app_client: Open, json_logs: LogLines
) -> None:
    client = app_client(cache_enabled=False)
    with count_statements(client) as statements:
        response = post(client, TWO_SERIES, headers={"x-request-id": "ops-req-1"})
    assert response.headers["x-request-id"] == "ops-req-1"

    lines = json_logs.records(REQUEST)
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "ops-req-1"
    assert line["level"] == "info" and line["msg"] == "request"
    assert line["operation"] == "TwoSeries" and line["operation_type"] == "query"
    assert line["outcome"] == "ok" and line["status"] == 200 and line["method"] == "POST"
    assert line["sql_count"] == len(statements) >= 2
    assert line["duration_ms"] > 0 and 0 < line["sql_ms"] <= line["duration_ms"]
    assert line["cache_hits"] == 0 and line["principal"] == "anonymous"
    assert line["cost"] > 0
    assert line["ts"].endswith("Z")


def test_a_generated_request_id_is_logged_and_echoed(app_client: Open, json_logs: LogLines) -> None:
    client = app_client(cache_enabled=False)
    response = post(client, "query NoId { symbols(first: 1) { edges { cursor } } }")
    generated = response.headers["x-request-id"]
    assert len(generated) == 32
    (line,) = json_logs.records(REQUEST)
    assert line["request_id"] == generated and line["operation"] == "NoId"


def test_cache_hits_are_counted_per_request(app_client: Open, json_logs: LogLines) -> None:
    client = app_client(cache_enabled=True)
    query = "query Twice { symbols(first: 2) { edges { node { ticker } } } }"
    post(client, query)
    post(client, query)
    first, second = json_logs.records(REQUEST)
    assert first["cache_hits"] == 0 and first["cache_misses"] >= 1
    assert second["cache_hits"] == 1  # the whole response, from the cache
    assert second["sql_count"] < first["sql_count"]


def test_rejected_requests_are_logged_once(app_client: Open, json_logs: LogLines) -> None:
    client = app_client(cache_enabled=False)
    response = post(client, "query {", headers={"accept": "application/graphql-response+json"})
    assert response.status_code == 400
    (line,) = json_logs.records(REQUEST)
    assert line["outcome"] == "rejected" and line["status"] == 400
    assert line["operation"] is None and line["sql_count"] == 0


def test_slow_request_is_a_warning(app_client: Open, json_logs: LogLines) -> None:
    client = app_client(cache_enabled=False, slow_request_ms=0)
    post(client, "query Slow { symbols(first: 1) { edges { cursor } } }")
    (line,) = json_logs.records(REQUEST)
    assert line["level"] == "warning" and line["msg"] == "slow request"
    assert line["operation"] == "Slow"


def test_fast_request_is_info_under_a_high_threshold(app_client: Open, json_logs: LogLines) -> None:
    client = app_client(cache_enabled=False, slow_request_ms=60_000, slow_sql_ms=60_000)
    post(client, "query Fast { symbols(first: 1) { edges { cursor } } }")
    assert [r["level"] for r in json_logs.records()] == ["info"]


def test_slow_sql_with_request_id_and_plan(app_client: Open, json_logs: LogLines) -> None:
    client = app_client(cache_enabled=False, slow_sql_ms=0, slow_sql_explain=True)
    query = f'query Plan {{ symbol(ticker: "{LAG_TICKER}") {{ ticker }} }}'
    with count_statements(client) as statements:
        post(client, query, headers={"x-request-id": "ops-sql-1"})
    slow = [r for r in json_logs.records(SQL) if r["msg"] == "slow SQL"]
    plans = [r for r in json_logs.records(SQL) if r["msg"] == "slow SQL plan"]
    # The engine also ran the EXPLAINs (after the request's own statements).
    own = [s for s in statements if not s.startswith(("EXPLAIN", "SET LOCAL"))]
    assert len(statements) == 3 * len(own)
    # Every statement of the request is slow at 0 ms; the EXPLAINs are not logged as slow.
    assert len(slow) == len(own) >= 1
    assert all(r["level"] == "warning" and r["request_id"] == "ops-sql-1" for r in slow)
    assert all("$1" in r["statement"] or "SELECT" in r["statement"] for r in slow)
    assert plans and all(r["request_id"] == "ops-sql-1" for r in plans)
    assert any("Scan" in r["plan"] for r in plans), plans
    # The request line counts the request's statements only, not the EXPLAINs after it.
    (line,) = json_logs.records(REQUEST)
    assert line["sql_count"] == len(own)


def test_plans_are_off_by_default(app_client: Open, json_logs: LogLines) -> None:
    client = app_client(cache_enabled=False, slow_sql_ms=0)
    post(client, "query NoPlan { symbols(first: 1) { edges { cursor } } }")
    assert json_logs.records(SQL)
    assert not [r for r in json_logs.records(SQL) if r["msg"] == "slow SQL plan"]


def test_request_logging_can_be_turned_off(app_client: Open, json_logs: LogLines) -> None:
    client = app_client(cache_enabled=False, log_requests=False, slow_sql_ms=0)
    post(client, "query Quiet { symbols(first: 1) { edges { cursor } } }")
    assert json_logs.records() == []


@pytest.fixture
def restore_root() -> Iterator[None]:
    """Puts the root logger's handlers and level back after configure_logging replaced them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_format_follows_the_setting_or_the_terminal(restore_root: None) -> None:
    auto = load_settings(database_url=None)
    assert resolve_format(auto, io.StringIO()) == "json"
    assert resolve_format(auto, _Tty()) == "console"
    assert resolve_format(load_settings(log_format="console"), io.StringIO()) == "console"
    assert resolve_format(load_settings(log_format="json"), _Tty()) == "json"

    stream = io.StringIO()
    configure_logging(load_settings(log_format="json", log_level="debug"), stream)
    logging.getLogger("market_graphql.test").info("hello %s", "world", extra={"rows": 3})
    record = json.loads(stream.getvalue().splitlines()[-1])
    assert record["msg"] == "hello world" and record["rows"] == 3 and record["level"] == "info"
    assert logging.getLogger().level == logging.DEBUG


def test_console_lines_are_readable() -> None:
    record = logging.LogRecord("market_graphql.request", logging.INFO, "", 0, "request", (), None)
    record.request_id = "abc"
    record.operation = "Bars"
    record.duration_ms = 12.5
    record.note = "two words"
    line = ConsoleFormatter().format(record)
    assert "INFO" in line and "market_graphql.request: request" in line
    assert "request_id=abc operation=Bars duration_ms=12.5 note='two words'" in line
    assert "\n" not in line


def test_json_lines_keep_exceptions_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, "", 0, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    decoded = json.loads(line)
    assert decoded["level"] == "error" and "ValueError: boom" in decoded["exc"]
