"""Reports: the JSON report tools read, and the compact terminal summary a person reads."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.markup import escape

STATUS_WORD = {"fail": "FAIL", "not_judged": "NOT JUDGED", "pass": "pass"}
STATUS_STYLE = {"fail": "bold red", "not_judged": "yellow", "pass": "green"}
EVIDENCE_LINES = 6
"""Evidence lines the terminal shows per verdict; the HTML and JSON reports keep them all."""
_BODY = re.compile(r"; body «[^»]*»")
"""A response-body excerpt inside an evidence line: left out on a terminal, where it would
wrap over several rows (CI logs and the HTML and JSON reports keep it)."""


def status(v: Mapping[str, Any]) -> str:
    """A verdict's ``pass``/``fail``/``not_judged`` (also from reports older than ``status``)."""
    if "status" in v:
        return str(v["status"])
    if not v.get("applicable", True):
        return "not_judged"
    return "pass" if v.get("passed") else "fail"


def counts(verdicts: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many verdicts passed, failed and were not judged."""
    out = {"pass": 0, "fail": 0, "not_judged": 0}
    for v in verdicts:
        out[status(v)] = out.get(status(v), 0) + 1
    return out


def counts_text(c: Mapping[str, int]) -> str:
    """``12 passed, 1 failed, 2 not judged``."""
    return f"{c['pass']} passed, {c['fail']} failed, {c['not_judged']} not judged"


HEADS = {"pass": "PASSED", "fail": "FAILED", "not_judged": "NOT JUDGED"}


def verdict_text(v: Mapping[str, Any]) -> str:
    """A verdict with its evidence, as the failure message of a test."""
    head = f"{v['invariant']} {HEADS.get(status(v), status(v))}"
    where = f" [{v.get('scenario', '')}{'/' + v['volume'] if v.get('volume') else ''}]"
    lines = [head + where + ": " + v["summary"]]
    if v.get("evidence"):
        lines.append("evidence:")
        lines += [f"  {e}" for e in v["evidence"]]
    return "\n".join(lines)


def build(target: str, verdicts: Iterable[Mapping[str, Any]], *,
          errors: Iterable[str] = (), interrupted: str | None = None,
          extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON report: ``target``, ``status`` (passed, failed, error or interrupted),
    ``passed`` (no verdict failed; a not judged verdict is counted, not failed: ``fulldisk
    gate --strict`` fails on those; an interrupted run never passes, nor one with a volume
    that never ran out: status ``not_tested``), ``counts``, ``verdicts``, ``not_tested``
    (those volumes), ``errors`` (of the infrastructure or the target)."""
    vs = unique(verdicts)
    errs = list(errors)
    c = counts(vs)
    untested = not_tested(vs)
    passed = not errs and not interrupted and bool(vs) and not c["fail"] and not untested
    state = ("interrupted" if interrupted else "error" if errs else
             "passed" if passed else "failed" if c["fail"] else
             "not_tested" if untested else "failed")
    return {"target": target, "status": state, "passed": passed, "interrupted": interrupted,
            "counts": c, "verdicts": vs, "errors": errs, "not_tested": untested,
            **(extra or {})}


def unique(verdicts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One verdict per (scenario, volume, invariant), the first recorded: an incident
    story judges the outcome of a battery case again (the same run), and counting it
    twice would make one defect read as two."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for v in verdicts:
        key = (str(v.get("scenario", "")), str(v.get("volume") or ""), str(v["invariant"]))
        if key not in seen:
            seen.add(key)
            out.append(dict(v))
    return out


def not_tested(verdicts: Iterable[Mapping[str, Any]]) -> list[str]:
    """Volumes that never ran out under write pressure (their verdicts say ``untested``):
    a run with one never passes."""
    return sorted({str(v["untested"]) for v in verdicts if v.get("untested")})


@contextmanager
def output(path: str | Path) -> Iterator[IO[bytes]]:
    """Open one of fulldisk's own output files so that it appears whole or not at all:
    written to a temporary file beside it, renamed over it once complete. ``-`` is
    stdout; a device or FIFO (``/dev/full``, a pipe) is written in place. Any OSError (a
    full or read-only disk) is an ``OutputError`` naming the path, and leaves no file."""
    from .errors import OutputError

    name = str(path)
    try:
        if name == "-":
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
            return
        p = Path(name)
        if p.exists() and not p.is_file():  # not a regular file: nothing to rename over
            with open(p, "wb") as f:
                yield f
            return
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o644)
                yield f
            os.replace(tmp, p)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        raise OutputError(f"cannot write {name} ({e.strerror or e})",
                          "free space there, or give a path on a disk with room "
                          "(--report-dir, --json, --html, --junit, -o)") from None


def write_json(report: Mapping[str, Any], path: str | Path) -> Path:
    """Write a report as JSON, whole or not at all (``output``); ``-`` is stdout."""
    data = (json.dumps(report, indent=2, default=str) + "\n").encode("utf-8")
    with output(path) as f:
        f.write(data)
    return Path(path)


def untested_text(paths: Iterable[Mapping[str, str]]) -> list[str]:
    """Lines naming the folders services wrote outside fulldisk's volumes."""
    by: dict[tuple[str, str], list[str]] = {}
    for p in paths:
        by.setdefault((p["target"], p["service"]), []).append(p["path"])
    return [f"{t}/{svc}: {', '.join(ps)} (written outside fulldisk's volumes: declare a "
            "volume for it, or confirm it may fill)" for (t, svc), ps in sorted(by.items())]


def summary(report: Mapping[str, Any], console: Console | None = None, *,
            files: Mapping[str, str | Path | None] | None = None) -> None:
    """The compact summary: a headline, one line per scenario with its counts, the failing
    and not-judged verdicts with their evidence, then where the full reports are.

    In a CI log (not a terminal) every line is printed whole and plain; on a terminal the
    response-body excerpts are left out of the evidence; ``NO_COLOR`` drops the colours.
    """
    con = console or Console()
    tty = con.is_terminal
    # a terminal wraps long lines at words; a CI log gets each line whole, never wrapped
    fit: dict[str, Any] = {"highlight": False} if tty else {"highlight": False,
                                                             "soft_wrap": True}
    verdicts = list(report.get("verdicts", []))
    total = counts(verdicts)
    by_scenario: dict[str, list[Mapping[str, Any]]] = {}
    for v in verdicts:
        by_scenario.setdefault(str(v.get("scenario", "")), []).append(v)
    ok = bool(report.get("passed"))
    head = "[bold green]PASSED[/]" if ok else "[bold red]NOT SAFE TO DEPLOY[/]"
    untested = [str(v) for v in report.get("not_tested") or not_tested(verdicts)]
    if untested and not total["fail"] and not report.get("errors"):
        head = ("[bold yellow]NOT TESTED[/]: " + escape(", ".join(untested))
                + " never ran out")
    if report.get("interrupted"):  # what ran is shown, but it is no verdict on the target
        head = (f"[bold yellow]INTERRUPTED[/] ({escape(str(report['interrupted']))}) after "
                f"{report.get('ran', '?')} of {report.get('tests', '?')} tests, so no verdict")
    con.print(f"fulldisk {escape(str(report.get('target', '?')))}: {head} — "
              f"{counts_text(total)} ({len(by_scenario)} scenarios)", **fit)
    width = max((len(n) for n in by_scenario), default=0)
    for name, vs in by_scenario.items():
        c = counts(vs)
        mark = "[red]✗[/]" if c["fail"] else "[yellow]?[/]" if c["not_judged"] else "[green]✓[/]"
        vol = next((v.get("volume") for v in vs if v.get("volume")), None)
        con.print(f"  {mark} {escape(name.ljust(width))}  {counts_text(c)}"
                  f"{f'  (volume {escape(str(vol))})' if vol else ''}", **fit)
    for st in ("fail", "not_judged"):
        for v in (v for v in verdicts if status(v) == st):
            where = f"{v.get('scenario', '')}{'/' + v['volume'] if v.get('volume') else ''}"
            con.print(f"[{STATUS_STYLE[st]}]{STATUS_WORD[st]}[/] [bold]{escape(v['invariant'])}"
                      f"[/] {escape(f'[{where}]')}: {escape(str(v['summary']))}",
                      **fit)
            if st == "not_judged" and v.get("reason") and v.get("summary") not in (
                    v["reason"], f"not judged: {v['reason']}"):  # said once, not twice
                con.print(f"    missing: {escape(str(v['reason']))}", **fit)
            evidence = [str(e) for e in v.get("evidence", [])]
            keep = EVIDENCE_LINES if st == "fail" else 2
            for e in evidence[:keep]:
                line = _BODY.sub("", e) if tty else e
                con.print(f"    {escape(line)}", style="dim" if st == "not_judged" else None,
                          **fit)
            if len(evidence) > keep:
                con.print(f"    … {len(evidence) - keep} more evidence lines in the HTML and "
                          "JSON reports", **fit)
    for e in report.get("errors", []):
        con.print(f"[red]error:[/] {escape(str(e))}", **fit)
    if report.get("untested_paths"):
        con.print("[yellow]not tested on a small disk:[/]", **fit)
        for line in untested_text(report["untested_paths"]):
            con.print(f"  {line}", markup=False, **fit)
    shown = {k: p for k, p in (files or {}).items() if p}
    if shown:
        con.print("reports: " + ", ".join(f"{k} {escape(str(p))}" for k, p in shown.items()),
                  soft_wrap=True, highlight=False)
