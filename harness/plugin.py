"""The pytest plugin (``pytest11`` entry point ``fulldisk``): markers, options, fixtures.

Installed is not in use: a session that names no target (``--fulldisk-target``,
``fulldisk.toml``, ``[tool.fulldisk]``) and selects no chaos test reads no target,
contacts no engine and installs no signal handler. With ``-m chaos`` and a target, the
stock battery is collected beside the project's own tests (``harness/collect.py``).

Scopes are deliberate: images once per session, a stack per module, a volume reset per
test. Heavy modules (docker, testcontainers) load lazily, so ``pytest --help`` and
``--collect-only`` stay fast and start nothing.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .errors import HarnessError

if TYPE_CHECKING:
    from .battery import Case, Outcome
    from .fakedisk import FakeDisks
    from .scenario import ScenarioStack
    from .stack import Stack
    from .target import Target

VERDICT_KEY = "fulldisk.verdict"
ERROR_KEY = "fulldisk.error"  # a fulldisk error of a test, with the exit code it means
UNTESTED_KEY = "fulldisk.untested"  # folders a service wrote outside fulldisk's volumes
_report_key: pytest.StashKey[list[dict[str, Any]]] = pytest.StashKey()
_errors_key: pytest.StashKey[list[str]] = pytest.StashKey()
_timelines_key: pytest.StashKey[dict[str, str]] = pytest.StashKey()  # scenario -> JSON
TIMELINES_ATTR = "fulldisk_timelines"  # on call reports: survives xdist, stays out of JUnit
_untested_key: pytest.StashKey[set[tuple[str, str, str]]] = pytest.StashKey()
_state_key: pytest.StashKey[dict[str, Any]] = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options in one group."""
    g = parser.getgroup("fulldisk", "fulldisk full-disk chaos testing")
    g.addoption("--fulldisk-target", default=None, metavar="PATH",
                help="target config (fulldisk.toml or a pyproject with [tool.fulldisk]); "
                     "default: ./fulldisk.toml, else the bundled reference stack")
    g.addoption("--fulldisk-report", default=None, metavar="DIR",
                help="write report.json (verdicts with evidence) into DIR")
    g.addoption("--fulldisk-explore-time", type=float, default=30.0, metavar="SECONDS",
                help="budget of `pytest -m explore` (shrinking included); default 30")
    g.addoption("--fulldisk-explore-seed", type=int, default=None, metavar="N",
                help="seed of `pytest -m explore` (replays a run exactly)")
    g.addoption("--fulldisk-html", default=None, metavar="PATH",
                help="write the HTML report (disk over time, requests, logs, verdicts) here")
    g.addoption("--fulldisk-require-docker", action="store_true", default=False,
                help="fail at start, not skip, when no Docker engine answers (implied by $CI)")
    g.addoption("--fulldisk-battery", action="store_true", default=False,
                help="collect the stock battery (fulldisk::...) even without -m chaos or a "
                     "configured target (then against the bundled reference stack)")


def pytest_configure(config: pytest.Config) -> None:
    """Register markers (cheap: nothing is read or contacted here)."""
    config.addinivalue_line("markers", "chaos: a full-disk chaos scenario (fills real volumes)")
    config.addinivalue_line("markers", "docker: needs a Docker engine")
    config.addinivalue_line("markers", "explore: Hypothesis explores orders of disk-pressure "
                            "events on a live stack (`fulldisk explore`)")
    # Battery cases are grouped for xdist's loadgroup; registered here too, so runs
    # without pytest-xdist installed still pass --strict-markers.
    config.addinivalue_line("markers", "xdist_group(name): run tests of one group together")
    config.stash[_report_key] = []
    config.stash[_errors_key] = []
    config.stash[_timelines_key] = {}
    config.stash[_untested_key] = set()
    config.stash[_state_key] = {"interrupted": None, "error_exit": 0, "tests": 0, "ran": 0}


