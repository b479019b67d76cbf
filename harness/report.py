"""Reports: the JSON report tools read, and the terminal summary a person reads at a glance."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


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
    gate --strict`` fails on those; an interrupted run never passes), ``counts``,
    ``verdicts``, ``errors`` (of the infrastructure or the target)."""
    vs = [dict(v) for v in verdicts]
    errs = list(errors)
    c = counts(vs)
    passed = not errs and not interrupted and bool(vs) and not c["fail"]
    status = ("interrupted" if interrupted else "error" if errs else
              "passed" if passed else "failed")
    return {"target": target, "status": status, "passed": passed, "interrupted": interrupted,
            "counts": c, "verdicts": vs, "errors": errs, **(extra or {})}


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
        mark = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]"}.get(
            status(v), "[yellow]not judged[/]")
        table.add_row(str(v.get("scenario", "")), v["invariant"], mark, v["summary"][:100])
    con.print(table)
    for e in report.get("errors", []):
        con.print(Text.assemble(("error: ", "red"), str(e)))
    c = counts(report["verdicts"])
    if report.get("interrupted"):
        con.print(f"[yellow]INTERRUPTED ({report['interrupted']}) after {report.get('ran', '?')} "
                  f"of {report.get('tests', '?')} tests ({counts_text(c)} so far) — no verdict "
                  "on the target[/]")
        return
    colour = "green" if report["passed"] else "red"
    con.print(f"[{colour}]{counts_text(c)}"
              f"{'' if report['passed'] else ' — NOT SAFE TO DEPLOY'}[/]")
