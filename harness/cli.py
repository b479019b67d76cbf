"""The ``fulldisk`` command: run, gate, explore, selftest, list, doctor, clean, build, init,
schema.

Exit codes (README, "Exit codes"): 0 all passed; 1 an invariant failed; 2 usage, config
or target problem (a probe that fails on empty disks); 3 the machine cannot run the check
(Docker down, image missing, a service died); 130 interrupted. A user error is one line
with its fix, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from .errors import HarnessError, InfrastructureError, UsageError
from .selftest import DEFECTS
from .sizes import parse_size
from .target import Target, load_target

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)
NOT_TESTED = 4
"""Exit code of a run in which a volume never ran out under write pressure (nothing failed)."""


def _target(path: str | None) -> Target:
    return load_target(path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fulldisk")
def cli() -> None:
    """fulldisk: chaos tests for full-disk failures of web stacks."""


target_opt = click.option("--target", "-t", "target_path", default=None, metavar="PATH",
                          help="fulldisk.toml or pyproject.toml (default: ./fulldisk.toml, "
                               "else the bundled reference stack)")


html_opt = click.option("--html", "html_path", default=None, metavar="PATH",
                        help="the HTML report (default: REPORT_DIR/report.html)")


def output_dir(path: str, what: str) -> Path:
    """A folder the user asked for: created when missing, refused when it is a file or
    cannot be written (checked before the run starts, not after it)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{what} {path!r} is a file, not a folder",
                         f"give a folder (it is created when missing), or remove {path}")
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p):
            pass
    except OSError as e:
        raise UsageError(f"{what} {path!r} cannot be written ({e.strerror or e})",
                         "give a folder you can write to") from None
    return p


def output_file(path: str, what: str, *, created: Path | None = None,
                config: str | None = None) -> Path:
    """A file the run will write: not a folder, in an existing (or the report) folder,
    writable, and never the target ``config`` nor a file fulldisk did not write (``-``:
    stdout). Checked before the run starts; nothing is left behind by the check."""
    p = Path(path)
    if path == "-":
        return p
    if config and p.exists() and p.resolve() == Path(config).resolve():
        raise UsageError(f"{what} {path!r} is the target config: writing there would replace it",
                         "give another path, e.g. reports/report.json")
    if p.is_file() and p.stat().st_size and not _ours(p):
        raise UsageError(f"{what} {path!r} exists and is not a report fulldisk wrote, so it "
                         "is not replaced", "give a new path, or remove the file first")
    if p.is_dir() or path.endswith(("/", os.sep)):
        raise UsageError(f"{what} {path!r} is a folder, not a file",
                         f"give a file path such as {path.rstrip('/') or '.'}/report.json")
    parent = p.parent
    if not parent.is_dir() and (created is None or parent.resolve() != created.resolve()):
        raise UsageError(f"{what} {path!r}: the folder {str(parent)!r} does not exist",
                         "create it first, or give a path in an existing folder")
    existed = p.exists()
    try:
        with open(p, "a", encoding="utf-8"):
            pass
    except OSError as e:
        raise UsageError(f"{what} {path!r} cannot be written ({e.strerror or e})",
                         "give a file path you can write to") from None
    if not existed:
        p.unlink()
    return p


def _ours(p: Path) -> bool:
    """Whether an existing file looks like one fulldisk writes (a JSON report, an HTML
    report, a JUnit file), so that writing it again replaces nothing of the user's."""
    try:
        with open(p, "rb") as f:
            head = f.read(65536)
    except OSError:
        return False
    text = head.decode("utf-8", errors="replace").lstrip()
    if text.startswith("{"):
        return '"passed"' in text or '"status"' in text
    if text.startswith("<!DOCTYPE html>"):
        return "fulldisk" in text
    return text.startswith("<?xml") and "<testsuite" in text


def check_select(select: str | None) -> None:
    """A -k expression pytest can parse (before anything starts): else a usage error."""
    if not select:
        return
    from _pytest.mark.expression import Expression

    try:
        Expression.compile(select)
    except Exception as e:  # pytest's ParseError, or UsageError in later versions
        raise UsageError(f"-k {select!r} is not a valid expression ({e})",
                         "join scenario names with and, or, not and parentheses, e.g. "
                         "-k 'www and not logs'; `fulldisk list` shows the names") from None


