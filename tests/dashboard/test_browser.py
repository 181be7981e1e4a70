"""The dashboard in a real headless Chromium: it asks for a token, then shows progress moving."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


#: One migration's row as the page shows it, read in one script: the page replaces its rows on every
#: poll, so an element found in one call may be gone in the next.
READ_ROW = """
const row = document.querySelector(`tr[data-id="${arguments[0]}"]`);
if (!row) return null;
return {state: row.dataset.state, percent: row.dataset.percent, speed: row.querySelector(".speed").textContent,
        charted: row.querySelector(".chart svg polyline") !== null};
"""


def row_of(browser: webdriver.Chrome, job_id: str) -> dict[str, Any] | None:
    row: dict[str, Any] | None = browser.execute_script(READ_ROW, job_id)
    return row


def percent_of(browser: webdriver.Chrome, job_id: str) -> float | None:
    row = row_of(browser, job_id)
    return float(row["percent"]) if row and row["percent"] else None


def test_dashboard_shows_a_running_migration(server: LiveServer, browser: webdriver.Chrome, tmp_path: Path) -> None:
    """Without a token the page loads and says one is needed; with a viewer token typed in, it shows the
    pool and the migration's progress rising from poll to poll, with no CSP or script error."""
    options = {"units": 800, "unitSeconds": 0.05, "unitBytes": 1_000_000}
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
    row = row_of(browser, "vm42")
    assert row
    assert row["state"] == "RUNNING"
    assert row["speed"].endswith("/s")
    assert row["charted"]
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
