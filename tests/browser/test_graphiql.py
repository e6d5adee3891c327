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
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from core.settings import Settings
from graphql_api.app import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = (
    "the browser test needs Debian's Chromium and its driver and the selenium package: "
    "`apt-get install -y chromium chromium-driver` and `pip install -e '.[test]'` "
    "(see .ci/run and the Makefile)"
)
TIMEOUT = 20.0  # seconds for any one wait in the page


@pytest.fixture(scope="module")
def service(settings: Settings) -> Iterator[str]:
    """The real app under uvicorn in a thread, on a free port of 127.0.0.1; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium that can reach 127.0.0.1 only, with its network and console logs on."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: {INSTALL_HINT}", pytrace=False)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"selenium is not installed: {INSTALL_HINT}", pytrace=False)

    profile = tempfile.mkdtemp(prefix="mg-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--window-size=1400,900",
        f"--user-data-dir={profile}",
        # Nothing but the service is reachable: host names do not resolve, and any other
        # address (an IP literal too) goes through a proxy that is not there. Loopback is
        # never proxied.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--proxy-server=http://127.0.0.1:9",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _network(driver: Any) -> list[dict[str, Any]]:
    """The DevTools Network events recorded since the last call (requests, responses, sockets)."""
    events = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"].startswith("Network."):
            events.append(message)
    return events


def _requested_urls(events: list[dict[str, Any]]) -> list[str]:
    urls = []
    for event in events:
        params = event["params"]
        if event["method"] == "Network.requestWillBeSent":
            urls.append(params["request"]["url"])
        elif event["method"] == "Network.webSocketCreated":
            urls.append(params["url"])
    return urls


def _editor_value(driver: Any, pane: str) -> str:
    value: str = driver.execute_script(
        "return document.querySelector(arguments[0] + ' .CodeMirror').CodeMirror.getValue();",
        pane,
    )
    return value


def _wait(driver: Any, what: str, condition: Any) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, TIMEOUT, poll_frequency=0.1).until(condition)
    except TimeoutException:
        body = driver.execute_script("return document.body ? document.body.innerText : ''")
        console = [e["message"] for e in driver.get_log("browser")]
        pytest.fail(
            f"timed out waiting for {what}; page text: {body[:500]!r}; console: {console}",
            pytrace=False,
        )


def test_graphiql_runs_queries_with_no_internet(service: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{service}/graphql")

    # The editor renders (a blank page, e.g. scripts that did not load, fails here) with the
    # example query preloaded.
    _wait(
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
    _wait(
        browser,
        "the explorer's root fields",
        lambda d: (
            (roots := d.find_elements(By.CSS_SELECTOR, ".graphiql-explorer-root"))
            and "symbols" in roots[0].text
        ),
    )

    # Run it with the button; the result appears in the response pane.
    browser.find_element(By.CSS_SELECTOR, ".graphiql-execute-button").click()
    _wait(
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
    _wait(
        browser,
        "the result of the typed query",
        lambda d: (
            "International Business Machines Corp."
            in d.find_element(By.CSS_SELECTOR, ".graphiql-response").text
        ),
    )

    # Nothing left the machine: every request went to the service (the log is not empty: the
    # vendored files are in it), every response succeeded, the console has no errors.
    events = _network(browser)
    urls = _requested_urls(events)
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