_CLAIMS: dict[Path, int] = {}  # report folders this process writes: their locks, held
                               # until it exits (a lock is per open file, so one each)


def claim_report_dir(out: Path) -> None:
    """Say so when another live run writes reports to the same folder: the two would
    replace each other's report.json (the lock ends with the process that holds it)."""
    import fcntl

    if out.resolve() in _CLAIMS:  # this process's own earlier run (an in-process caller)
        return
    try:
        fd = os.open(out / ".fulldisk-run.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        err_console.print(f"fulldisk: warning: another fulldisk run writes its reports to "
                          f"{out} too: each replaces the other's report.json; give each run "
                          "its own --report-dir", markup=False, highlight=False,
                          soft_wrap=True)
    _CLAIMS[out.resolve()] = fd


def _battery(target_path: str | None, report_dir: str, junit: str | None,
             json_path: str | None, select: str | None, workers: int,
             html_path: str | None) -> tuple[int, dict[str, Any], Path, Path]:
    import contextlib

    check_select(select)
    target, out, html = _outputs(target_path, report_dir, junit, json_path, html_path)
    import pytest

    from . import engine
    from .progress import RunProgress, terminal_console

    engine.require()  # Docker down is exit 3 before anything starts
    claim_report_dir(out)  # a run starts: another live one writing here is worth a word
    report_file = out / "report.json"
    html_part = out / f".html-{os.getpid()}.html"  # for --html -: pytest's stdout is a log
    # An empty temporary folder is the session's root: --fulldisk-battery adds the
    # fulldisk::... collector, and the folder keeps the run away from the cwd's own tests
    # and conftest files.
    root_dir = tempfile.TemporaryDirectory(prefix="fulldisk-pytest-")
    root = root_dir.name
    # Plugins the battery never uses stay off: hypothesis's alone costs seconds of CPU per
    # run (pytest rewrites its asserts, and PYTHONDONTWRITEBYTECODE keeps no cache of that).
    args = [root, "--fulldisk-battery", "-m", "chaos", "-q", "-p",
            "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:fakefs", "--no-header",
            "-o", "console_output_style=classic", "--fulldisk-require-docker",
            "--tb=short", "--fulldisk-report", str(out), "--rootdir", root,
            "--fulldisk-html",
            str(html_part.resolve() if str(html) == "-" else html.resolve())]
    if target_path:
        args += ["--fulldisk-target", str(Path(target_path).resolve())]
    junit_part = out / f".junit-{os.getpid()}.xml"  # copied to --junit whole (report.output)
    if junit:
        args += ["--junitxml", str(junit_part.resolve())]
    if select:
        args += ["-k", select]
    if workers > 1:
        args += ["-n", str(workers), "--dist", "loadgroup"]
    log = out / "pytest.log"
    # pytest's own output goes to a file: the terminal shows live progress, then the summary
    with (root_dir, RunProgress(terminal_console(), target.name) as progress,
          open(log, "w", encoding="utf-8") as stream, contextlib.redirect_stdout(stream)):
        code = int(pytest.main(args, plugins=[progress]))
    from .report import output

    for part, dest in ((junit_part, junit), (html_part, str(html))):
        if part.exists():
            try:
                with output(dest or "-") as f:
                    f.write(part.read_bytes())
            finally:
                part.unlink(missing_ok=True)
    report: dict[str, Any] = (json.loads(report_file.read_text()) if report_file.exists()
                              else {"target": target.name, "status": "error", "passed": False,
                                    "verdicts": [], "errors": []})
    if code not in (0, 1, 5) and not report.get("errors") and not report.get("interrupted"):
        # nothing explained the failure: show pytest's own last words, once
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        err_console.print("\n".join(tail), markup=False, highlight=False)
        if code != 5:
            report["errors"] = [f"the battery ended (pytest exit {code}) without a verdict; "
                                f"pytest's whole output: {log}"]
    if code == 5 and not report.get("errors"):
        report["errors"] = [f"no battery scenario matches -k {select!r}. Hint: `fulldisk "
                            "list` shows the scenario ids"]
        report["error_exit"] = 2
    return code, report, report_file, html


