"""Reports: the JSON report tools read, and the compact terminal summary a person reads."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

STATUS_WORD = {"fail": "FAIL", "not_judged": "NOT JUDGED", "pass": "pass"}
STATUS_STYLE = {"fail": "bold red", "not_judged": "yellow", "pass": "green"}
EVIDENCE_LINES = 6
"""Evidence lines the terminal shows per verdict; the HTML and JSON reports keep them all."""


def status_of(v: Mapping[str, Any]) -> str:
    """A verdict dict's status: ``pass``, ``fail`` or ``not_judged`` (older reports lack it)."""
    if v.get("status") in STATUS_WORD:
        return str(v["status"])
    if not v.get("applicable", True):
        return "not_judged"
    return "pass" if v.get("passed") else "fail"


def counts(verdicts: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many verdicts are ``fail``, ``not_judged`` and ``pass``."""
    out = {"fail": 0, "not_judged": 0, "pass": 0}
    for v in verdicts:
        out[status_of(v)] += 1
    return out


def counts_text(c: Mapping[str, int]) -> str:
    """``1 failed, 2 not judged, 30 passed``."""
    return f"{c['fail']} failed, {c['not_judged']} not judged, {c['pass']} passed"


def verdict_text(v: Mapping[str, Any]) -> str:
    """A verdict with its evidence, as the failure message of a test."""
    head = f"{v['invariant']} {'PASSED' if v['passed'] else 'FAILED'}"
    where = f" [{v.get('scenario', '')}{'/' + v['volume'] if v.get('volume') else ''}]"
    lines = [head + where + ": " + v["summary"]]
    if v.get("evidence"):
        lines.append("evidence:")
        lines += [f"  {e}" for e in v["evidence"]]
    return "\n".join(lines)


def build(target: str, verdicts: Iterable[Mapping[str, Any]], *,
          errors: Iterable[str] = (), extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON report: ``target``, ``passed``, ``verdicts`` (+ ``errors`` of the infra)."""
    vs = [dict(v) for v in verdicts]
    errs = list(errors)
    return {"target": target, "passed": not errs and bool(vs) and all(v["passed"] for v in vs),
            "verdicts": vs, "errors": errs, **(extra or {})}


def write_json(report: Mapping[str, Any], path: str | Path) -> Path:
    """Write a report as JSON, creating folders."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return p


def summary(report: Mapping[str, Any], console: Console | None = None, *,
            files: Mapping[str, str | Path | None] | None = None) -> None:
    """The compact summary: a headline, one line per scenario with its counts, the failing
    and not-judged verdicts with their evidence, then where the full reports are.

    In a CI log (not a terminal) every line is printed whole and plain; ``NO_COLOR`` drops
    the colours (rich reads it).
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
        for v in (v for v in verdicts if status_of(v) == st):
            where = f"{v.get('scenario', '')}{'/' + v['volume'] if v.get('volume') else ''}"
            con.print(f"[{STATUS_STYLE[st]}]{STATUS_WORD[st]}[/] [bold]{escape(v['invariant'])}"
                      f"[/] {escape(f'[{where}]')}: {escape(str(v['summary']))}",
                      **fit)
            evidence = [str(e) for e in v.get("evidence", [])]
            keep = EVIDENCE_LINES if st == "fail" else 2
            for e in evidence[:keep]:
                con.print(f"    {escape(e)}", style="dim" if st == "not_judged" else None,
                          **fit)
            if len(evidence) > keep:
                con.print(f"    … {len(evidence) - keep} more evidence lines in the HTML and "
                          "JSON reports", **fit)
    for e in report.get("errors", []):
        con.print(f"[red]error:[/] {escape(str(e))}", **fit)
    shown = {k: p for k, p in (files or {}).items() if p}
    if shown:
        con.print("reports: " + ", ".join(f"{k} {escape(str(p))}" for k, p in shown.items()),
                  soft_wrap=True, highlight=False)
