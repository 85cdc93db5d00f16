"""A real browser for the console tests: Debian's Chromium driven by Selenium, against the test
app served by uvicorn on a free port in a thread; axe-core (vendored) checks accessibility.

Without Chromium and its driver the browser tests are skipped, saying why, unless
``GOV_TEST_BROWSER=required`` (as CI sets it): then they fail. ``make test`` installs both.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

VENDOR = Path(__file__).resolve().parents[1] / "support" / "vendor"
AXE = VENDOR / "axe-core-4.14.1.min.js"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = "chromedriver"


def browser_or_skip() -> tuple[str, str]:
    binary = next((found for name in CHROMIUM if (found := shutil.which(name))), None)
    driver = shutil.which(DRIVER)
    if binary and driver:
        return binary, driver
    reason = "Chromium and chromedriver are not installed (make test installs them with apt-get)"
    if os.environ.get("GOV_TEST_BROWSER") == "required":
        pytest.fail(reason)
    pytest.skip(reason)


class LiveServer:
    """The app on 127.0.0.1:<free port>, served by uvicorn in a thread of the test process.

    Its lifespan is left to the test client (``live`` uses it), which has started the app's
    workers already: starting them twice would run two decision-log writers."""

    def __init__(self, app: FastAPI) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def chrome(binary: str, driver: str) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        "--lang=en-GB",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    browser.set_page_load_timeout(60)
    browser.set_script_timeout(60)
    return browser


@pytest.fixture
def live(app: FastAPI, client: TestClient) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server


@pytest.fixture(scope="session")
def chromium_paths() -> tuple[str, str]:
    return browser_or_skip()


@pytest.fixture
def browser(chromium_paths: tuple[str, str]) -> Iterator[Any]:
    driver = chrome(*chromium_paths)
    try:
        yield driver
    finally:
        driver.quit()


def axe_violations(driver: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not driver.execute_script("return typeof window.axe !== 'undefined'"):
        driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))))"
        ".catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));"
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def screenshot(driver: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    # The whole page: as tall as its content.
    width = driver.get_window_size()["width"]
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, max(int(height) + 120, 400))
    driver.save_screenshot(str(path))
    return path