def _outputs(target_path: str | None, report_dir: str, junit: str | None,
             json_path: str | None, html_path: str | None) -> tuple[Target, Path, Path]:
    """Load the target and check every output path before anything starts."""
    target = _target(target_path)  # config and output errors come before heavy imports
    out = output_dir(report_dir, "--report-dir")
    html = output_file(html_path, "--html", config=target.path) if html_path \
        else out / "report.html"
    if junit:
        output_file(junit, "--junit", created=out, config=target.path)
    if json_path:
        output_file(json_path, "--json", created=out, config=target.path)
    named = [p for p in (html_path, junit, json_path) if p and p != "-"]
    if len({Path(p).resolve() for p in named}) < len(named):
        raise UsageError("--html, --json and --junit name the same file",
                         "give each report its own path")
    (out / "report.json").unlink(missing_ok=True)  # an earlier run's is never read as this one's
    return target, out, html


def _straight(target_path: str | None, report_dir: str, json_path: str | None,
              html_path: str | None) -> tuple[int, dict[str, Any], Path, Path]:
    """The battery without pytest (``fulldisk run`` without -k/-n): the same cases and
    verdicts, the same report.json and report.html, no collection pass."""
    from . import engine

    target, out, html = _outputs(target_path, report_dir, None, json_path, html_path)
    engine.require()  # Docker down is exit 3 before anything starts
    claim_report_dir(out)  # a run starts: another live one writing here is worth a word
    from .progress import RunProgress, terminal_console
    from .report import build
    from .runner import run_battery

    # The lease is made by the engine while the first stack is prepared; not while the
    # rest is imported: a thread waiting for the engine's answers gets the GIL late then.
    engine.start_lease()
    with RunProgress(terminal_console(), target.name) as progress:
        progress.total = len(_cases(target))
        result = run_battery(target, done=lambda c, o: progress.finished(
            "passed" if o is not None and o.passed else "failed", c.id),
            meanwhile=lambda outcomes: _prepare_charts(outcomes, target))
    code = 1 if result.failed else 0  # as pytest's exit status would be
    untested = [{"target": t, "service": s, "path": p} for t, s, p in sorted(result.untested)]
    report = build(target.name, result.verdicts, errors=result.errors,
                   interrupted=result.interrupted,
                   extra={"exitstatus": code, "error_exit": result.error_exit or None,
                          "tests": progress.total, "ran": result.ran,
                          "untested_paths": untested,
                          "seconds": {k: round(v, 3) for k, v in result.seconds.items()}})
    report_file = out / "report.json"  # written once the exit code is known (run, gate)
    from .report_html import render_run, write_html

    write_html(render_run(report, [o.timeline for o in result.outcomes], target,
                          inline_js=False), html)
    return code, report, report_file, html


def _prepare_charts(outcomes: list[Any], target: Target) -> None:
    from .report_html import prepare_charts

    prepare_charts([o.timeline for o in outcomes], target)


def _cases(target: Target) -> list[Any]:
    from .battery import battery_cases

    return list(battery_cases(target))


def _exit_code(pytest_code: int, report: dict[str, Any]) -> int:
    if report.get("interrupted"):
        return 130
    if report.get("errors"):
        return int(report.get("error_exit") or 3)
    if pytest_code in (4, 5):
        return 2
    if pytest_code == 0 and report.get("passed"):
        return 0
    if pytest_code not in (0, 1):
        return 3
    from .report import status

    if any(status(v) == "fail" for v in report.get("verdicts", [])):
        return 1
    if report.get("status") == "not_tested":
        return NOT_TESTED  # a volume never ran out: nothing said how the app does when full
    return 3  # a test failed without a verdict: the harness could not judge


def _finish(report: dict[str, Any], rc: int, json_path: str | None,
            files: dict[str, str | Path | None]) -> None:
    """Print the outcome once: the summary, or (exit 2 or 3) the one error line."""
    from .report import summary

    if rc in (2, 3) and report.get("errors"):
        errors = [str(e) for e in report["errors"]]
        more = f" ({len(errors) - 1} more in report.json)" if len(errors) > 1 else ""
        err_console.print(f"fulldisk: error: {errors[0]}{more}", markup=False,
                          highlight=False, soft_wrap=True)
        return
    to_stdout = "-" in (json_path, str(files.get("html")))  # a report is on stdout
    summary(report, err_console if to_stdout else console, files=files)


