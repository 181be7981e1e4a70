"""``/docs`` and ``/redoc`` in a real headless Chromium: they render every operation from files this
server sends, with nothing fetched from anywhere else; and they show up in the metrics by route."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import chromium
from tests.servers import LiveServer


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Chromium that records every request it makes (the DevTools performance log)."""
    with chromium(tmp_path / "chromium", logs=("performance", "browser")) as driver:
        yield driver


def requested_urls(browser: webdriver.Chrome) -> list[str]:
    """Every URL the browser asked the network for, but those its Content-Security-Policy blocked."""
    urls: dict[str, str] = {}
    blocked: set[str] = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message["params"]
        if message["method"] == "Network.requestWillBeSent":
            urls[params["requestId"]] = str(params["request"]["url"])
        elif message["method"] == "Network.loadingFailed" and params.get("blockedReason") == "csp":
            blocked.add(params["requestId"])
    return [url for request, url in urls.items() if request not in blocked]


#: Each operation Swagger UI lists (once per tag it has), as (method, path).
LISTED = """
return [...document.querySelectorAll(".opblock-summary")].map(block => [
  block.querySelector(".opblock-summary-method").textContent,
  block.querySelector(".opblock-summary-path").textContent.replaceAll("\u200b", "")]);
"""


def listed_operations(browser: webdriver.Chrome) -> set[tuple[str, str]]:
    return {(method, path) for method, path in browser.execute_script(LISTED)}


def operation_count(server: LiveServer) -> int:
    document = server.client.get("/openapi.json").json()
    return sum(len(operations) for operations in document["paths"].values())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_docs_render_every_operation_from_this_server_only(server: LiveServer, browser: webdriver.Chrome) -> None:
    """Swagger UI lists every operation and ReDoc titles them; every URL the browser fetched
    is on this server (a CDN would show up here, and fail: this machine has no route out). ReDoc's
    footer logo on cdn.redoc.ly is blocked by the pages' policy before it reaches the network."""
    expected = operation_count(server)
    wait = WebDriverWait(browser, 20, poll_frequency=0.1)

    browser.get(f"{server.url}/docs")
    listed = wait.until(lambda b: len(shown := listed_operations(b)) == expected and shown)
    assert ("POST", "/migrations/{job_id}/start") in listed
    docs_urls = requested_urls(browser)

    browser.get(f"{server.url}/redoc")
    wait.until(lambda b: "Create a migration" in b.find_element(By.TAG_NAME, "body").text)
    wait.until(lambda b: "Set a property" in b.find_element(By.TAG_NAME, "body").text)
    urls = docs_urls + requested_urls(browser)

    assert f"{server.url}/static-offline-docs/swagger-ui-bundle.js" in urls
    assert f"{server.url}/static-offline-docs/redoc.standalone.js" in urls
    assert f"{server.url}/openapi.json" in urls
    # chrome:// and data: URLs are the browser's own (its new-tab page), not the network.
    network = [url for url in urls if url.startswith(("http:", "https:", "ws:", "wss:"))]
    assert [url for url in network if not url.startswith(server.url + "/")] == []

    metrics = server.client.get("/metrics").text
    for route in ("/docs", "/redoc", "/openapi.json", "/static-offline-docs"):
        assert f'route="{route}",status="200"' in metrics, route
