"""The dashboard in a real headless Chromium against a real ferry server (fake engine).

It asks for a token, shows progress moving with labelled figures, sends stop, resume and start
to the server with an operator token, redraws the server's history after a reload, and fits a
1000 px wide window with nodes and warnings shown.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import need_real
from tests.dashboard.conftest import OPERATOR, VIEWER
from tests.disk.conftest import Servers
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
#: Long enough for the whole of a test: the fake engine's units are 50 ms each.
LONG = {"units": 4000, "unitSeconds": 0.05, "unitBytes": 1_000_000}


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


def wait(browser: webdriver.Chrome, seconds: float = 15) -> WebDriverWait[webdriver.Chrome]:
    return WebDriverWait(browser, seconds, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException])


#: One migration's row as the page shows it, read in one script: the page replaces its rows on every
#: poll, so an element found in one call may be gone in the next.
READ_ROW = """
const row = document.querySelector(`tr[data-id="${arguments[0]}"]`);
if (!row) return null;
const figures = {};
for (const f of row.querySelectorAll(".figure")) figures[f.dataset.label] = f.textContent;
return {state: row.dataset.state, percent: row.dataset.percent, speed: row.querySelector(".speed").textContent,
        points: Number(row.querySelector(".chart svg").dataset.points), figures,
        actions: [...row.querySelectorAll("button[data-action]")].map((b) => b.dataset.action),
        warnings: [...row.querySelectorAll(".warning")].map((w) => w.textContent)};
"""


#: The node view's rows: id, threads granted, migrations running.
READ_NODES = """
return [...document.querySelectorAll("#nodes-table tbody tr")].map(
  (tr) => [tr.dataset.node, tr.children[3].textContent, tr.children[5].textContent]);
"""


def row_of(browser: webdriver.Chrome, job_id: str) -> dict[str, Any] | None:
    row: dict[str, Any] | None = browser.execute_script(READ_ROW, job_id)
    return row


def percent_of(browser: webdriver.Chrome, job_id: str) -> float | None:
    row = row_of(browser, job_id)
    return float(row["percent"]) if row and row["percent"] else None


def chart_points(browser: webdriver.Chrome) -> int:
    points = browser.execute_script("const s = document.querySelector('#pool-chart svg'); return s && s.dataset.points")
    return int(points or 0)


def use_token(browser: webdriver.Chrome, token: str) -> None:
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()


def click_action(browser: webdriver.Chrome, job_id: str, action: str) -> None:
    """Click the row's button as a user would; a row redrawn under the click is found again."""

    def clicked(b: webdriver.Chrome) -> bool:
        b.find_element(By.CSS_SELECTOR, f'tr[data-id="{job_id}"] button[data-action="{action}"]').click()
        return True

    wait(browser).until(clicked)


def state_of(server: LiveServer, job_id: str) -> str:
    state: str = server.client.get(f"/migrations/{job_id}").json()["state"]
    return state


def severe_errors(browser: webdriver.Chrome) -> list[str]:
    """Console errors other than the 401 and 403 answers a test provokes on purpose."""
    messages = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    return [m for m in messages if " 401 " not in m and " 403 " not in m and "401 (Unauthorized)" not in m]


def test_dashboard_shows_a_running_migration(server: LiveServer, browser: webdriver.Chrome, tmp_path: Path) -> None:
    """Without a token the page loads and asks for one; with a viewer token typed in, it shows the
    pool and the migration's progress rising from poll to poll, its copied bytes labelled, with no
    CSP or script error; the token is kept for the tab (sessionStorage), not the browser."""
    options = {"units": 800, "unitSeconds": 0.05, "unitBytes": 1_000_000}
    created = server.client.post(
        "/migrations", json={"migrationId": "vm42", "kind": "disk", "source": "/s", "target": "/t", "options": options}
    )
    assert created.status_code == 201, created.text

    browser.get(f"{server.url}/dashboard?interval=300")
    status = browser.find_element(By.ID, "status")
    wait(browser).until(lambda _: "token is needed" in status.text)
    assert "needed" in (browser.find_element(By.ID, "token-form").get_attribute("class") or "")

    use_token(browser, VIEWER)
    first = wait(browser).until(lambda b: percent_of(b, "vm42"))
    later = wait(browser).until(lambda b: (p := percent_of(b, "vm42")) is not None and p >= first + 5 and p)
    assert 0 < first < later < 100
    row = wait(browser).until(lambda b: (r := row_of(b, "vm42")) and r["points"] > 1 and r)
    assert row["state"] == "RUNNING"
    assert row["speed"].endswith("/s")
    assert row["figures"]["copied"].startswith("copied ")
    assert row["figures"]["of"] == "of 800 MB"
    assert row["actions"] == ["stop"]
    assert browser.find_element(By.ID, "pool-limit").text == "100"
    assert int(browser.find_element(By.ID, "pool-granted").text) == 4
    assert "updated" in status.text
    node = wait(browser).until(lambda b: b.execute_script(READ_NODES))
    assert node == [["test-instance", "4", "1"]]  # the server is one node: it holds the grant
    assert severe_errors(browser) == []
    assert browser.execute_script("return window.sessionStorage.getItem('ferry.token')") == VIEWER
    assert browser.execute_script("return window.localStorage.getItem('ferry.token')") is None
    server.client.post("/migrations/vm42/stop")


