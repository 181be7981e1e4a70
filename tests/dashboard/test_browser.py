"""The dashboard in a real headless Chromium: it asks for a token, then shows progress moving."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import need_real
from tests.dashboard.conftest import VIEWER
from tests.servers import LiveServer

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1500,900",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    need_real(bool(shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)), "chromium and chromium-driver (apt)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def percent_of(browser: webdriver.Chrome, job_id: str) -> float | None:
    rows = browser.find_elements(By.CSS_SELECTOR, f'tr[data-id="{job_id}"]')
    value = rows[0].get_attribute("data-percent") if rows else None
    return float(value) if value else None


def test_dashboard_shows_a_running_migration(server: LiveServer, browser: webdriver.Chrome, tmp_path: Path) -> None:
    """Without a token the page loads and says one is needed; with a viewer token typed in, it shows the
    pool and the migration's progress rising from poll to poll, with no CSP or script error."""
    options = {"units": 500, "unitSeconds": 0.05, "unitBytes": 1_000_000}
    created = server.client.post(
        "/migrations", json={"migrationId": "vm42", "kind": "disk", "source": "/s", "target": "/t", "options": options}
    )
    assert created.status_code == 201, created.text
    wait = WebDriverWait(browser, 15, poll_frequency=0.1)

    browser.get(f"{server.url}/dashboard?interval=300")
    status = browser.find_element(By.ID, "status")
    wait.until(lambda _: "token is needed" in status.text)

    browser.find_element(By.ID, "token").send_keys(VIEWER)
    browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    first = wait.until(lambda b: percent_of(b, "vm42"))
    later = wait.until(lambda b: (p := percent_of(b, "vm42")) is not None and p >= first + 5 and p)
    assert 0 < first < later < 100
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-id="vm42"]')
    assert row.get_attribute("data-state") == "RUNNING"
    assert row.find_element(By.CSS_SELECTOR, ".speed").text.endswith("/s")
    assert row.find_elements(By.CSS_SELECTOR, ".chart svg polyline")
    assert browser.find_element(By.ID, "pool-limit").text == "100"
    assert int(browser.find_element(By.ID, "pool-granted").text) == 4
    assert "updated" in status.text

    screenshot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(screenshot))
    print(f"dashboard screenshot: {screenshot}")
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert [message for message in errors if "401" not in message] == []
    assert browser.execute_script("return window.localStorage.getItem('ferry.token')") == VIEWER
    server.client.post("/migrations/vm42/stop")
