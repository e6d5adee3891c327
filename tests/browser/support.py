"""Headless Chromium for the browser tests: Debian's `chromium` and `chromium-driver`, driven by
Selenium, that cannot reach anything but 127.0.0.1 (see test_graphiql.py's docstring)."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = (
    "the browser test needs Debian's Chromium and its driver and the selenium package: "
    "`apt-get install -y chromium chromium-driver` and `pip install -e '.[test]'` "
    "(see .ci/run and the Makefile)"
)
TIMEOUT = 20.0  # seconds for any one wait in the page


@contextmanager
def launch_browser() -> Iterator[Any]:
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


def network(driver: Any) -> list[dict[str, Any]]:
    """The DevTools Network events recorded since the last call (requests, responses, sockets)."""
    events = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"].startswith("Network."):
            events.append(message)
    return events


def requested_urls(events: list[dict[str, Any]]) -> list[str]:
    urls = []
    for event in events:
        params = event["params"]
        if event["method"] == "Network.requestWillBeSent":
            urls.append(params["request"]["url"])
        elif event["method"] == "Network.webSocketCreated":
            urls.append(params["url"])
    return urls


def wait(driver: Any, what: str, condition: Any) -> Any:
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


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """`app` under uvicorn in a thread, on a free port of 127.0.0.1; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
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