def test_controls_stop_resume_and_start_with_an_operator_token(server: LiveServer, browser: webdriver.Chrome) -> None:
    """With a viewer token a click on Stop is refused and the page asks for an operator token; with
    one, Stop, Resume and Start change the migrations' states on the server, and the rows follow."""
    body = {"migrationId": "vm42", "kind": "disk", "source": "/s", "target": "/t", "options": LONG}
    assert server.client.post("/migrations", json=body).status_code == 201
    later = {"kind": "files", "source": "/a", "target": "/b", "options": LONG}
    assert server.client.put("/migrations/later", json=later).status_code == 201
    server.wait_for("vm42", {"RUNNING"})
    browser.get(f"{server.url}/dashboard?interval=1000")
    use_token(browser, VIEWER)
    wait(browser).until(lambda b: (r := row_of(b, "later")) and r["actions"] == ["start"])

    click_action(browser, "vm42", "stop")
    status = browser.find_element(By.ID, "status")
    wait(browser).until(lambda _: "operator" in status.text)
    assert "needed" in (browser.find_element(By.ID, "token-form").get_attribute("class") or "")
    assert state_of(server, "vm42") == "RUNNING"

    use_token(browser, OPERATOR)
    click_action(browser, "vm42", "stop")
    server.wait_for("vm42", {"STOPPED"})
    wait(browser).until(lambda b: (r := row_of(b, "vm42")) and r["state"] == "STOPPED" and r["actions"] == ["resume"])
    click_action(browser, "vm42", "resume")
    server.wait_for("vm42", {"SCHEDULED", "RUNNING"})
    click_action(browser, "later", "start")
    server.wait_for("later", {"SCHEDULED", "RUNNING"})
    wait(browser).until(lambda b: (r := row_of(b, "later")) and r["actions"] == ["stop"])
    assert browser.execute_script("return window.sessionStorage.getItem('ferry.token')") == OPERATOR
    assert severe_errors(browser) == []
    server.client.post("/migrations/stop")


def test_history_survives_a_reload(server: LiveServer, browser: webdriver.Chrome) -> None:
    """The charts draw the server's samples: right after a reload the pool chart and the
    migration's sparkline hold at least as many points as before it, not a fresh start."""
    body = {"migrationId": "vm42", "kind": "disk", "source": "/s", "target": "/t", "options": LONG}
    assert server.client.post("/migrations", json=body).status_code == 201
    browser.get(f"{server.url}/dashboard?interval=300")
    use_token(browser, VIEWER)
    wait(browser, 30).until(lambda b: chart_points(b) >= 16)
    before = chart_points(browser)
    sparkline = row_of(browser, "vm42")
    assert sparkline
    assert sparkline["points"] >= 16

    browser.refresh()  # the token stays: sessionStorage lives as long as the tab
    after = wait(browser).until(chart_points)
    assert after >= before
    row = row_of(browser, "vm42")
    assert row
    assert row["points"] >= sparkline["points"]
    assert severe_errors(browser) == []
    server.client.post("/migrations/stop")


#: What a one-node test server cannot show, the page's answers get here: two nodes (one with a
#: stale heartbeat) in scannerPoolStats, a RUNNING migration waiting for its source (openTimeout
#: is not in main yet) with retries, and a files migration with failures.
STUB = """
const realFetch = window.fetch;
window.fetch = async (path, init) => {
  const response = await realFetch(path, init);
  if (!response.ok) return response;
  const url = String(path);
  const body = await response.json();
  if (url.startsWith("/stats/scannerPoolStats")) body.nodes = NODES;
  if (url === "/migrations") {
    for (const m of body.filter((m) => m.migrationId in EXTRA)) {
      Object.assign(m, EXTRA[m.migrationId].top);
      Object.assign(m.progress, EXTRA[m.migrationId].progress);
    }
  }
  return new Response(JSON.stringify(body), {status: 200, headers: {"content-type": "application/json"}});
};
"""
NODES = [
    {"nodeId": "ferry-a-1234", "host": "ferry-a", "heartbeatAgeSeconds": 1.2, "granted": 4, "active": 3,
     "runningMigrations": 1},
    {"nodeId": "ferry-b-5678", "host": "ferry-b", "heartbeatAgeSeconds": 22.0, "granted": 0, "active": 0,
     "runningMigrations": 0},
]  # fmt: skip
EXTRA = {
    "vm-waiting": {"top": {"error": "source: waiting for nbd://esx:10809/vm: connection refused"},
                   "progress": {"retries": 102}},
    "projects-archive-2026": {"top": {}, "progress": {"filesFailed": 3}},
}  # fmt: skip

