"""`pytest -m explore`: Hypothesis explores orders of disk-pressure events on the target.

The budget (``--fulldisk-explore-time``, shrinking included) and the seed
(``--fulldisk-explore-seed``) are options of the fulldisk plugin. A failure fails the test
with the shrunk story, the violated invariant and its evidence, and leaves a replay file
in ``reports/explore/``.
"""

from __future__ import annotations

import time

import pytest

from harness import Target

pytestmark = [pytest.mark.explore, pytest.mark.docker]


def test_explore(fulldisk_target: Target, fulldisk_images: list[str],
                 pytestconfig: pytest.Config) -> None:
    """No order of fills, frees, requests, floods and cleaner pauses breaks an invariant."""
    from harness.explore import Progress, explore

    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    last = [time.monotonic()]

    def tick(p: Progress) -> None:  # a progress line every 5 s, past pytest's capture
        if reporter is None or capture is None or time.monotonic() - last[0] < 5:
            return
        last[0] = time.monotonic()
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"explore {fulldisk_target.name}: {p.line()}")

    result = explore(fulldisk_target, seconds=pytestconfig.getoption("--fulldisk-explore-time"),
                     seed=pytestconfig.getoption("--fulldisk-explore-seed"), tick=tick)
    if result.finding is not None:
        pytest.fail(result.summary() + "\n\n" + result.finding.text(), pytrace=False)
    assert result.steps > 0, "explore ran no step"
