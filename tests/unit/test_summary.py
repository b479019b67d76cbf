"""The terminal side: the compact summary and the progress lines, in the plain form a CI
log gets (not a terminal) and with NO_COLOR on a terminal."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest
from rich.console import Console
from sample_runs import sample_report

from harness.battery import Run, phase_listener
from harness.progress import RunProgress
from harness.report import EVIDENCE_LINES, summary
from harness.target import reference_target

ANSI = re.compile(r"\x1b\[")


def _plain(report: dict[str, object], **files: str) -> list[str]:
    buf = io.StringIO()
    summary(report, Console(file=buf, force_terminal=False, width=80), files=files)
    return buf.getvalue().splitlines()


def test_plain_summary_is_compact_whole_lines_failures_first() -> None:
    report, _ = sample_report()
    lines = _plain(report, html="reports/report.html", json="reports/report.json",
                   junit="reports/junit.xml")
    assert not any(ANSI.search(ln) for ln in lines)
    assert lines[0] == ("fulldisk datahub: NOT SAFE TO DEPLOY — 2 passed, 2 failed, "
                        "1 not judged (1 scenarios)")
    assert lines[1] == ("  ✗ battery-sessions  2 passed, 2 failed, 1 not judged  "
                        "(volume sessions)")
    heads = [ln for ln in lines if re.match(r"^(FAIL|NOT JUDGED) ", ln)]
    assert [h.split()[1] if h.startswith("FAIL") else h.split()[2] for h in heads] == [
        "no_silent_write_loss", "graceful_refusal", "health_truthful"]
    i = lines.index(heads[0])
    # evidence whole, on one line each, although far wider than the 80 columns
    assert lines[i + 1].startswith("    lost: t=2.10s login/login: POST /login -> 302") and \
        len(lines[i + 1]) > 80 and lines[i + 1].endswith("[sessions full]")
    assert any("no health sample was taken" in ln for ln in heads)
    assert lines[-1] == ("reports: html reports/report.html, json reports/report.json, "
                         "junit reports/junit.xml")
    assert len(lines) < 15  # compact: no table of every passing verdict


def test_summary_caps_evidence_and_says_where_the_rest_is() -> None:
    report, _ = sample_report()
    v = report["verdicts"][0]  # type: ignore[index]
    v["evidence"] = [f"t={i}.00s line {i}" for i in range(20)]
    lines = _plain(report)
    shown = [ln for ln in lines if re.match(r"^    t=\d+\.00s line", ln)]
    assert len(shown) == EVIDENCE_LINES
    assert f"    … {20 - EVIDENCE_LINES} more evidence lines in the HTML and JSON reports" \
        in lines


def test_no_color_on_a_terminal_drops_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    report, _ = sample_report()
    buf = io.StringIO()
    summary(report, Console(file=buf, force_terminal=True, width=200))
    assert re.search(r"\x1b\[[0-9;]*3[1-3]m", buf.getvalue())  # red/green/yellow by default
    monkeypatch.setenv("NO_COLOR", "1")
    buf = io.StringIO()
    summary(report, Console(file=buf, force_terminal=True, width=200))
    assert not re.search(r"\x1b\[[0-9;]*3[0-7]m", buf.getvalue())
    assert "NOT SAFE TO DEPLOY" in buf.getvalue()


def test_progress_in_a_log_is_one_plain_line_per_phase() -> None:
    # A Run needs only its stack's target, restart counts and log files (read once at the
    # start, so the run judges only the records it causes) to mark phases.
    stack = SimpleNamespace(target=reference_target(), restarts=lambda: {},
                            read_tails=lambda items: [(-1, b"")] * len(items),
                            read_file=lambda service, path: None)
    run = Run(stack, "battery-sessions", "sessions")  # type: ignore[arg-type]
    buf = io.StringIO()
    seen: list[tuple[str, str]] = []
    with RunProgress(Console(file=buf, force_terminal=False), "datahub") as progress, \
            phase_listener(lambda s, p: seen.append((s, p))):
        assert not progress.live
        for phase in ("steady", "fill"):
            with run.phase(phase):  # type: ignore[arg-type]
                pass
        assert "battery-sessions · fill" in progress.line()
    with run.phase("act"):  # after the block, nobody listens any more
        pass
    assert seen == [("battery-sessions", "steady"), ("battery-sessions", "fill")]
    lines = buf.getvalue().splitlines()
    assert [re.sub(r"^\[ *[\d.]+s\] ", "", ln) for ln in lines] == [
        "datahub: battery-sessions: steady", "datahub: battery-sessions: fill"]
    assert not ANSI.search(buf.getvalue())


def test_progress_on_a_terminal_is_live_and_leaves_nothing_behind() -> None:
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=True, width=120)
    with RunProgress(con, "datahub") as progress:
        assert progress.live
        progress.on_phase("battery-cache", "act")
        assert re.match(r"datahub: battery-cache · act +\d+\.\d s · +\d+\.\d s total",
                        progress.line())
    assert "battery-cache: act" not in buf.getvalue()  # no plain line: the live one was used


def test_terminal_form_leaves_body_excerpts_to_the_reports() -> None:
    report, _ = sample_report()
    buf = io.StringIO()
    summary(report, Console(file=buf, force_terminal=True, width=300, color_system=None))
    out = buf.getvalue()
    lost = next(ln for ln in out.splitlines() if ln.startswith("    lost: t=2.10s"))
    assert "body lacks 'Logged in as alice'" in lost and "; body '" not in lost
    assert "Redirecting" not in out  # the excerpt of the login's answer: in the HTML only
    assert "Redirecting" in "\n".join(_plain(report))  # a CI log keeps whole lines


def test_a_verdict_judged_twice_is_counted_once() -> None:
    """An incident story records the outcome of a battery case again (the same run): the
    report holds one verdict per (scenario, volume, invariant), and fails on a duplicate."""
    from harness.report import build

    v = {"invariant": "no_silent_write_loss", "status": "fail", "passed": False,
         "summary": "lost", "scenario": "battery-sessions", "volume": "sessions"}
    other = {**v, "invariant": "health_truthful", "status": "pass", "passed": True}
    report = build("t", [v, other, dict(v), dict(other)])
    pairs = [(x["scenario"], x["volume"], x["invariant"]) for x in report["verdicts"]]
    assert len(pairs) == len(set(pairs)) == 2, pairs
    assert report["counts"] == {"pass": 1, "fail": 1, "not_judged": 0}


def test_evidence_bodies_read_as_they_were_and_binary_ones_as_size_and_digest() -> None:
    from harness.invariants import fmt_step
    from harness.probes import excerpt_of
    from harness.timeline import ProbeResult, StepResult

    s = StepResult(name="page", method="GET", target="/", status=200, passed=False,
                   elapsed=0.1, body_excerpt='{"error": "x"}\n<p>it\'s\tfull</p>\n')
    line = fmt_step(ProbeResult(1.0, "p", "http", (s,)), s, 1.0)
    assert line.endswith('; body «{"error": "x"}⏎<p>it\'s full</p>⏎»'), line
    assert "\\n" not in line and "\\'" not in line
    png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(200)
    assert excerpt_of(png, png.decode("utf-8", "replace")).startswith(
        f"<binary: {len(png)} bytes, sha256 ")
    assert excerpt_of(b"plain text", "plain text") == "plain text"
