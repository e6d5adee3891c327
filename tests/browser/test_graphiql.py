"""GraphiQL in a real browser with no internet: every file comes from the service itself.

Starts the real service (uvicorn, on a free port, over the session's demo database) and a
headless Chromium (Debian packages `chromium` and `chromium-driver`, driven by Selenium) that
cannot reach anything but 127.0.0.1: names do not resolve and every other address goes to a dead
proxy. The browser's network log must show no request to anywhere else. The page must render
the editor with the example query preloaded, run it, and show the result.

Set GRAPHIQL_SCREENSHOT=/path/to/file.png to keep a screenshot of the page after the first run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from graphql_api.app import create_app
from tests.browser.support import launch_browser, network, requested_urls, serve, wait


@pytest.fixture(scope="module")
def service(settings: Settings) -> Iterator[str]:
    """The real app under uvicorn in a thread, on a free port of 127.0.0.1; yields its base URL."""
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium that can reach 127.0.0.1 only, with its network and console logs on."""
    with launch_browser() as driver:
        yield driver


def _editor_value(driver: Any, pane: str) -> str:
    value: str = driver.execute_script(
        "return document.querySelector(arguments[0] + ' .CodeMirror').CodeMirror.getValue();",
        pane,
    )
    return value


def test_graphiql_runs_queries_with_no_internet(service: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{service}/graphql")

    # The editor renders (a blank page, e.g. scripts that did not load, fails here) with the
    # example query preloaded.
    wait(
        browser,
        "the GraphiQL query editor",
        lambda d: d.find_elements(By.CSS_SELECTOR, ".graphiql-query-editor .CodeMirror"),
    )
    preloaded = _editor_value(browser, ".graphiql-query-editor")
    assert "query MarketTour" in preloaded
    assert 'symbol(ticker: "AAPL")' in preloaded
    assert 'symbol(ticker: "ACME")' in preloaded
    assert "series(" in preloaded
    # The explorer plugin opens from the sidebar and lists the root fields of the schema.
    browser.find_element(By.CSS_SELECTOR, '[aria-label="Show GraphiQL Explorer"]').click()
    wait(
        browser,
        "the explorer's root fields",
        lambda d: (
            (roots := d.find_elements(By.CSS_SELECTOR, ".graphiql-explorer-root"))
            and "symbols" in roots[0].text
        ),
    )

    # Run it with the button; the result appears in the response pane.
    browser.find_element(By.CSS_SELECTOR, ".graphiql-execute-button").click()
    wait(
        browser,
        "the result of the example query",
        lambda d: (
            (text := d.find_element(By.CSS_SELECTOR, ".graphiql-response").text)
            and "Apple Inc." in text
            and "430.47" in text
        ),
    )
    result = json.loads(_editor_value(browser, ".graphiql-response"))
    assert "errors" not in result, result
    data = result["data"]
    assert data["apple"]["daily"]["edges"][0]["node"]["close"] == 430.47
    assert {e["node"]["ticker"] for e in data["synthetic"]["edges"]} >= {"ACME", "GLOBX"}
    assert len(data["acme"]["hourly"]["edges"]) == 5
    assert len(data["acme"]["chart"]["time"]) <= 40

    screenshot = os.environ.get("GRAPHIQL_SCREENSHOT")
    if screenshot:
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(screenshot)

    # "Chart this" in the toolbar links the editor's query to /chart (tests/browser/test_chart.py
    # draws such a query).
    link = browser.find_element(By.CSS_SELECTOR, "a.market-chart-this").get_attribute("href")
    assert link.startswith(f"{service}/chart?query=")
    assert parse_qs(urlsplit(link).query)["query"][0] == preloaded

    # Replace the query and run it from the keyboard (Ctrl-Enter in the editor).
    browser.execute_script(
        "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue("
        "arguments[0]);",
        '{ symbol(ticker: "IBM") { name latestBar { close } } }',
    )
    # GraphiQL re-parses an edited document (and drops the old operation name) after a
    # debounce of up to 500 ms; sending earlier posts the new query with the example's
    # operationName, which the service rightly refuses (400, seen once on a loaded machine).
    time.sleep(1.0)
    browser.find_element(By.CSS_SELECTOR, ".graphiql-query-editor .CodeMirror").click()
    active = browser.switch_to.active_element
    active.send_keys(Keys.CONTROL, Keys.ENTER)
    wait(
        browser,
        "the result of the typed query",
        lambda d: (
            "International Business Machines Corp."
            in d.find_element(By.CSS_SELECTOR, ".graphiql-response").text
        ),
    )

    # Nothing left the machine: every request went to the service (the log is not empty: the
    # vendored files are in it), every response succeeded, the console has no errors.
    events = network(browser)
    urls = requested_urls(events)
    assert any("/graphiql-static/graphiql.min.js" in url for url in urls), urls
    assert any(url.startswith(f"{service}/graphql") for url in urls), urls
    # chrome://, data: and blob: URLs are served inside the browser (the first ones by the
    # initial new-tab page); anything else must be the service.
    local = ("data:", "blob:", "about:", "chrome:", "chrome-extension:", "chrome-untrusted:")
    outside = [u for u in urls if not u.startswith((f"{service}/", *local))]
    assert outside == [], f"requests to outside the service: {outside}"
    failed = [
        (e["params"]["response"]["url"], e["params"]["response"]["status"])
        for e in events
        if e["method"] == "Network.responseReceived" and e["params"]["response"]["status"] >= 400
    ]
    assert failed == []
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_page_references_only_vendored_files(client: TestClient) -> None:
    """Without a browser: every asset the page names is served here, cacheable, and matches."""
    page = client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "unpkg.com" not in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)" integrity="([^"]+)"', page.text)
    assert len(assets) == 6, assets
    for url, integrity in assets:
        assert url.startswith("/graphiql-static/") and "?v=" in url, url
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        digest = base64.b64encode(hashlib.sha384(response.content).digest()).decode()
        assert integrity == f"sha384-{digest}", url
    unversioned = client.get("/graphiql-static/VERSIONS")
    assert unversioned.headers["cache-control"] == "no-cache"
    assert "graphiql 3.8.3" in unversioned.text
    # The 3.5 MB bundle goes out compressed (the app's GZip middleware covers static files).
    bundle = next(url for url, _ in assets if "/graphiql.min.js" in url)
    compressed = client.get(bundle, headers={"accept-encoding": "gzip"})
    assert compressed.headers.get("content-encoding") == "gzip"
