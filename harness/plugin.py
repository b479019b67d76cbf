"""The pytest plugin (``pytest11`` entry point ``fulldisk``): markers, options, fixtures.

Scopes are deliberate: images once per session, a stack per module, a volume reset per
test. Heavy modules (docker, testcontainers) load lazily, so ``pytest --help`` and
``--collect-only`` stay fast and start nothing.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .battery import Case, Outcome
    from .fakedisk import FakeDisks
    from .stack import Stack
    from .target import Target

VERDICT_KEY = "fulldisk.verdict"
ERROR_KEY = "fulldisk.error"
_report_key: pytest.StashKey[list[dict[str, Any]]] = pytest.StashKey()
_errors_key: pytest.StashKey[list[str]] = pytest.StashKey()
_state_key: pytest.StashKey[dict[str, Any]] = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options in one group."""
    g = parser.getgroup("fulldisk", "fulldisk full-disk chaos testing")
    g.addoption("--fulldisk-target", default=None, metavar="PATH",
                help="target config (fulldisk.toml or a pyproject with [tool.fulldisk]); "
                     "default: ./fulldisk.toml, else the bundled reference stack")
    g.addoption("--fulldisk-report", default=None, metavar="DIR",
                help="write report.json (verdicts with evidence) into DIR")
    g.addoption("--fulldisk-require-docker", action="store_true", default=False,
                help="fail at start, not skip, when no Docker engine answers (implied by $CI)")


def pytest_configure(config: pytest.Config) -> None:
    """Register markers; turn SIGTERM into KeyboardInterrupt so teardown runs."""
    config.addinivalue_line("markers", "chaos: a full-disk chaos scenario (fills real volumes)")
    config.addinivalue_line("markers", "docker: needs a Docker engine")
    # Battery cases are grouped for xdist's loadgroup; registered here too, so runs
    # without pytest-xdist installed still pass --strict-markers.
    config.addinivalue_line("markers", "xdist_group(name): run tests of one group together")
    config.stash[_report_key] = []
    config.stash[_errors_key] = []
    config.stash[_state_key] = {"interrupted": None, "error_exit": 0, "tests": 0, "ran": 0}
    if not hasattr(config, "workerinput") and signal.getsignal(signal.SIGTERM) in (
            signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, stop_on_sigterm)


def stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM stops the run at once (as Ctrl-C does); a second one during the cleanup
    that follows is ignored, so the cleanup is not cut short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt("SIGTERM")