def settle(report: dict[str, Any], rc: int) -> dict[str, Any]:
    """The report's ``status``, ``passed`` and ``exit`` as the process ends: they always
    agree with its exit code (0 passed, 1 failed, 2 or 3 error, 4 not tested, 130
    interrupted)."""
    report["exit"] = rc
    report["status"] = {0: "passed", 1: "failed", NOT_TESTED: "not_tested",
                        130: "interrupted"}.get(rc, "error")
    report["passed"] = rc == 0
    if rc in (2, 3) and not report.get("errors"):
        report["errors"] = [f"the battery ended (exit {rc}) without a verdict"]
    return report


def _write_reports(report: dict[str, Any], report_file: Path, json_path: str | None,
                   html: Path) -> tuple[int, dict[str, Any], Path, Path]:
    """report.json (and --json) as the process ends, whole or not at all."""
    from .report import write_json

    write_json(report, report_file)
    if json_path:
        write_json(report, json_path)
    return int(report["exit"]), report, report_file, html


def _reported(call: Callable[[], tuple[int, dict[str, Any], Path, Path]],
              target_path: str | None, report_dir: str,
              json_path: str | None) -> tuple[int, dict[str, Any], Path, Path]:
    """``call``, and when it ends in an error or an interrupt before a report exists, a
    report.json that says so (status error or interrupted, the message, the exit code),
    so that an earlier run's report is never read as this one's."""
    try:
        return call()
    except (HarnessError, KeyboardInterrupt) as e:
        _error_report(e, target_path, report_dir, json_path)
        raise
    except Exception as e:
        lost = _engine_lost(e)
        if lost is None:
            raise
        _error_report(lost, target_path, report_dir, json_path)
        raise lost from e


def _engine_lost(e: BaseException) -> HarnessError | None:
    if "harness.engine" not in sys.modules:
        return None
    from .engine import engine_error

    return engine_error(e)


def _error_report(e: BaseException, target_path: str | None, report_dir: str,
                  json_path: str | None) -> None:
    from .report import build, write_json

    interrupted = isinstance(e, KeyboardInterrupt)
    rc = 130 if interrupted else e.exit_code if isinstance(e, HarnessError) else 3
    message = e.one_line().replace("\n", " | ") if isinstance(e, HarnessError) else str(e)
    try:
        name = _target(target_path).name
    except Exception:  # the config is what failed: the report still says so
        name = "?"
    report = settle(build(name, [], errors=[] if interrupted else [message],
                          interrupted=(str(e) or "SIGINT") if interrupted else None), rc)
    places: list[str | Path] = []
    try:
        places.append(output_dir(report_dir, "--report-dir") / "report.json")
    except HarnessError:
        pass  # the report folder is what failed
    if json_path:
        try:
            places.append(output_file(json_path, "--json",
                                      config=_config_path(target_path)))
        except HarnessError:
            pass
    for p in places:
        try:
            write_json(report, p)
        except HarnessError:
            pass  # the error itself is said on stderr


def _config_path(target_path: str | None) -> str | None:
    try:
        return _target(target_path).path
    except Exception:
        return target_path


@cli.command()
@target_opt
@click.option("--json", "json_path", default=None, metavar="PATH",
              help="write the JSON report here too (default: reports/report.json)")
@click.option("--report-dir", default="reports", show_default=True, metavar="DIR")
@click.option("-k", "select", default=None, help="only scenarios matching this expression")
@click.option("-n", "workers", default=1, show_default=True, type=click.IntRange(1, 8),
              help="parallel workers (pytest-xdist)")
@html_opt
def run(target_path: str | None, json_path: str | None, report_dir: str, select: str | None,
        workers: int, html_path: str | None) -> None:
    """Run the battery against a target and print the summary (-k or -n: through pytest)."""
    code, report, report_file, html = _reported(
        (lambda: _battery(target_path, report_dir, None, json_path, select, workers,
                          html_path)) if select or workers > 1 else
        (lambda: _straight(target_path, report_dir, json_path, html_path)),
        target_path, report_dir, json_path)
    rc = _exit_code(code, report)
    _reported(lambda: _write_reports(settle(report, rc), report_file, json_path, html),
              target_path, report_dir, json_path)
    _finish(report, rc, json_path, {"html": html, "json": json_path or report_file})
    sys.exit(rc)


