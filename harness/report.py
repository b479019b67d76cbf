"""Reports: the JSON report tools read, and the terminal summary a person reads at a glance."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


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
          errors: Iterable[str] = (), interrupted: str | None = None,
          extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON report: ``target``, ``status`` (passed, failed, error or interrupted),
    ``passed``, ``verdicts``, ``errors``; an interrupted run never counts as passed."""
    vs = [dict(v) for v in verdicts]
    errs = list(errors)
    passed = not errs and not interrupted and bool(vs) and all(v["passed"] for v in vs)
    status = ("interrupted" if interrupted else "error" if errs else
              "passed" if passed else "failed")
    return {"target": target, "status": status, "passed": passed, "interrupted": interrupted,
            "verdicts": vs, "errors": errs, **(extra or {})}


def write_json(report: Mapping[str, Any], path: str | Path) -> Path:
    """Write a report as JSON, creating folders."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return p


def summary(report: Mapping[str, Any], console: Console | None = None) -> None:
    """Print a table: one row per scenario and invariant, failures with their reason."""
    con = console or Console()
    table = Table(title=f"fulldisk: {report['target']}", show_lines=False)
    table.add_column("scenario")
    table.add_column("invariant")
    table.add_column("verdict")
    table.add_column("why")
    for v in report["verdicts"]:
        mark = ("[green]pass[/]" if v["passed"] else "[red]FAIL[/]") if v.get(
            "applicable", True) else "[dim]n/a[/]"
        table.add_row(str(v.get("scenario", "")), v["invariant"], mark, v["summary"][:100])
    con.print(table)
    for e in report.get("errors", []):
        con.print(f"[red]error:[/] {e}", markup=False)
    n = len(report["verdicts"])
    failed = sum(1 for v in report["verdicts"] if not v["passed"])
    if report.get("interrupted"):
        con.print(f"[yellow]INTERRUPTED ({report['interrupted']}) after {report.get('ran', '?')} "
                  f"of {report.get('tests', '?')} tests: {n - failed} of {n} verdicts so far "
                  "passed — no verdict on the target[/]")
        return
    colour = "green" if report["passed"] else "red"
    con.print(f"[{colour}]{n - failed} of {n} verdicts passed"
              f"{'' if report['passed'] else ' — NOT SAFE TO DEPLOY'}[/]")