def _target(config: pytest.Config) -> Target:
    from .target import load_target

    return load_target(config.getoption("--fulldisk-target"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Name the target (and the engine, when one answers) in the session header."""
    from .errors import HarnessError

    try:
        t = _target(config)
        line = f"fulldisk: target {t.name!r} ({t.path})"
    except HarnessError as e:
        return [f"fulldisk: target config error: {e.one_line()}"]
    if config.option.collectonly:
        return [line]
    try:
        from . import engine

        return [line + f", engine {engine.info().version}, run {engine.run_id()}"]
    except HarnessError:
        return [line + ", no Docker engine"]


def _docker_required(config: pytest.Config) -> bool:
    return bool(os.environ.get("CI")) or bool(config.getoption("--fulldisk-require-docker"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip docker tests when no engine answers, unless CI demands one: then fail at once."""
    if config.option.collectonly or not any(i.get_closest_marker("docker") for i in items):
        return
    from .errors import HarnessError

    try:
        from . import engine

        engine.client()
    except HarnessError as e:
        if _docker_required(config):
            pytest.exit(f"fulldisk: {e.one_line()} (Docker is required: CI is set or "
                        "--fulldisk-require-docker was given)", returncode=3)
        skip = pytest.mark.skip(reason=f"no Docker engine: {e.one_line()}")
        for i in items:
            if i.get_closest_marker("docker"):
                i.add_marker(skip)
        return
    if not hasattr(config, "workerinput"):
        try:
            engine.clean(stale_only=True)  # leftovers of runs whose process is gone
        except HarnessError as e:  # reaping others' leftovers must not stop this run
            config.issue_config_time_warning(
                pytest.PytestWarning(f"fulldisk: stale cleanup incomplete: {e.one_line()}"), 2)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Count the tests, so an interrupted report can say how many ran."""
    session.config.stash[_state_key]["tests"] = len(session.items)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A fulldisk error in a chaos test is one line (never a traceback), recorded for the
    report with its exit code, and stops the session: it would repeat for every test."""
    outcome: Any = yield
    rep: pytest.TestReport = outcome.get_result()
    from .errors import HarnessError

    if call.excinfo is None or not item.get_closest_marker("chaos"):
        return
    e = call.excinfo.value
    if isinstance(e, HarnessError):
        line, code = e.one_line().replace("\n", " | "), e.exit_code
        rep.longrepr = line
    elif isinstance(e, (pytest.fail.Exception, pytest.skip.Exception)):
        return  # a verdict's failure (with its evidence) or a skip: not an error
    else:  # a fault fulldisk did not foresee: still one line in the report, exit 3
        first = (str(e).splitlines() or [""])[0][:300]
        line = (f"unexpected {type(e).__name__} in {item.name}: {first} Hint: a fulldisk "
                "bug or an engine fault; `pytest -m chaos` on the same target shows the "
                "traceback")
        code = 3
    rep.user_properties.append((ERROR_KEY, json.dumps({"error": line, "exit": code})))
    item.session.shouldfail = f"fulldisk: stopped after an error: {type(e).__name__}"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect verdicts and errors (also from xdist workers) for the JSON report."""
    cfg = _CONFIG[0] if _CONFIG else None
    if cfg is None:
        return
    if report.when == "teardown":
        cfg.stash[_state_key]["ran"] += 1
    for k, v in report.user_properties:
        if k == VERDICT_KEY and report.when == "call":
            cfg.stash[_report_key].append(json.loads(str(v)))
        if k == ERROR_KEY:
            err = json.loads(str(v))
            state = cfg.stash[_state_key]
            if err["error"] not in cfg.stash[_errors_key]:
                cfg.stash[_errors_key].append(err["error"])
                state["error_exit"] = max(state["error_exit"], int(err["exit"]))


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Remember a Ctrl-C or SIGTERM (not pytest's own stop): the report says interrupted."""
    cfg = _CONFIG[0] if _CONFIG else None
    if cfg is not None and type(excinfo.value) is KeyboardInterrupt:
        cfg.stash[_state_key]["interrupted"] = str(excinfo.value) or "SIGINT"


_CONFIG: list[pytest.Config] = []


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Remember the config for report collection."""
    _CONFIG[:] = [session.config]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the JSON report and remove anything this run left."""
    config = session.config
    if hasattr(config, "workerinput"):
        if "harness.engine" in sys.modules:  # a worker's stacks are gone: end its lease
            from . import engine

            engine.release_lease()
        return
    verdicts = config.stash[_report_key]
    state = config.stash[_state_key]
    errors: list[str] = config.stash.get(_errors_key, [])
    if errors and not state["interrupted"]:
        session.exitstatus = state["error_exit"]  # 2 target problem, 3 infrastructure
    out = config.getoption("--fulldisk-report")
    if out and not config.option.collectonly:
        from .report import build, write_json

        try:
            name = _target(config).name
        except Exception:
            name = "?"
        write_json(build(name, verdicts, errors=errors, interrupted=state["interrupted"],
                         extra={"exitstatus": int(session.exitstatus),
                                "error_exit": state["error_exit"] or None,
                                "tests": state["tests"], "ran": state["ran"]}),
                   Path(out) / "report.json")
    if "harness.engine" in sys.modules:  # only when this session talked to Docker
        from . import engine
        from .errors import HarnessError

        try:
            engine.clean(run=engine.run_id())
        except HarnessError:
            pass


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """One line per failed verdict, under a fulldisk heading."""
    verdicts = config.stash[_report_key]
    if not verdicts:
        return
    from .report import counts, counts_text, status

    tr = terminalreporter
    tr.section("fulldisk verdicts")
    for v in verdicts:
        if status(v) == "fail":
            tr.write_line(f"FAIL {v['scenario']}: {v['invariant']}: {v['summary']}", red=True)
    for v in verdicts:
        if status(v) == "not_judged":
            tr.write_line(f"NOT JUDGED {v['scenario']}: {v['invariant']}: "
                          f"{v.get('reason') or v['summary']}", yellow=True)
    tr.write_line(counts_text(counts(verdicts)))


# --- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def fulldisk_target(pytestconfig: pytest.Config) -> Target:
    """The target under test (``--fulldisk-target``, else the bundled reference stack)."""
    from .errors import HarnessError

    try:
        return _target(pytestconfig)
    except HarnessError as e:
        raise pytest.UsageError(e.one_line()) from None


@pytest.fixture(scope="session")
def fulldisk_images(fulldisk_target: Target) -> list[str]:
    """Build the target's images once per session (Docker's cache makes it cheap)."""
    from .stack import ensure_images

    return ensure_images(fulldisk_target)


@pytest.fixture(scope="session")
def make_stack(fulldisk_images: list[str]) -> Iterator[Callable[..., Stack]]:
    """Factory: start a Stack for a target (env overrides per service); all torn down at end."""
    from .stack import Stack

    made: list[Stack] = []

    def make(target: Target, **kwargs: Any) -> Stack:
        from .preflight import preflight

        s = Stack(target, **kwargs)
        made.append(s)
        try:
            s.start()
            preflight(s)  # every probe passes on the empty disks, or nothing is filled
            return s
        except BaseException:
            s.stop()
            raise

    yield make
    for s in made:
        s.stop()


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack], fulldisk_target: Target) -> Stack:
    """The target's stack, one per test module, each writable path on its own volume."""
    return make_stack(fulldisk_target)


