"""Each invariant proven both ways against the reference stack: every defect switch,
alone, is caught by the invariant the design names; the hardened build raises no alarm.

One test per configuration, so ``-n 2`` spreads them; ``fulldisk selftest`` prints the
same matrix.
"""

from __future__ import annotations

import pytest

from harness.cli import DEFECTS
from harness.selftest import run_config

pytestmark = [pytest.mark.docker]


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_defect_switch_is_caught_by_its_invariant(defect: str, fulldisk_images: list[str]) -> None:
    outcomes = run_config(defect)
    failed = {v.invariant for o in outcomes for v in o.verdicts if v.failed}
    assert DEFECTS[defect] in failed, (
        f"{defect} was not caught by {DEFECTS[defect]}; failed: {sorted(failed) or 'none'}")


def test_hardened_build_raises_no_false_alarm(fulldisk_images: list[str]) -> None:
    outcomes = run_config(None)
    alarms = [f"{o.scenario}: {v.invariant}: {v.summary}\n  " + "\n  ".join(v.evidence[:8])
              for o in outcomes for v in o.verdicts if not v.passed]
    assert not alarms, "false alarms or not judged on the hardened build:\n" + "\n".join(alarms)
    assert all(o.verdicts for o in outcomes)
