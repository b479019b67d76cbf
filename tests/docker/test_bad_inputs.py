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


@pytest.mark.docker
@pytest.mark.xdist_group("bad-inputs")
def test_a_failed_build_leaves_no_container(tmp_path: Path) -> None:
    """The step that fails leaves no intermediate container (unlabelled: no clean finds
    it); the failure is one line naming the step's exit code."""
    import subprocess
    import uuid

    marker = f"fd-failbuild-{uuid.uuid4().hex[:8]}"
    files = {"ctx/Dockerfile": f"FROM fulldisk/base:bookworm\nRUN echo {marker}; exit 7\n",
             "fulldisk.toml": f'name = "b"\n[services.a]\nimage = "fd-failbuild/{marker}:1"\n'
             'build = "ctx"\n[volumes.v]\nsize = "1MiB"\n'
             'mounts = [{ service = "a", path = "/data" }]\n'}
    case = Case("fault", "build fails", ["build", "--target", "fulldisk.toml"], 3,
                "non-zero code: 7", files, docker=True)
    r = run_case(case, tmp_path)
    assert not problems(case, r), (r.code, r.output[-3000:])
    ps = subprocess.run(["docker", "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}"],
                        capture_output=True, text=True, check=True).stdout
    assert [ln for ln in ps.splitlines() if marker in ln] == []
