"""Issue 17's table: every bad input and fault gives one clear message and exit 2 or 3
(130 when interrupted), never 0 or 1, never a traceback, and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_inputs import Case, cases, leftovers, problems, run_case

CASES = cases()


@pytest.mark.parametrize("case", [
    pytest.param(c, id=f"{c.kind}-{c.what}",
                 marks=[pytest.mark.docker, pytest.mark.xdist_group("bad-inputs")]
                 if c.docker else [])
    for c in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    r = run_case(case, tmp_path)
    assert not problems(case, r, leftovers(case, tmp_path)), (r.code, r.output[-3000:])


def test_the_table_has_at_least_60_kinds() -> None:
    assert len({c.what for c in CASES}) == len(CASES) >= 60
    assert {c.code for c in CASES} <= {0, 2, 3, 130}