@cli.command()
@target_opt
@click.option("--junit", default="reports/junit.xml", show_default=True, metavar="PATH")
@click.option("--json", "json_path", default=None, metavar="PATH")
@click.option("--report-dir", default="reports", show_default=True, metavar="DIR")
@click.option("-k", "select", default=None, help="only scenarios matching this expression")
@click.option("-n", "workers", default=1, show_default=True, type=click.IntRange(1, 8))
@click.option("--strict", is_flag=True,
              help="also fail (exit 1) on a not judged verdict of an invariant the target feeds")
@html_opt
def gate(target_path: str | None, junit: str, json_path: str | None, report_dir: str,
         select: str | None, workers: int, strict: bool, html_path: str | None) -> None:
    """Pre-deploy gate: exit 0 all passed, 1 an invariant failed, 2 usage or target
    config, 3 infrastructure, 4 a volume never ran out (not tested), 130 interrupted."""
    code, report, report_file, html = _reported(
        lambda: _battery(target_path, report_dir, junit, json_path, select, workers,
                         html_path), target_path, report_dir, json_path)
    rc = _exit_code(code, report)
    unjudged = strict_failures(_target(target_path), report) if strict and rc == 0 else []
    if unjudged:
        rc = 1
    _reported(lambda: _write_reports(settle(report, rc), report_file, json_path, html),
              target_path, report_dir, json_path)
    _finish(report, rc, json_path, {"html": html, "json": json_path or report_file,
                                    "junit": junit})
    out = err_console if "-" in (json_path, html_path) else console
    for line in unjudged:
        out.print(f"[yellow]not judged (--strict):[/] {line}", markup=True)
    if rc == NOT_TESTED:
        out.print(f"gate: {', '.join(report.get('not_tested', []))} never ran out under "
                  "write pressure. Hint: make its write probe write more per run (a bigger "
                  "body_size), or raise [bounds] pressure_bytes", markup=False, soft_wrap=True)
    out.print(f"gate: {'PASS' if rc == 0 else 'FAIL'} (exit {rc})")
    sys.exit(rc)


def strict_failures(target: Target, report: dict[str, Any]) -> list[str]:
    """Not judged verdicts of invariants the target feeds (what ``gate --strict`` fails on)."""
    from .battery import fed_invariants
    from .report import status

    fed = set(fed_invariants(target))
    return [f"{v.get('scenario', '')}: {v['invariant']}: {v.get('reason') or v['summary']}"
            for v in report.get("verdicts", [])
            if status(v) == "not_judged" and v["invariant"] in fed]


@cli.command("explore")
@target_opt
@click.option("--max-examples", default=1000, show_default=True, type=click.IntRange(1, 10**6))
@click.option("--max-steps", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="steps per example")
@click.option("--time", "seconds", default=60.0, show_default=True,
              type=click.FloatRange(1, 86400), help="budget in seconds, shrinking included")
@click.option("--seed", default=None, type=int, help="replay a run exactly (no example database)")
@click.option("--report-dir", default="reports/explore", show_default=True, metavar="DIR",
              help="where the replay file of a failure goes")
def explore_cmd(target_path: str | None, max_examples: int, max_steps: int, seconds: float,
                seed: int | None, report_dir: str) -> None:
    """Let Hypothesis search orders of fills, frees and requests; shrink a failure to a story."""
    from .explore import explore, progress_display

    target = _target(target_path)
    output_dir(report_dir, "--report-dir")  # before the search, not after it
    with progress_display(err_console) as tick:
        result = explore(target, max_examples=max_examples, max_steps=max_steps,
                         seconds=seconds, seed=seed, report_dir=report_dir, tick=tick)
    console.print(result.summary(), soft_wrap=True)
    for note in result.notes:
        console.print(f"note: {note}", soft_wrap=True)
    if result.finding:
        console.print(result.finding.text(), markup=False, soft_wrap=True)
    sys.exit(1 if result.finding else 0)


