"""Looking at a report page in the headless Chromium of the ``browser`` fixture
(tests/conftest.py): open it, read its console and network, take a screenshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPORTS = Path(__file__).resolve().parent.parent / "reports"
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "devtools:")


def open_report(driver: Any, path: Path, charts: int) -> None:
    """Open a report file at a laptop's screen size and wait (bounded) until every chart
    has drawn its series."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.set_window_size(1366, 768)
    driver.get_log("browser")  # forget what earlier pages logged
    driver.get_log("performance")
    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 60, poll_frequency=0.1).until(lambda d: d.execute_script(
        "const g = document.querySelectorAll('.js-plotly-plot');"
        "return g.length === arguments[0] && Array.from(g).every("
        "  e => e.querySelectorAll('.scatterlayer .trace').length > 0);", charts))


def console_errors(driver: Any) -> list[str]:
    """Errors the page wrote to the browser console."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def remote_requests(driver: Any) -> list[str]:
    """URLs the page asked for that are not inside the file itself."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            url = msg["params"]["request"]["url"]
            if not url.startswith(LOCAL_SCHEMES):
                urls.append(url)
    return urls


def full_page_screenshot(driver: Any, path: Path) -> Path:
    """A PNG of the whole page, as tall as its content (capped at 12000 px)."""
    import base64

    height = min(int(driver.execute_script("return document.body.scrollHeight")), 12000)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "captureBeyondViewport": True, "format": "png",
        "clip": {"x": 0, "y": 0, "width": 1366, "height": height, "scale": 1}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
