"""The scenario scripts (scenarios/) are tests too: each passes on the
hardened reference stack (ci/test collects them) and each fails, naming its invariant,
when the defect switch it is about is on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "scenarios"
CAUGHT = {  # script -> (defect switch, the invariant that must fail)
    "test_login_when_sessions_full.py": ("silent_sessions", "no_silent_write_loss"),
    "test_downloads_fill_the_shared_disk.py": ("unbounded_downloads", "core_isolation"),
    "test_health_while_full.py": ("blind_health", "health_truthful"),
    "test_cache_after_space_returns.py": ("poisoned_cache", "recovery"),
    "test_download_counter.py": ("miscounted_downloads", "counter_accuracy"),
    "test_errors_while_logs_full.py": ("log_blackhole", "errors_surface"),
}


CORPUS = {  # scripts against a corpus target: stock servers, no defect switches; their
    # verdicts are the measured ground truth (tests/docker/test_corpus.py checks the battery's)
    "test_webdav_upload_when_full.py",
}
OTHER = {"test_explore.py"}  # Hypothesis explores orders of events (tests/docker/test_explore.py)


def test_every_example_script_has_a_defect_that_fails_it() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("test_*.py")) == sorted(
        {*CAUGHT, *CORPUS, *OTHER})


@pytest.mark.docker
@pytest.mark.parametrize("script", sorted(CAUGHT))
def test_example_fails_with_its_defect_switch(script: str, tmp_path: Path) -> None:
    defect, invariant = CAUGHT[script]
    p = subprocess.run([sys.executable, "-m", "pytest", str(EXAMPLES / script), "-p", "no:xdist",
                        "-p", "no:cacheprovider", "-q", "--rootdir", str(ROOT)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path,
                       env={**os.environ, "DATAHUB_DEFECTS": defect})
    assert p.returncode == 1, p.stdout[-3000:]
    assert f"{invariant} FAILED" in p.stdout, p.stdout[-3000:]
    assert "evidence:" in p.stdout
