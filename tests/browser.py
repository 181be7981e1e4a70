"""Headless Chromium from Debian's packages, as this machine runs it (no network, fresh profile)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.conftest import need_real

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
#: Without the background-networking flags Chromium keeps trying hosts this machine cannot reach.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
)


@contextmanager
def chromium(profile: Path, logs: tuple[str, ...] = ("browser",)) -> Iterator[webdriver.Chrome]:
    """A browser with a fresh profile in ``profile``, recording the DevTools ``logs`` named."""
    need_real(bool(shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)), "chromium and chromium-driver (apt)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", dict.fromkeys(logs, "ALL"))
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