@cli.command("list")
@target_opt
def list_(target_path: str | None) -> None:
    """List the target's volumes, probes and battery scenarios."""
    from .battery import battery_cases
    from .sizes import format_size

    t = _target(target_path)
    console.print(f"target {t.name} ({t.path})")
    for name, v in t.volumes.items():
        at = ", ".join(f"{m.service}:{m.path}" for m in v.mounts)
        console.print(f"  volume {name}: {format_size(v.size)}, {v.inodes} inodes, "
                      f"owner {v.owner}, {v.role}: {at}")
    total = sum(v.size for v in t.volumes.values())
    console.print(f"  memory: the volumes are tmpfs, in RAM: up to {format_size(total)} while "
                  "the shared-disk scenario fills them (refused above a quarter of the "
                  "available memory)")
    for name, p in t.probes.items():
        console.print(f"  probe {name} ({p.kind}{', core' if p.core else ''}"
                      f"{', write' if p.write else ''}): {p.description}")
    for c in battery_cases(t):
        console.print(f"  scenario {c.id}: {', '.join(c.invariants)}")


@cli.command()
@target_opt
def doctor(target_path: str | None) -> None:
    """Check Docker, the base image and the target's images; exit 0 only when ready."""
    from . import engine

    missing: list[str] = []
    t = load_target(target_path)  # a bad config is exit 2 before Docker is asked
    info = engine.info()  # Docker down: one line with the fix, exit 3 (see main)
    console.print(f"[green]✓[/] Docker engine {info.version} (API {info.api_version})")
    if info.base_image_present:
        console.print(f"[green]✓[/] base image {info.base_image}")
    else:
        missing.append(info.base_image)
        console.print(f"[red]✗[/] base image {info.base_image} missing. Hint: run ci/setup "
                      "(debootstrap + docker import when no registry answers)")
    console.print(f"  target {t.name} ({t.path})", markup=False)
    for img in sorted({s.image for s in t.services.values()}):
        built = any(s.build for s in t.services.values() if s.image == img)
        if engine.image_exists(img):
            console.print(f"[green]✓[/] image {img}")
        else:
            missing.append(img)
            fix = (f"run `fulldisk build{' --target ' + target_path if target_path else ''}`"
                   if built else "build or load it (the service has no 'build' context)")
            console.print(f"[red]✗[/] image {img} missing. Hint: {fix}")
    left = engine.count_labelled()
    console.print(f"{'[yellow]!' if left.total else '[green]✓'}[/] labelled leftovers: "
                  f"{left.containers} containers, {left.volumes} volumes, {left.networks} "
                  f"networks{f', {left.mounts} tmpfs mounts' if left.mounts else ''} in "
                  f"{len(left.runs)} run(s)")
    if left.runs:
        gone = engine.stale_runs()
        for r in left.runs:
            state = ("owner gone: `fulldisk clean --stale` removes it" if r in gone else
                     "owner alive or not proven gone (`fulldisk clean --run ID` if you know)")
            console.print(f"    {r}: {state}", markup=False)
    if missing:
        raise InfrastructureError(f"not ready: image(s) {', '.join(missing)} missing",
                                  "see the lines above for how to make each one")


@cli.command()
@click.option("--run", "run_id", default=None, help="only this run id (default: all runs)")
@click.option("--stale", is_flag=True,
              help="only runs proven gone (their lease went unrenewed past its grace period)")
def clean(run_id: str | None, stale: bool) -> None:
    """Remove every container, volume and network labelled fulldisk.run."""
    from . import engine

    if run_id is not None and run_id not in engine.count_labelled(run_id).runs:
        raise UsageError(f"no resources of run {run_id!r} on this engine (already removed, "
                         "or a typo)", "`fulldisk doctor` lists the runs that have leftovers")
    left = engine.clean(run_id, stale_only=stale)
    console.print(f"removed {left.containers} containers, {left.volumes} volumes, "
                  f"{left.networks} networks"
                  + (f", {left.mounts} tmpfs mounts" if left.mounts else ""))
    if left.host_only:
        console.print(f"kept {len(left.host_only)} volume(s) whose tmpfs fulldisk mounted on "
                      "the engine's host (unmounted only from there): run `fulldisk clean` "
                      f"as root on the engine's host: {', '.join(left.host_only)}",
                      markup=False)
    if left.unproven:
        console.print(f"kept {len(left.unproven)} run(s) not proven gone (alive, or without "
                      f"a lease): {', '.join(left.unproven)}; `fulldisk clean --run ID` "
                      "removes one whose owner you know has ended")