# --- is the plugin in use? ---------------------------------------------------------------

def configured_target(config: pytest.Config) -> str | None:
    """The target config this session names: ``--fulldisk-target``, else ``fulldisk.toml``
    or a pyproject with ``[tool.fulldisk]`` in the rootdir or the working folder; None
    when it names none (the fixtures then use the bundled reference stack)."""
    opt = config.getoption("--fulldisk-target")
    if opt:
        return str(opt)
    from .target import has_tool_table

    for folder in dict.fromkeys((Path(config.rootpath), Path.cwd())):
        if (folder / "fulldisk.toml").is_file():
            return str(folder / "fulldisk.toml")
        if has_tool_table(folder / "pyproject.toml"):
            return str(folder / "pyproject.toml")
    return None


def chaos_selected(config: pytest.Config) -> bool:
    """Whether ``-m`` selects tests marked ``chaos``."""
    expr = config.getoption("markexpr", "") or ""
    if not expr:
        return False
    try:  # pytest's own matcher, so `-m "chaos and not slow"` reads as pytest reads it
        from _pytest.mark import MarkMatcher
        from _pytest.mark.expression import Expression

        return bool(Expression.compile(expr).evaluate(
            MarkMatcher.from_markers([pytest.mark.chaos.mark, pytest.mark.docker.mark])))
    except Exception:  # a private API moved, or a bad expression (pytest reports that)
        return "chaos" in expr and "not chaos" not in expr


def battery_wanted(config: pytest.Config) -> bool:
    """Collect the stock battery: asked for, or chaos selected with a target configured."""
    return bool(config.getoption("--fulldisk-battery")) or (
        chaos_selected(config) and configured_target(config) is not None)


def in_use(config: pytest.Config) -> bool:
    """Whether this session uses fulldisk (decided once, from its options): chaos selected,
    or a fulldisk option given. A ``fulldisk.toml`` alone does not count: plain ``pytest``
    in a project that has one runs its unit tests without fulldisk reading or starting
    anything (only the selected tests' fixtures and ``docker`` markers may)."""
    if _in_use_key not in config.stash:
        config.stash[_in_use_key] = bool(
            config.getoption("--fulldisk-battery") or config.getoption("--fulldisk-require-docker")
            or config.getoption("--fulldisk-target") or chaos_selected(config))
    return config.stash[_in_use_key]


_in_use_key: pytest.StashKey[bool] = pytest.StashKey()


