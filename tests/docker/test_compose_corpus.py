"""Compose-backed corpus targets: ``fulldisk run`` on ``examples/<name>/compose.toml``, whose
services come from the committed ``docker-compose.yml``, gives exactly the verdicts of the
target's measured ``truth.json`` (as the hand-written ``fulldisk.toml`` does in
test_corpus.py). The battery runs once per target, through the command a user types."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_corpus import EXAMPLES, RUN_SECONDS, run_report, truth

COMPOSED = ("redis", "webdav", "mariadb", "mediawiki")  # the corpus targets with compose

pytestmark = [pytest.mark.docker]


def _cases() -> list[Any]:
    return [pytest.param((name, scenario, invariant), id=f"{name}-{scenario}-{invariant}",
                         marks=[pytest.mark.xdist_group(f"compose-{name}")])
            for name in COMPOSED for scenario, verdicts in truth(name).items()
            for invariant in verdicts]


@pytest.fixture(scope="session")
def compose_report(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, Any]]:
    """The JSON report of ``fulldisk run`` on a compose-backed corpus target, run once."""
    runs: dict[str, dict[str, Any]] = {}

    def run(name: str) -> dict[str, Any]:
        if name in runs:
            return runs[name]
        out = tmp_path_factory.mktemp(f"compose-{name}")
        runs[name] = run_report(EXAMPLES / name / "compose.toml", out,
                                " or ".join(truth(name)))
        return runs[name]

    return run


@pytest.mark.parametrize("case", _cases())
def test_compose_target_verdict_matches_truth(
        case: tuple[str, str, str], compose_report: Callable[[str], dict[str, Any]]) -> None:
    """The verdict from the compose-backed target equals the measured ground truth."""
    name, scenario, invariant = case
    report = compose_report(name)
    found = [v for v in report["verdicts"]
             if str(v.get("scenario", "")).removeprefix("battery-") == scenario
             and v["invariant"] == invariant]
    expected = truth(name)[scenario][invariant]
    if not found:
        pytest.fail(f"{name}: no verdict for {scenario}/{invariant} (expected {expected}); "
                    f"errors: {report.get('errors')}\n{report['_output']}", pytrace=False)
    v = found[0]
    status = v.get("status") or ("pass" if v["passed"] else "fail")
    assert status == expected, (f"{name} {scenario}/{invariant}: {status}, truth {expected}\n"
                                f"{v['summary']}\n" + "\n".join(v.get("evidence", [])))


COMPOSE = """
services:
  app:
    image: ${IMAGE}
    entrypoint: ["sh", "-c"]
    command: ["echo started as $$(id -u) with $$GREETING; exec sleep infinity"]
    user: "1000:1000"
    environment: { GREETING: "${GREETING:-hello}" }
    tmpfs: ["/scratch:size=1m"]
    volumes: [data:/data]
volumes:
  data:
"""


def test_a_compose_service_starts_with_its_entrypoint_environment_and_tmpfs(
        tmp_path: Path, fulldisk_make_stack: Callable[..., Any],
        inspect_container: Callable[[str], dict[str, Any]]) -> None:
    """Entrypoint, command, user, environment, tmpfs and a named volume from a compose file
    reach the running container."""
    from harness.engine import BASE_IMAGE
    from harness.target import load_target

    (tmp_path / "docker-compose.yml").write_text(COMPOSE)
    (tmp_path / ".env").write_text(f"IMAGE={BASE_IMAGE}\n")
    (tmp_path / "fulldisk.toml").write_text(
        'name = "composed"\ncompose = "docker-compose.yml"\n'
        '[services.app]\nready = { log = "started as 1000 with hello", timeout = 20 }\n'
        '[volumes.data]\nsize = "256KiB"\nowner = "1000:1000"\n')
    stack = fulldisk_make_stack(load_target(tmp_path / "fulldisk.toml"))
    code, out = stack.service("app").exec(
        ["sh", "-c", "stat -f -c %T /scratch; stat -c %u /data; touch /data/x && echo ok"])
    assert code == 0 and out.split() == ["tmpfs", "1000", "ok"], out
    info = inspect_container(stack.service("app").name)
    assert info["Config"]["Entrypoint"] == ["sh", "-c"]
    assert info["HostConfig"]["Tmpfs"] == {"/scratch": "size=1m"}


@pytest.mark.parametrize("name", COMPOSED)
def test_init_from_a_corpus_compose_file_proposes_its_volumes(name: str, tmp_path: Path) -> None:
    """``fulldisk init --compose`` on a corpus compose file proposes the corpus target's
    volumes, at its mount paths, with the owner its truth.sh fills as, sized at least 4 MiB,
    and writes a target that loads."""
    import shutil

    from harness.target import load_target

    work = tmp_path / name
    shutil.copytree(EXAMPLES / name, work)
    exe = Path(sys.executable).with_name("fulldisk")
    proc = subprocess.run([str(exe), "init", "--compose", "docker-compose.yml", "-o",
                           "starter.toml"], cwd=work, capture_output=True, text=True,
                          timeout=RUN_SECONDS, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "used" in proc.stderr  # the warm-up's figures are shown
    starter = load_target(work / "starter.toml")
    by_hand = load_target(work / "fulldisk.toml")
    assert starter.compose == "docker-compose.yml"
    got = {v: ([(m.service, m.path) for m in s.mounts], s.owner)
           for v, s in starter.volumes.items()}
    want = {v: ([(m.service, m.path) for m in s.mounts], s.owner)
            for v, s in by_hand.volumes.items()}
    assert got == want
    assert all(s.size >= 4 * 1024 * 1024 for s in starter.volumes.values())


def test_init_from_compose_reports_a_service_that_dies_at_start(tmp_path: Path) -> None:
    from harness.engine import BASE_IMAGE

    (tmp_path / "docker-compose.yml").write_text(
        f"services:\n  app:\n    image: {BASE_IMAGE}\n"
        "    command: [sh, -c, 'echo cannot create directory /data/x: Permission denied >&2;"
        " exit 1']\n    volumes: [data:/data]\nvolumes:\n  data:\n")
    exe = Path(sys.executable).with_name("fulldisk")
    proc = subprocess.run([str(exe), "init", "--compose", "docker-compose.yml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=RUN_SECONDS, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Permission denied" in proc.stderr and "app" in proc.stderr
    assert not (tmp_path / "fulldisk.toml").exists()