@pytest.fixture(scope="module")
def shared_stack(make_stack: Callable[..., Stack], fulldisk_target: Target) -> Stack:
    """The target with every writable path on one shared volume, as on the real server."""
    return make_stack(fulldisk_target.shared())


@pytest.fixture
def fresh_stack(stack: Stack) -> Stack:
    """The module's stack with every volume reset to its seed (per-test isolation)."""
    stack.reset()
    return stack


@pytest.fixture
def fulldisk_fs() -> Iterator[FakeDisks]:
    """In-process full disks (pyfakefs, no Docker): ``fulldisk_fs.disk(path, size="64KiB")``."""
    from .fakedisk import FakeDisks

    with FakeDisks() as disks:
        yield disks


@pytest.fixture
def record_outcome(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Attach verdicts (and their evidence) to the test report, JUnit and the JSON report."""
    def record(outcome: Outcome, invariant: str | None = None) -> None:
        from .report import verdict_text

        for v in outcome.verdicts:
            if invariant is None or v.invariant == invariant:
                d = v.to_dict()
                request.node.user_properties.append((VERDICT_KEY, json.dumps(d)))
                request.node.add_report_section("call", f"fulldisk {v.invariant}",
                                                verdict_text(d))
    return record


def check(outcome: Outcome, invariant: str) -> None:
    """Fail the test with the verdict's summary and evidence when it failed; skip it, with
    the missing evidence as the reason, when it was not judged (JUnit shows a skip)."""
    from .report import verdict_text

    v = outcome.verdict(invariant)
    if not v.judged:
        pytest.skip(f"{invariant} not judged: {v.reason or v.summary}")
    if not v.passed:
        pytest.fail(verdict_text(v.to_dict()), pytrace=False)


def _feeds(target: Target) -> dict[str, bool]:
    return {
        "no_silent_write_loss": any(p.write for p in target.probes.values()),
        "graceful_refusal": any(p.kind == "http" for p in target.probes.values()),
        "health_truthful": target.health is not None,
        "log_integrity": any(log.kind == "file" for log in target.logs),
        "core_isolation": bool(target.core_probes),
        "cleanup_keeps_up": target.cleanup is not None,
        "counter_accuracy": bool(target.counters) and target.downloads is not None,
    }


def fed_invariants(target: Target) -> list[str]:
    """The invariants a target's config feeds (declares the probes, logs, health... for)."""
    from .invariants import INVARIANTS

    feeds = _feeds(target)
    return [name for name in INVARIANTS if feeds.get(name, True)]


def battery_cases(target: Target) -> list[Case]:
    """The battery's cases for a target."""
    from .battery import cases

    bulk = {n for n, v in target.volumes.items() if v.role == "bulk"}
    # Only the invariants this target can feed: a check that cannot fail is a defect.
    needs = _feeds(target)
    out = cases(list(target.volumes), bulk, downloads=target.downloads is not None,
                cleanup=target.cleanup is not None, counters=bool(target.counters),
                writes=needs["no_silent_write_loss"])
    return [replace(c, invariants=tuple(i for i in c.invariants if needs.get(i, True)))
            for c in out]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``battery_case`` over every (case, invariant) of the target."""
    if "battery_case" not in metafunc.fixturenames:
        return
    from .errors import HarnessError

    try:
        target = _target(metafunc.config)
    except HarnessError as e:
        raise pytest.UsageError(e.one_line()) from None
    params = []
    for case in battery_cases(target):
        if case.incident:
            continue
        for inv in case.invariants:
            params.append(pytest.param((case, inv), id=f"{case.id}-{inv}",
                                       marks=pytest.mark.xdist_group(case.id)))
    metafunc.parametrize("battery_case", params)


@pytest.fixture(scope="session")
def _outcomes() -> dict[str, Outcome]:
    return {}


@pytest.fixture
def outcome_of(_outcomes: dict[str, Outcome], fulldisk_target: Target,
               request: pytest.FixtureRequest) -> Callable[[str], Outcome]:
    """Run a battery case by id once (cached for its other invariants) on a reset stack."""
    def run(case_id: str) -> Outcome:
        if case_id not in _outcomes:
            by_id = {c.id: c for c in battery_cases(fulldisk_target)}
            if case_id not in by_id:
                pytest.fail(f"no battery case {case_id!r} for target {fulldisk_target.name!r};"
                            f" cases: {', '.join(by_id)}", pytrace=False)
            case = by_id[case_id]
            s: Stack = request.getfixturevalue("shared_stack" if case.shared else "stack")
            s.reset()
            _outcomes[case_id] = case.run(s)
        return _outcomes[case_id]
    return run


@pytest.fixture
def battery_outcome(battery_case: tuple[Case, str],
                    outcome_of: Callable[[str], Outcome]) -> Outcome:
    """The outcome of this test's battery case."""
    return outcome_of(battery_case[0].id)
