"""Shared set-up of the harness's own tests, every layer (unit, plugin, docker): the Hypothesis
profiles, and a headless Chromium to look at reports."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

# Named Hypothesis profiles, chosen once for the whole suite: HYPOTHESIS_PROFILE names one,
# else `ci` when CI is set, else `dev` (pytest's --hypothesis-profile still wins). Neither
# has a deadline: the suite shares two cores with Docker-backed tests, so an example's time
# says nothing about the code. `ci` is Hypothesis's own (derandomized, so a failure is the
# change's and not a new draw; no example database; the blob to reproduce a failure).
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", settings.get_profile("ci"), deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI") else "dev"))

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def pytest_configure(config: pytest.Config) -> None:
    """Register the browser marker."""
    config.addinivalue_line("markers", "browser: opens a page in headless Chromium")


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's headless Chromium driven by selenium, with a fresh profile and no network
    chatter of its own; skipped when it is not installed, failed when CI is set."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        msg = (f"{CHROMIUM} or {CHROMEDRIVER} is missing. Hint: run `ci/setup --browser` "
               "(apt-get install chromium chromium-driver)")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                "--window-size=1366,768", "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)