@cli.command("schema")
def schema_cmd() -> None:
    """Print the JSON Schema of a target config (fulldisk.schema.json), for editors."""
    from .config_schema import schema_text

    click.echo(schema_text(), nl=False)


@cli.command()
@target_opt
@click.option("--quiet", "-q", is_flag=True)
def build(target_path: str | None, quiet: bool) -> None:
    """Build the target's images (Docker's cache makes a warm rebuild take seconds)."""
    from .stack import ensure_images

    t0 = time.monotonic()
    built = ensure_images(_target(target_path), rebuild=True)
    if not quiet:
        console.print(f"built {', '.join(built) or 'nothing'} in {time.monotonic() - t0:.1f} s")


@cli.command()
@click.option("--json", "json_path", default=None, metavar="PATH")
@click.option("--only", default=None, metavar="NAMES",
              help="comma-separated defect switches to try (default: all of them)")
@click.option("--html", "html_path", default="reports/report.html", show_default=True,
              metavar="PATH", help="the HTML report: the matrix and how each switch was caught")
def selftest(json_path: str | None, only: str | None, html_path: str) -> None:
    """Run the battery on the reference stack once per defect switch and once hardened."""
    from .battery import Outcome
    from .invariants import Rules
    from .progress import RunProgress, terminal_console
    from .report import build
    from .report_html import RunView, render_selftest, write_html
    from .selftest import matrix_text, run_selftest
    from .target import reference_target

    names = list(DEFECTS)
    if only:
        names = [n.strip() for n in only.split(",") if n.strip()]
        unknown = [n for n in names if n not in DEFECTS]
        if unknown:
            raise UsageError(f"unknown defect switch(es): {', '.join(unknown)}",
                             f"choose from {', '.join(DEFECTS)}")
    if json_path:
        output_file(json_path, "--json")
    if html_path == "reports/report.html":  # the default's folder is ours to create
        output_dir("reports", "--html's folder")
    output_file(html_path, "--html")
    target = reference_target()
    runs: dict[str, RunView] = {}

    def keep(defect: str | None, outcomes: list[Outcome]) -> None:
        label = defect or "hardened"
        report = build(target.name, [v.to_dict() for o in outcomes for v in o.verdicts])
        runs[label] = RunView(report, [o.timeline for o in outcomes],
                              f"DATAHUB_DEFECTS={defect}" if defect else "hardened build",
                              chart_all=False)

    with RunProgress(terminal_console(), "selftest") as progress:
        result = run_selftest(names, progress=progress.note, on_config=keep)
    console.print(matrix_text(result))
    if json_path:
        from .report import write_json

        write_json(result, json_path)
    write_html(render_selftest(result, runs, config=target.redacted_config(),
                               rules=Rules.from_target(target), redact=target.redact,
                               inline_js=False), html_path)
    console.print(f"reports: html {html_path}" + (f", json {json_path}" if json_path else ""))
    sys.exit(0 if result["passed"] else 1)


@cli.command()
@click.argument("images", nargs=-1, metavar="[NAME=]IMAGE...")
@click.option("--compose", "compose", default=None, metavar="FILE",
              help="a docker-compose.yml: the starter names it for the services and sizes "
                   "its named volumes from a warm-up of the services as it defines them")
@click.option("--command", "commands", multiple=True, metavar="NAME=COMMAND",
              help="the command a service runs (e.g. --command web='nginx -g ...')")
@click.option("--warmup", default=None, metavar="SHELL",
              help="warm-up command run on this machine instead of crawling the ports; it "
                   "gets FULLDISK_URL_<SERVICE> and FULLDISK_URL_<SERVICE>_<PORT>")
@click.option("--seconds", default=2.0, show_default=True, type=click.FloatRange(0, 60),
              help="how long to keep watching after the warm-up (background writers)")
@click.option("--timeout", default=90.0, show_default=True, type=click.FloatRange(5, 600),
              help="bound on the whole observation")
@click.option("--ready-timeout", default=15.0, show_default=True,
              type=click.FloatRange(1, 300),
              help="how long a service may take until one of its exposed ports answers")
