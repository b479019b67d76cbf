"""The reports as a person sees them: the HTML page in headless Chromium (charts drawn with
every series and marker, hover, no console error, no network) and the terminal summary,
both from a hand-built run and from a real defect run against the reference stack."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pages import REPORTS, console_errors, full_page_screenshot, open_report, remote_requests
from sample_runs import OUTCOME_COUNTS, sample_report, sample_timeline

from harness.invariants import Rules
from harness.report_html import render_report, write_html
from harness.target import reference_target

pytestmark = [pytest.mark.browser]

TRACES_JS = """
return Array.from(arguments[0].querySelectorAll('.scatterlayer .trace')).map(t => ({
  name: t.__data__[0].trace.name, points: t.querySelectorAll('path.point').length}));
"""
IN_VIEW_JS = """
const r = arguments[0].getBoundingClientRect();
return r.top >= 0 && r.bottom <= window.innerHeight && r.width > 0;
"""


def _traces(driver: Any, chart: Any) -> dict[str, int]:
    return {t["name"]: t["points"] for t in driver.execute_script(TRACES_JS, chart)}


def test_hand_built_run_draws_every_series_marker_and_hover(browser: Any, tmp_path: Path
                                                            ) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    report, tl = sample_report()
    t = reference_target()
    page = write_html(render_report(report, [tl], config=t.redacted_config(), rules=Rules(),
                                    redact=t.redact), tmp_path / "report.html")
    open_report(browser, page, charts=1)
    chart = browser.find_element(By.CSS_SELECTOR, ".js-plotly-plot")
    drawn = _traces(browser, chart)
    expected = {"sessions (filled)": len(tl.disk("sessions")), "applogs": len(tl.disk("applogs")),
                "sessions inodes": len(tl.disk("sessions")),
                "applogs inodes": len(tl.disk("applogs")),
                **OUTCOME_COUNTS, **Counter(r.source for r in tl.logs())}
    assert drawn == expected
    legend = [e.text for e in chart.find_elements(By.CSS_SELECTOR, ".legend .traces .legendtext")]
    groups = ["volumes", "requests", "log sources"]
    assert [n for n in legend if n in groups] == groups
    assert [n for n in legend if n not in groups] == [
        n for n in expected if not n.endswith(" inodes")]
    bands = browser.execute_script(
        "return arguments[0].querySelectorAll('.shapelayer path').length", chart)
    assert bands == 5  # a shaded band per phase, across the four rows
    phases = [e.text for e in chart.find_elements(By.CSS_SELECTOR, ".annotation-text")]
    assert phases == ["steady", "fill", "act", "free", "recover"]
    # hover over the fake success: the request itself, with its real characters
    point = browser.execute_script(
        "return Array.from(arguments[0].querySelectorAll('.scatterlayer .trace'))"
        ".find(t => t.__data__[0].trace.name === 'fake success').querySelector('path.point')",
        chart)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", chart)
    ActionChains(browser).move_to_element(point).perform()
    hover = WebDriverWait(browser, 10, poll_frequency=0.1).until(
        lambda d: d.execute_script(
            "const h = document.querySelector('.hoverlayer .hovertext');"
            "return h ? h.textContent : null;"))
    assert "fake success: t=2.10s login/login: POST /login -> 302" in hover
    assert console_errors(browser) == []
    assert remote_requests(browser) == []
    full_page_screenshot(browser, REPORTS / "report-sample.png")


def _fulldisk(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in {**os.environ, **env}.items() if k not in ("FORCE_COLOR",)}
    return subprocess.run([sys.executable, "-c", "from harness.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def defect_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str],
                                                                 Path]:
    """`DATAHUB_DEFECTS=silent_sessions fulldisk run` on the session volume's scenario, in a
    pipe (as in a CI log): its stdout, stderr and report folder."""
    out = tmp_path_factory.mktemp("defect-run")
    p = _fulldisk("run", "-k", "sessions and (no_silent_write_loss or recovery)",
                  "--report-dir", str(out), env={"DATAHUB_DEFECTS": "silent_sessions"})
    return p, out


@pytest.mark.docker
@pytest.mark.xdist_group("defect-run")
def test_defect_run_terminal_shows_the_failure_first_in_plain_lines(
        defect_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    p, out = defect_run
    assert p.returncode == 1, p.stdout[-3000:] + p.stderr[-3000:]
    assert "\x1b[" not in p.stdout + p.stderr  # a pipe gets plain text, no colour, no cursor
    first_screen = p.stdout.splitlines()[:24]
    fail = next(i for i, ln in enumerate(first_screen)
                if ln.startswith("FAIL no_silent_write_loss [battery-sessions/sessions]"))
    assert "acknowledged, then" in first_screen[fail + 1]  # its evidence right below
    assert "lacks 'Logged in as alice'" in first_screen[fail + 1]
    # recovery passes: new logins stick once space is back; the login lost while full and
    # still logged out when read again after recovery is no_silent_write_loss's evidence
    # ("lost after recovery"), not a second failure
    assert re.match(r"fulldisk datahub: NOT SAFE TO DEPLOY — 1 passed, 1 failed, "
                    r"0 not judged \(1 scenarios\)", first_screen[0])
    assert re.search(r"battery-sessions +1 passed, 1 failed, 0 not judged", p.stdout)
    # progress: one plain line per phase in the log
    phases = re.findall(r"^\[ *[\d.]+s\] datahub: battery-sessions: (\w+)$", p.stderr, re.M)
    assert phases == ["steady", "fill", "act", "free", "recover"]
    paths = re.search(r"^reports: html (\S+), json (\S+)$", p.stdout, re.M)
    assert paths, p.stdout
    assert Path(paths[1]) == out / "report.html" and Path(paths[1]).stat().st_size > 1e6
    assert json.loads(Path(paths[2]).read_text())["passed"] is False
    assert "FAILED" in (out / "pytest.log").read_text()  # pytest's own output is kept
    assert "wonderland" not in (out / "report.html").read_text()


@pytest.mark.docker
@pytest.mark.xdist_group("defect-run")
def test_defect_run_page_shows_the_failure_and_its_evidence_on_the_first_screen(
        browser: Any, defect_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    from selenium.webdriver.common.by import By

    _, out = defect_run
    # plotly.js's basic bundle: light enough to keep as a CI artifact of every run
    assert (out / "report.html").stat().st_size < 2_000_000
    open_report(browser, out / "report.html", charts=1)
    REPORTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(REPORTS / "report-first-screen.png"))
    card = browser.find_element(By.CSS_SELECTOR, "article.verdict.fail")
    assert "no_silent_write_loss" in card.text and "battery-sessions" in card.text
    evidence = card.find_elements(By.CSS_SELECTOR, "ol.evidence li")
    assert evidence and "acknowledged, then" in evidence[0].text
    assert browser.execute_script(IN_VIEW_JS, card.find_element(By.CSS_SELECTOR, "h3"))
    assert browser.execute_script(IN_VIEW_JS, evidence[0])
    # the chart of the real run: the lost logins are fake successes a person can see
    chart = browser.find_element(By.CSS_SELECTOR, "section[data-scenario='battery-sessions'] "
                                                  ".js-plotly-plot")
    drawn = _traces(browser, chart)
    assert drawn.get("fake success", 0) >= 1 and drawn.get("ok", 0) >= 4
    assert drawn["sessions (filled)"] >= 3 and drawn["sessions inodes"] >= 3
    assert any(n.startswith("file:applogs") and k > 0 for n, k in drawn.items())
    assert console_errors(browser) == []
    assert remote_requests(browser) == []
    full_page_screenshot(browser, REPORTS / "report.png")


def test_sample_timeline_is_what_the_browser_test_expects() -> None:
    """The hand-built run really has every outcome the legend names (guards the fixture)."""
    from harness.report_html import request_outcome

    tl = sample_timeline()
    got = Counter(request_outcome(p, i, Rules()) for p in tl.probes()
                  for i in range(len(p.steps)))
    assert got == OUTCOME_COUNTS