def _install_sigterm(config: pytest.Config) -> None:
    """Turn SIGTERM into KeyboardInterrupt so teardown runs (only in sessions that use us)."""
    if hasattr(config, "workerinput") or signal.getsignal(signal.SIGTERM) not in (
            signal.SIG_DFL, None):
        return
    from . import signals

    signals.install()  # also SIGHUP; a second signal cannot cut the teardown short


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Remember the config for report collection; a session that uses fulldisk (by its
    options) gets the SIGTERM handler."""
    _CONFIG[:] = [session.config]
    if in_use(session.config) and not session.config.option.collectonly:
        _install_sigterm(session.config)


def _target(config: pytest.Config) -> Target:
    from .target import load_target

    return load_target(configured_target(config))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    """Add the ``fulldisk`` battery collector to the session's top level when wanted."""
    rep = yield
    if isinstance(collector, pytest.Session) and rep.passed and battery_wanted(collector.config):
        from .collect import Battery

        rep.result.append(Battery.for_session(collector, lambda: _target(collector.config)))
    return rep


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Name the target (and the engine, when one answers) in the session header."""
    from .errors import HarnessError

    if not in_use(config):
        return []
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


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: only selected tests count
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip docker tests when no engine answers, unless CI demands one: then fail at once.
    Only a session that selected docker tests, or uses fulldisk by its options, asks the
    engine (and reaps what killed runs left)."""
    if config.option.collectonly or not (
            any(i.get_closest_marker("docker") for i in items) or in_use(config)):
        return
    _install_sigterm(config)
    from .errors import HarnessError

    try:
        from . import engine

        engine.require()
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Carry the timelines a test recorded on its call report (for the HTML report). A
    fulldisk error in a chaos test is one line (never a traceback), recorded with the
    exit code it means, and stops the session: it would repeat for every test."""
    report: pytest.TestReport = yield
    recorded = item.stash.get(_timelines_key, None)
    if report.when == "call" and recorded:
        setattr(report, TIMELINES_ATTR, list(recorded.values()))
    if call.excinfo is not None and item.get_closest_marker("chaos"):
        _error_line(item, report, call.excinfo.value)
    return report


def _error_line(item: pytest.Item, report: pytest.TestReport, e: BaseException) -> None:
    from .errors import HarnessError

    if isinstance(e, HarnessError):
        line, code = e.one_line().replace("\n", " | "), e.exit_code
        report.longrepr = line
    elif isinstance(e, (pytest.fail.Exception, pytest.skip.Exception)):
        return  # a verdict's failure (with its evidence) or a skip: not an error
    else:  # a fault fulldisk did not foresee: still one line in the report, exit 3
        first = (str(e).splitlines() or [""])[0][:300]
        line = (f"unexpected {type(e).__name__} in {item.name}: {first} Hint: a fulldisk "
                "bug or an engine fault; `pytest -m chaos` on the same target shows the "
                "traceback")
        code = 3
    report.user_properties.append((ERROR_KEY, json.dumps({"error": line, "exit": code})))
    item.session.shouldfail = f"fulldisk: stopped after an error: {type(e).__name__}"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect verdicts and timelines (also from xdist workers), and what broke a test
    without a verdict, for the JSON and HTML reports."""
    cfg = _CONFIG[0] if _CONFIG else None
    if cfg is None:
        return
    verdicts = [json.loads(str(v)) for k, v in report.user_properties if k == VERDICT_KEY]
    if report.when == "call":
        cfg.stash[_report_key].extend(verdicts)
        for text in getattr(report, TIMELINES_ATTR, None) or []:
            cfg.stash[_timelines_key][json.loads(text).get("scenario", "")] = text
    state = cfg.stash[_state_key]
    if report.when == "teardown":
        state["ran"] += 1
    errors = [json.loads(str(v)) for k, v in report.user_properties if k == ERROR_KEY]
    for k, v in report.user_properties:
        if k == UNTESTED_KEY:
            cfg.stash[_untested_key].update(tuple(x) for x in json.loads(str(v)))
    for err in errors:
        if err["error"] not in cfg.stash[_errors_key]:
            cfg.stash[_errors_key].append(err["error"])
            state["error_exit"] = max(state["error_exit"], int(err["exit"]))
    if report.failed and not verdicts and not errors and report.longrepr is not None:
        crash = getattr(report.longrepr, "reprcrash", None)
        why = str(crash.message) if crash is not None else str(report.longrepr)[-2000:]
        line = f"{report.nodeid} ({report.when}): {why}"
        if line not in cfg.stash[_errors_key]:
            cfg.stash[_errors_key].append(line)


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Remember a Ctrl-C or SIGTERM (not pytest's own stop): the report says interrupted."""
    cfg = _CONFIG[0] if _CONFIG else None
    if cfg is not None and type(excinfo.value) is KeyboardInterrupt:
        cfg.stash[_state_key]["interrupted"] = str(excinfo.value) or "SIGINT"


_CONFIG: list[pytest.Config] = []




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
    if errors and state["error_exit"] and not state["interrupted"]:
        session.exitstatus = state["error_exit"]  # 2 target problem, 3 infrastructure
    out = config.getoption("--fulldisk-report")
    html_out = config.getoption("--fulldisk-html")
    if (out or html_out) and not config.option.collectonly:
        from .report import build, write_json

        try:
            target: Target | None = _target(config)
        except Exception:
            target = None
        report = build(target.name if target else "?", verdicts, errors=errors,
                       interrupted=state["interrupted"],
                       extra={"exitstatus": int(session.exitstatus),
                              "error_exit": state["error_exit"] or None,
                              "tests": state["tests"], "ran": state["ran"],
                              "untested_paths": untested_paths(config)})
        try:
            if out:
                write_json(report, Path(out) / "report.json")
            if html_out:
                from .report_html import render_run, write_html
                from .timeline import Timeline

                timelines = [Timeline.from_dict(json.loads(t))
                             for t in config.stash[_timelines_key].values()]
                write_html(render_run(report, timelines, target, inline_js=False), html_out)
        except HarnessError as e:  # a full report disk: one line, exit 3, no torn file
            sys.stderr.write(f"fulldisk: error: {e.one_line()}\n")
            session.exitstatus = e.exit_code
    if "harness.engine" in sys.modules:  # only when this session talked to Docker
        from . import engine

        try:
            engine.clean(run=engine.run_id())
        except Exception:  # an engine gone: its lease lets --stale reap it
            pass


def untested_paths(config: pytest.Config) -> list[dict[str, str]]:
    """Folders services wrote outside fulldisk's volumes in this session (JSON-ready)."""
    return [{"target": t, "service": s, "path": p}
            for t, s, p in sorted(config.stash.get(_untested_key, None) or ())]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The verdicts, then the writable paths no volume covered."""
    _verdict_summary(terminalreporter, config)
    paths = untested_paths(config)
    if paths:
        from .report import untested_text

        terminalreporter.section("fulldisk: not tested on a small disk")
        for line in untested_text(paths):
            terminalreporter.write_line(line, yellow=True)


def _verdict_summary(terminalreporter: Any, config: pytest.Config) -> None:
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
def fulldisk_make_stack() -> Iterator[Callable[..., Stack]]:
    """Factory: start a Stack for a target (env overrides per service); all torn down at end."""
    from .stack import Stack, ensure_images

    made: list[Stack] = []

    def make(target: Target, *, check_probes: bool = True, **kwargs: Any) -> Stack:
        # Images per target, not per session: a module may override fulldisk_target.
        # check_probes=False skips the pre-flight, for tests whose probes fail on purpose.
        ensure_images(target)
        from .preflight import preflight

        s = Stack(target, **kwargs)
        made.append(s)
        try:
            s.start()
            if check_probes:
                preflight(s)  # every probe passes on the empty disks, or nothing is filled
            return s
        except BaseException:
            s.stop()
            raise

    yield make
    for s in made:
        s.stop()


@pytest.fixture(scope="module")
def fulldisk_module_stack(fulldisk_make_stack: Callable[..., Stack],
                          fulldisk_target: Target) -> Stack:
    """The target's stack, one per test module, each writable path on its own volume."""
    return fulldisk_make_stack(fulldisk_target)


@pytest.fixture(scope="module")
def fulldisk_module_shared_stack(fulldisk_make_stack: Callable[..., Stack],
                                 fulldisk_target: Target) -> Stack:
    """The target with every writable path on one shared volume, as on the real server."""
    return fulldisk_make_stack(fulldisk_target.shared())


@pytest.fixture
def fulldisk_stack(fulldisk_module_stack: Stack, request: pytest.FixtureRequest,
                   fulldisk_record_outcome: Callable[..., None]) -> ScenarioStack:
    """A scenario script's handle on the target's stack, reset to its seed: ``full``,
    ``probe``, ``downloads``, ``log_flood``, ``session_flood``, ``wait_recovered``, ``judge``."""
    from .scenario import ScenarioStack

    fulldisk_module_stack.reset()
    return ScenarioStack(fulldisk_module_stack, request.node.name,
                         record=fulldisk_record_outcome)


@pytest.fixture
def fulldisk_shared_stack(fulldisk_module_shared_stack: Stack, request: pytest.FixtureRequest,
                          fulldisk_record_outcome: Callable[..., None]) -> ScenarioStack:
    """Like ``fulldisk_stack``, with every writable path on one shared disk (volume
    ``shared``), as on the real server."""
    from .scenario import ScenarioStack

    fulldisk_module_shared_stack.reset()
    return ScenarioStack(fulldisk_module_shared_stack, request.node.name,
                         record=fulldisk_record_outcome)


@pytest.fixture
def fulldisk_fs() -> Iterator[FakeDisks]:
    """In-process full disks (pyfakefs, no Docker): ``fulldisk_fs.disk(path, size="64KiB")``."""
    from .fakedisk import FakeDisks

    with FakeDisks() as disks:
        yield disks


@pytest.fixture
def fulldisk_record_outcome(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Attach verdicts (and their evidence) to the test report, JUnit and the JSON report."""
    def record(outcome: Outcome, invariant: str | None = None) -> None:
        from .report import verdict_text

        request.node.stash.setdefault(_timelines_key, {})[outcome.timeline.scenario] = \
            outcome.timeline.to_json()
        for v in outcome.verdicts:
            if invariant is None or v.invariant == invariant:
                d = v.to_dict()
                request.node.user_properties.append((VERDICT_KEY, json.dumps(d)))
                request.node.add_report_section("call", f"fulldisk {v.invariant}",
                                                verdict_text(d))
        if outcome.untested:
            target = request.getfixturevalue("fulldisk_target").name
            request.node.user_properties.append((UNTESTED_KEY, json.dumps(
                [(target, svc, p) for svc, ps in outcome.untested.items() for p in ps])))
    return record


@pytest.fixture
def fulldisk_battery_case(request: pytest.FixtureRequest) -> tuple[Case, str]:
    """This battery item's case and the invariant it judges (``fulldisk::<case>::<inv>``)."""
    from .collect import CASE_KEY

    node: pytest.Item = request.node
    if CASE_KEY not in node.stash:
        pytest.fail("fulldisk_battery_case is only available to the stock battery's items "
                    "(fulldisk::<case>::<invariant>); use fulldisk_outcome_of(case_id) in your own "
                    "tests", pytrace=False)
    return node.stash[CASE_KEY]


@pytest.fixture(scope="session")
def fulldisk_outcome_cache() -> dict[str, Outcome]:
    return {}


@pytest.fixture
def fulldisk_outcome_of(fulldisk_outcome_cache: dict[str, Outcome], fulldisk_target: Target,
               request: pytest.FixtureRequest) -> Callable[[str], Outcome]:
    """Run a battery case by id once (cached for its other invariants); cases that leave
    the app's data behind get a stack of their own, the others share one (never reset)."""
    def run(case_id: str) -> Outcome:
        if case_id not in fulldisk_outcome_cache:
            from .battery import battery_cases, run_case

            by_id = {c.id: c for c in battery_cases(fulldisk_target)}
            if case_id not in by_id:
                # a scenario this target cannot feed (no downloads, cleanup or counters)
                pytest.skip(f"target {fulldisk_target.name!r} cannot feed {case_id!r} "
                            f"(its cases: {', '.join(by_id)})")
            case = by_id[case_id]

            def stack_for(shared: bool) -> Stack:
                s: Stack = request.getfixturevalue("fulldisk_module_shared_stack" if shared
                                                   else "fulldisk_module_stack")
                return s

            # a HarnessError here becomes one line and stops the session (makereport)
            fulldisk_outcome_cache[case_id] = run_case(case, fulldisk_target, stack_for)
        return fulldisk_outcome_cache[case_id]
    return run


@pytest.fixture
def fulldisk_battery_outcome(fulldisk_battery_case: tuple[Case, str],
                    fulldisk_outcome_of: Callable[[str], Outcome]) -> Outcome:
    """The outcome of this test's battery case."""
    return fulldisk_outcome_of(fulldisk_battery_case[0].id)
