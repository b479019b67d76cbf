"""Compose-backed corpus targets: ``fulldisk run`` on ``examples/<name>/compose.toml``, whose
services come from the committed ``docker-compose.yml``, gives exactly the verdicts of the
target's measured ``truth.json`` (as the hand-written ``fulldisk.toml`` does in
test_corpus.py). The battery runs once per target, through the command a user types."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COMPOSED = ("redis", "webdav")  # one exec target, one HTTP target: a few seconds each
RUN_SECONDS = 240

pytestmark = [pytest.mark.docker]


def truth(name: str) -> dict[str, dict[str, str]]:
    """A corpus target's measured verdicts: scenario -> invariant -> pass/fail."""
    data: dict[str, dict[str, str]] = json.loads(
        (EXAMPLES / name / "truth.json").read_text(encoding="utf-8"))
    return data


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
        exe = Path(sys.executable).with_name("fulldisk")
        proc = subprocess.run(
            [str(exe), "run", "--target", str(EXAMPLES / name / "compose.toml"),
             "--json", str(out / "report.json"), "--report-dir", str(out),
             "-k", " or ".join(truth(name))],
            capture_output=True, text=True, timeout=RUN_SECONDS, env=os.environ.copy(),
            check=False)
        path = out / "report.json"
        if not path.is_file():
            pytest.fail(f"fulldisk run wrote no report for {name} (exit {proc.returncode}):\n"
                        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}", pytrace=False)
        report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        report["_output"] = (proc.stdout + proc.stderr)[-1500:]
        runs[name] = report
        return report

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
        tmp_path: Path, make_stack: Callable[..., Any],
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
    stack = make_stack(load_target(tmp_path / "fulldisk.toml"))
    code, out = stack.service("app").exec(
        ["sh", "-c", "stat -f -c %T /scratch; stat -c %u /data; touch /data/x && echo ok"])
    assert code == 0 and out.split() == ["tmpfs", "1000", "ok"], out
    info = inspect_container(stack.service("app").name)
    assert info["Config"]["Entrypoint"] == ["sh", "-c"]
    assert info["HostConfig"]["Tmpfs"] == {"/scratch": "size=1m"}