#: True when nothing scrolls sideways: the page, and every section in it.
FITS = """
const doc = document.documentElement;
const wide = [...document.querySelectorAll("section, table")].filter((e) => e.scrollWidth > e.clientWidth + 1);
return {page: doc.scrollWidth <= window.innerWidth, inner: window.innerWidth, overflowing: wide.map((e) => e.id)};
"""


def test_fits_1000_px_with_nodes_and_warnings(server: LiveServer, browser: webdriver.Chrome, tmp_path: Path) -> None:
    """At 1000 px, with seven migrations of long names, two nodes and warnings, nothing scrolls
    sideways; the node view lists the nodes (a stale heartbeat marked) and each warning shows,
    among them the two migrations a pool of 4 threads (1 each) leaves waiting for threads."""
    limit = server.client.put("/configuration/property", params={"key": "global.scan.limit", "value": "4"})
    assert limit.status_code == 200, limit.text
    script = STUB.replace("NODES", json.dumps(NODES)).replace("EXTRA", json.dumps(EXTRA))
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})
    browser.set_window_size(1000, 1700)
    names = ["vm-waiting", "projects-archive-2026", "home-directories.eu-west", "vm42", "db-replica", "scratch"]
    for n, name in enumerate(names):
        kind = "disk" if n % 2 == 0 else "files"
        options = {**LONG, "unitBytes": 150_000 * (n + 1)}
        body = {"migrationId": name, "kind": kind, "source": f"/s{n}", "target": f"/t{n}", "options": options}
        assert server.client.post("/migrations", json=body).status_code == 201
    server.client.put("/migrations/not-started-yet", json={"kind": "files", "source": "/a", "target": "/b"})
    browser.get(f"{server.url}/dashboard?interval=500")
    use_token(browser, VIEWER)
    wait(browser, 30).until(lambda b: chart_points(b) >= 12 and (r := row_of(b, "scratch")) and r["points"] > 2)

    fits = browser.execute_script(FITS)
    assert fits["inner"] <= 1000
    assert fits["page"], fits
    assert fits["overflowing"] == [], fits
    nodes = browser.find_elements(By.CSS_SELECTOR, "#nodes-table tbody tr")
    assert [n.get_attribute("data-node") for n in nodes] == ["ferry-a-1234", "ferry-b-5678"]
    stale = browser.find_element(By.CSS_SELECTOR, '#nodes-table tr[data-node="ferry-b-5678"] td:nth-child(3)')
    assert stale.get_attribute("class") == "warn"
    waiting = row_of(browser, "vm-waiting")
    assert waiting
    assert waiting["warnings"][:2] == ["waiting for a server", "102 retries"]  # and maybe waiting for threads
    error = browser.find_element(By.CSS_SELECTOR, 'tr[data-error-of="vm-waiting"]').text
    assert error == EXTRA["vm-waiting"]["top"]["error"]
    # Four threads, one each: two of the six wait (which two depends on when each was admitted).
    pool = server.client.get("/stats/scannerPoolStats").json()["migrations"]
    starved = sorted(m["migrationId"] for m in pool if m["granted"] == 0)
    assert len(starved) == 2, pool
    for name in starved:
        row = row_of(browser, name)
        assert row
        assert "waiting for threads" in row["warnings"], (name, row)
    failing = row_of(browser, "projects-archive-2026")
    assert failing
    assert failing["warnings"] == ["3 files failed"]
    screenshot = tmp_path / "dashboard-1000px.png"
    assert browser.save_screenshot(str(screenshot))
    print(f"dashboard screenshot: {screenshot}")
    assert severe_errors(browser) == []
    server.client.post("/migrations/stop")


@pytest.mark.nbd
def test_a_disk_whose_source_fails_reads_shows_its_retries(
    disk_server: LiveServer, servers: Servers, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    """A real disk copy from an nbdkit source that fails one read in ten retries its chunks; its
    row warns of the retries, with the count the server reports, while it is still RUNNING."""
    limit = disk_server.client.put("/configuration/property", params={"key": "global.bandwidth.limit", "value": "4MB"})
    assert limit.status_code == 200
    source = servers.nbdkit(
        "sparse-random", "size=64M", "percent=50", "seed=1", "error=EIO", "error-pread-rate=10%", filters=("error",)
    )
    options = {"maxRetries": 100, "retryDelay": 0.1, "chunkSize": "1MiB"}
    body = {"migrationId": "flaky", "kind": "disk", "source": source, "target": str(tmp_path / "data" / "flaky.raw"),
            "options": options}  # fmt: skip
    assert disk_server.client.post("/migrations", json=body).status_code == 201
    browser.get(f"{disk_server.url}/dashboard?interval=300")
    use_token(browser, VIEWER)
    row = wait(browser, 30).until(lambda b: (r := row_of(b, "flaky")) and r["warnings"] and r)
    assert row["state"] == "RUNNING"
    assert row["warnings"][0].endswith(" retries")
    retries = int(row["warnings"][0].split()[0].replace(",", ""))
    assert 0 < retries <= disk_server.client.get("/migrations/flaky").json()["progress"]["retries"]
    disk_server.client.post("/migrations/flaky/stop")