@click.option("--output", "-o", default="fulldisk.toml", show_default=True, metavar="PATH")
@click.option("--name", default=None, help="the target's name (default: the first service)")
@click.option("--force", is_flag=True, help="overwrite an existing file")
def init(images: tuple[str, ...], compose: str | None, commands: tuple[str, ...],
         warmup: str | None, seconds: float, timeout: float, ready_timeout: float, output: str,
         name: str | None, force: bool) -> None:
    """Write a starter fulldisk.toml from images (the folders they write, ports, logs), or
    from a compose file (--compose)."""
    from .starter import parse_services, write_starter

    t0 = time.monotonic()
    if compose is not None:
        if images or commands or warmup:
            raise UsageError("--compose takes its services from the compose file",
                             "drop the images, --command and --warmup, or drop --compose")
        from .compose_init import write_compose_starter

        out = write_compose_starter(Path(compose), Path(output), force=force, name=name,
                                    seconds=seconds, timeout=timeout,
                                    progress=lambda m: err_console.print(m, markup=False))
        console.print(f"wrote {out} in {time.monotonic() - t0:.1f} s; read its comments, then "
                      f"`fulldisk list --target {out}`")
        return
    if not images:
        raise click.MissingParameter(param_hint="'[NAME=]IMAGE...'", param_type="argument")
    specs = parse_services(images, commands)
    out = write_starter(specs, Path(output), force=force, name=name, warmup=warmup,
                        seconds=seconds, timeout=timeout, ready_timeout=ready_timeout,
                        progress=lambda m: err_console.print(m, markup=False))
    console.print(f"wrote {out} in {time.monotonic() - t0:.1f} s; read its comments, then "
                  f"`fulldisk list --target {out}`")


@cli.command()
@click.option("--size", default="1MiB", show_default=True, help="size of the tiny volume")
@click.option("--inodes", default=64, show_default=True, type=click.IntRange(16, 100000))
def demo(size: str, inodes: int) -> None:
    """The smallest real check: a container writes into a tiny volume until ENOSPC."""
    from .demo import enospc_demo

    nbytes = parse_size(size, what="--size")
    if nbytes < 4096:
        raise UsageError(f"--size {size!r} is below one 4 KiB page", "use at least 4KiB")
    for line in enospc_demo(nbytes, inodes):
        console.print(line)


@cli.command("parse-size", hidden=True)
@click.argument("size")
def parse_size_cmd(size: str) -> None:
    """Print a size in bytes (checks the size syntax)."""
    console.print(parse_size(size))


def _fail(message: str, code: int) -> NoReturn:
    err_console.print(f"fulldisk: error: {message}", markup=False, highlight=False,
                      soft_wrap=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line for every user error, the exit codes above."""
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    from . import signals

    signals.install()  # SIGINT, SIGTERM, SIGHUP: stop at once, then a cleanup none cuts short
    try:
        _main(argv)
    finally:
        if "harness.engine" in sys.modules:  # this process's lease, if it made one
            from . import engine

            with signals.shielded():
                try:  # kept while anything of the run is left: `clean --stale` needs it
                    engine.release_lease(unless_left=True)
                except Exception:  # an engine gone: the lease expires
                    pass
        if signals.received():  # interrupted and clean: later signals end nothing early
            signals.ignore_further()


def entry() -> NoReturn:
    """The console script: ``main``, then the process ends without the interpreter's
    teardown of its modules (60 ms of a one-second run). Every resource is released and
    every file closed by then; exit handlers still run, and a thread still working (none
    should be) gets the ordinary exit that waits for it."""
    code: int | str | None = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
    if not isinstance(code, int):  # SystemExit("message") prints it and exits 1
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe (`fulldisk list | head`): nothing more can be said
        code = code or 1
    os._exit(code)


def _main(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="fulldisk", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help() if e.ctx else "fulldisk --help")
        sys.exit(2)
    except click.UsageError as e:
        hint = " Hint: `fulldisk --help` lists the commands and options."
        _fail(e.format_message().replace("\n", " ") + hint, 2)
    except click.Abort:
        _fail("interrupted", 130)
    except HarnessError as e:
        _fail(e.one_line().replace("\n", " | "), e.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted; everything this run created was removed", 130)
    except Exception as e:
        lost = _engine_lost(e)  # the engine gone mid-command: one line, exit 3
        if lost is None:
            raise
        _fail(lost.one_line(), lost.exit_code)
    sys.exit(0)
