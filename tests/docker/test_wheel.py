"""fulldisk as a team installs it: a wheel built from this checkout, installed into a fresh
venv outside it, runs the bundled reference stack, a corpus target and the pytest plugin
in a scratch team folder. Nothing of the checkout is on its path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 600

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("wheel")]


def _run(cmd: list[str], cwd: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
                          env=env, check=False, **kw)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel of this checkout installed (and its dependencies)."""
    tmp = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools writes build/ and *.egg-info into the source folder
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "reports", "build", "*.egg-info", "__pycache__", ".*cache",
        ".hypothesis", ".ctk-venv"))
    dist = tmp / "dist"
    p = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist),
              str(src)], cwd=tmp)
    assert p.returncode == 0, p.stderr[-3000:]
    [wheel] = dist.glob("fulldisk-*.whl")
    venv = tmp / "venv"
    p = _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp)
    assert p.returncode == 0, p.stderr
    p = _run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
              str(wheel)], cwd=tmp)
    assert p.returncode == 0, p.stderr[-3000:]
    return venv


def test_only_harness_is_installed_at_top_level(installed: Path, tmp_path: Path) -> None:
    """The distribution adds the `harness` package (and its console script), nothing else a
    team's own packages could collide with; the reference stack ships inside it."""
    p = _run([str(installed / "bin" / "pip"), "show", "-f", "fulldisk"], cwd=tmp_path)
    files = p.stdout.split("Files:", 1)[1].split()
    tops = {f.split("/", 1)[0] for f in files if not f.startswith("..")}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"harness"}
    assert "harness/refstack/datahub/Dockerfile" in files
    assert "harness/invariants/__init__.py" in files
    p = _run([str(installed / "bin" / "python"), "-c",
              "import harness, harness.target as t; print(harness.__file__); "
              "print(t.reference_target().root)"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    module, root = p.stdout.split()
    assert module.startswith(str(installed)) and root.startswith(str(installed))


def test_the_cli_runs_the_reference_stack_and_a_corpus_target(installed: Path,
                                                              tmp_path: Path) -> None:
    """doctor, demo, run on the bundled reference stack, and run on a corpus target, from
    the installed wheel in a folder that is not the checkout."""
    fd = str(installed / "bin" / "fulldisk")
    p = _run([fd, "list"], cwd=tmp_path)
    assert p.returncode == 0 and "sessions" in p.stdout, p.stdout + p.stderr
    p = _run([fd, "doctor"], cwd=tmp_path)
    assert "Traceback" not in p.stderr and "image fulldisk/datahub" in p.stdout, p.stdout
    p = _run([fd, "demo"], cwd=tmp_path)
    assert p.returncode == 0 and "No space left on device" in p.stdout, p.stdout + p.stderr
    p = _run([fd, "run", "--report-dir", "ref", "-k", "sessions"], cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert (tmp_path / "ref" / "report.json").is_file()
    p = _run([fd, "run", "--target", str(ROOT / "examples" / "webdav" / "fulldisk.toml"),
              "--report-dir", "dav"], cwd=tmp_path)
    assert p.returncode in (0, 1) and (tmp_path / "dav" / "report.json").is_file(), \
        p.stdout[-3000:] + p.stderr[-3000:]


def test_pytest_chaos_in_a_team_folder(installed: Path, tmp_path: Path) -> None:
    """A team's repo with a fulldisk.toml and one chaos test of its own: `pytest -m chaos`
    with the installed plugin runs the team's test and the stock battery."""
    (tmp_path / "fulldisk.toml").write_text(
        (ROOT / "bench" / "newuser.toml").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "test_team.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.chaos
        def test_home_page_while_full(fulldisk_stack):
            with fulldisk_stack.full("www"):
                fulldisk_stack.probe("home")
            fulldisk_stack.judge("graceful_refusal")
    """), encoding="utf-8")
    p = _run([str(installed / "bin" / "pytest"), "-m", "chaos", "-q", "-p", "no:cacheprovider"],
             cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "test_team.py" in p.stdout or "passed" in p.stdout
    assert "fulldisk verdicts" in p.stdout, p.stdout[-3000:]
