"""Invariants judged over hand-built timelines: each one passes, fails and abstains.

The failing cases mirror the reference stack's defect switches (docker/README.md); the
passing ones mirror its hardened build, which must raise no false alarm.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import UsageError
from harness.invariants import (
    INVARIANTS,
    FileSourceRule,
    Rules,
    Verdict,
    cleanup_keeps_up,
    core_isolation,
    counter_accuracy,
    errors_surface,
    evaluate,
    graceful_refusal,
    health_truthful,
    log_integrity,
    no_silent_write_loss,
    recovery,
)
from harness.timeline import (
    PHASES,
    CounterSample,
    DiskSample,
    Event,
    HealthSample,
    LoadEvent,
    LogRecord,
    PhaseMark,
    ProbeResult,
    StepResult,
    Timeline,
)

KiB = 1024
APP = "app:stdout+stderr"
APPLOG = "file:applogs/app.log"
ACCESS = "file:weblogs/access.log"
LINE_RX = (r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
           r"\S+: ")
DROP_RX = r"dropped (\d+) log records?"
ENOSPC = "ERROR datahub.sessions: cannot save session: [Errno 28] No space left on device"


# --- builders ------------------------------------------------------------------------------

def step(status: int | None = 200, *, passed: bool | None = None, name: str = "",
         method: str = "GET", target: str = "/", elapsed: float = 0.05,
         error: str | None = None, body: str = "", complete: bool = True,
         write: bool = False, readback: bool = False, timed_out: bool = False) -> StepResult:
    """A step; passes by default when it answered 2xx/3xx whole."""
    if passed is None:
        passed = status is not None and status < 400 and complete and not timed_out
    return StepResult(name=name, method=method, target=target, status=status, passed=passed,
                      elapsed=elapsed, error=error, body_excerpt=body, body_complete=complete,
                      write=write, readback=readback, timed_out=timed_out)


def probe(t: float, name: str, *steps: StepResult, core: bool = False,
          tags: tuple[str, ...] = ()) -> ProbeResult:
    return ProbeResult(t=t, probe=name, kind="http", steps=steps, core=core,
                       write=any(s.write for s in steps), tags=tags)


def login(t: float, *, status: int = 302, next_ok: bool = True,
          next_status: int = 200) -> ProbeResult:
    """The login flow: POST /login (a write), then the next page must be logged in."""
    body = "Logged in as alice" if next_ok else "<a href=/login>Log in</a>"
    return probe(
        t, "login",
        step(status, name="login", method="POST", target="/login", write=True,
             error=None if status < 400 else f"expected [302, 303], got {status}"),
        step(next_status, name="next page", readback=True, passed=next_ok, body=body,
             error=None if next_ok else "expected text 'Logged in as alice' not found"),
        core=True)


def home(t: float, status: int | None = 200, **kw: Any) -> ProbeResult:
    return probe(t, "home", step(status, name="home", **kw), core=True)


def download(t: float, ok: bool = True) -> ProbeResult:
    return probe(t, "download", step(200 if ok else 507, target="/datasets/pluto-1/download"),
                 tags=("download",))


def disk(t: float, volume: str = "sessions", *, used: float = 0.1, full: bool = False,
         total: int = 256 * KiB, inodes: int = 128, inodes_used: float | None = None
         ) -> DiskSample:
    """A sample of ``volume``: ``used`` fraction of bytes, or no free page when ``full``."""
    free = 0 if full else int(total * (1 - used))
    iused = inodes_used if inodes_used is not None else 0.1
    return DiskSample(t=t, volume=volume, bytes_total=total, bytes_free=free,
                      inodes_total=inodes, inodes_free=inodes - int(inodes * iused),
                      as_user="1000")


def log(t: float, text: str, source: str = APP) -> LogRecord:
    return LogRecord(t=t, source=source, text=text)


def rec(t: float, msg: str, level: str = "INFO", logger: str = "datahub") -> str:
    """A whole app.log line as Python logging writes it."""
    sec = int(t)
    return f"2026-11-27 10:00:{sec:02d},{int((t - sec) * 1000):03d} {level} {logger}: {msg}"


def timeline(*events: Event, volume: str = "sessions", facts: dict[str, Any] | None = None,
             phases: tuple[tuple[float, str], ...] = ((0.0, "steady"), (10.0, "fill"),
                                                      (20.0, "act"), (30.0, "free"),
                                                      (40.0, "recover"))) -> Timeline:
    """A timeline with the usual five phases (steady 0, fill 10, act 20, free 30, recover 40)."""
    tl = Timeline(scenario="x", volume=volume, t0=0.0)
    for t, ph in phases:
        tl.add(PhaseMark(t, ph))  # type: ignore[arg-type]
    tl.extend(events)
    tl.facts.update(facts or {})
    return tl


def full_between(a: float, b: float, volume: str = "sessions") -> list[DiskSample]:
    """Samples saying ``volume`` was full from a to b, calm before and after."""
    return [disk(a - 1, volume), disk(a, volume, full=True), disk(b, volume)]


def failed(v: Verdict) -> bool:
    return v.applicable and not v.passed


def ok(v: Verdict) -> bool:
    return v.applicable and v.passed


def na(v: Verdict) -> bool:
    """Not judged: neither passed nor failed, with the missing evidence named."""
    return (v.status == "not_judged" and not v.judged and not v.passed and not v.failed
            and bool(v.reason) and v.summary == f"not judged: {v.reason}")


RULES = Rules()
LOGGING_RULES = Rules(log_volumes=frozenset({"applogs", "weblogs"}))


# --- Verdict, Rules, evaluate ------------------------------------------------------------------

def test_verdict_to_dict_is_json() -> None:
    v = Verdict("recovery", False, "1 probe never green again", ("a", "b"), scenario="s",
                volume="cache")
    d = v.to_dict()
    assert list(d) == ["invariant", "status", "judged", "passed", "applicable", "reason",
                       "summary", "evidence", "scenario", "volume"]
    assert d["evidence"] == ["a", "b"] and d["applicable"] is True
    assert d["status"] == "fail" and d["judged"] is True
    assert Verdict("recovery", True, "nothing to judge", applicable=False).status == "not_judged"
    nj = recovery(timeline(phases=((0.0, "steady"),)), RULES).to_dict()
    assert nj["status"] == "not_judged" and nj["judged"] is False and nj["passed"] is False
    assert nj["reason"] == "the run has no recover phase"
    assert Verdict("recovery", True, "ok").status == "pass"
    assert json.loads(json.dumps(d)) == d


def test_rules_from_reference_target() -> None:
    from harness.target import reference_target

    target = reference_target()
    rules = Rules.from_target(target)
    assert rules.bulk_volumes == {"downloads"}
    assert rules.log_volumes == {"applogs", "weblogs"}
    assert set(rules.file_sources) == {APPLOG, "file:weblogs/error.log", ACCESS}
    assert rules.file_sources[APPLOG].drop_pattern == DROP_RX
    assert rules.file_sources[APPLOG].volume == "applogs"
    assert rules.counters == {"downloads": "download"}
    assert rules.cleanup_volume == "downloads"
    assert rules.cleanup_ceiling == 80 and rules.cleanup_max_full_seconds == 0.5
    assert rules.request_seconds == target.bounds.request_timeout
    # nginx (web) answers for the app behind it; app.log is written by app and cleaner
    assert rules.probe_services["login"] == {"web", "app"}
    assert rules.source_services[APPLOG] == {"app", "cleaner"}
    assert rules.source_services["web:stdout+stderr"] == {"web"}


def test_evaluate_order_names_and_unknown() -> None:
    tl = timeline()
    assert [v.invariant for v in evaluate(tl, RULES)] == list(INVARIANTS)
    assert list(INVARIANTS) == [
        "no_silent_write_loss", "errors_surface", "graceful_refusal", "core_isolation",
        "recovery", "cleanup_keeps_up", "counter_accuracy", "health_truthful", "log_integrity"]
    assert [v.invariant for v in evaluate(tl, RULES, ["recovery"])] == ["recovery"]
    with pytest.raises(UsageError, match="no_such"):
        evaluate(tl, RULES, ["no_such"])


def test_verdict_copies_scenario_and_volume_and_caps_evidence() -> None:
    # 30 silent losses: evidence is capped with a count of the rest
    tl = timeline(*(login(20 + i * 0.1, next_ok=False) for i in range(30)), volume="cache")
    v = no_silent_write_loss(tl, RULES)
    assert failed(v) and v.scenario == "x" and v.volume == "cache"
    assert len(v.evidence) == 20 and v.evidence[-1] == "... and 11 more"


# --- 1. no_silent_write_loss -------------------------------------------------------------------

def test_silent_sessions_login_lost_while_sessions_full() -> None:
    tl = timeline(login(1.0), *full_between(20, 30), login(21.0, next_ok=False),
                  login(22.0), login(41.0))
    v = no_silent_write_loss(tl, RULES)
    assert failed(v)
    assert v.summary.startswith("1 of 4 acknowledged writes")
    assert len(v.evidence) == 1
    line = v.evidence[0]
    assert "t=21.00s login/login: POST /login -> 302" in line
    assert "next page: GET / -> 200" in line and "Log in" in line
    assert "Logged in as alice' not found" in line and "sessions full" in line


def test_hardened_login_refused_with_an_error_is_not_silent() -> None:
    tl = timeline(login(1.0), *full_between(20, 30), login(21.0, status=503, next_ok=False))
    v = no_silent_write_loss(tl, RULES)
    assert ok(v)
    assert v.summary.startswith("judged 1 acknowledged write read back")
    assert "1 refused with an error" in v.summary


def test_readback_that_fails_loudly_is_listed_not_counted() -> None:
    tl = timeline(login(21.0, next_ok=False, next_status=503))
    v = no_silent_write_loss(tl, RULES)
    assert na(v) and "1 whose readback failed loudly" in v.reason
    assert v.evidence and v.evidence[0].startswith("unverified")
    # one write read back fine makes it judged; the loud one stays listed, not counted
    v = no_silent_write_loss(timeline(login(1.0), login(21.0, next_ok=False,
                                                         next_status=503)), RULES)
    assert ok(v) and v.evidence[0].startswith("unverified")


def test_writes_with_no_readback_or_all_refused_are_not_judged() -> None:
    write_only = probe(1.0, "save", step(302, method="POST", target="/save", write=True))
    v = no_silent_write_loss(timeline(write_only), RULES)
    assert na(v) and "1 acknowledged with no readback step" in v.reason
    v = no_silent_write_loss(timeline(*full_between(20, 30),
                                      login(21.0, status=503, next_ok=False)), RULES)
    assert na(v) and "1 refused with an error" in v.reason


def test_readback_answering_401_is_a_loss() -> None:
    tl = timeline(login(21.0, next_ok=False, next_status=401))
    assert failed(no_silent_write_loss(tl, RULES))


def test_no_write_probe_is_not_applicable() -> None:
    v = no_silent_write_loss(timeline(home(1.0), home(21.0, 500, passed=False)), RULES)
    assert na(v) and "no probe with a write step" in v.summary


# --- 2. errors_surface -------------------------------------------------------------------------

def test_hardened_refusal_logged_with_cause() -> None:
    tl = timeline(login(1.0), *full_between(20, 30), login(21.0, status=503, next_ok=False),
                  log(21.1, ENOSPC))
    v = errors_surface(tl, RULES)
    assert ok(v)
    assert v.summary.startswith("judged 1 failed request, 0 fake successes and 1 full-disk "
                                "span") and "(1 log source read)" in v.summary
    assert ok(no_silent_write_loss(tl, RULES))
    # the evidence shows which record counted for the request and which line named the cause
    [rec] = [e for e in v.evidence if e.startswith("recorded: ")]
    assert "login/login: POST /login -> 503" in rec and "[Errno 28]" in rec, rec
    [cause] = [e for e in v.evidence if e.startswith("cause named while sessions was full")]
    assert "t=21.10s" in cause and "No space left on device" in cause, cause


def test_log_blackhole_nothing_names_the_cause() -> None:
    tl = timeline(log(1.0, rec(1.0, "started")), *full_between(20, 30, "applogs"),
                  home(21.0, 500, passed=False), log(25.0, "GET / 200", source="web:stdout"))
    v = errors_surface(tl, LOGGING_RULES)
    assert failed(v)
    assert "1 of 1 failed request left no error record" in v.summary
    assert "no log line naming the disk" in v.summary
    text = "\n".join(v.evidence)
    assert "no error record within 5s: t=21.00s home/home: GET / -> 500" in text
    assert "applogs full" in text and "sources read: app:stdout+stderr, web:stdout" in text
    assert "last: t=25.00s [web:stdout] GET / 200" in text


def test_a_dead_service_is_explained_by_its_crash_record_while_it_stays_down() -> None:
    """Requests into a service that aborted keep failing long after its last words; the
    crash record explains them all. An ordinary failure that late is still unrecorded."""
    from dataclasses import replace
    down = replace(step(None, method="EXEC", target="mariadb -e INSERT", write=True,
                        error="service db not running"), service_down=True)
    crash = [log(21.0, "[FATAL] InnoDB: Error (Out of disk space) in rollback"),
             log(21.1, "mysqld got signal 6 ;")]
    runs = [ProbeResult(t=t, probe="insert", kind="exec", steps=(down,), write=True)
            for t in (21.5, 28.0, 29.5)]
    v = errors_surface(timeline(*full_between(20, 30), *crash, *runs), RULES)
    assert ok(v), v.evidence
    alive = replace(down, service_down=False)
    late = ProbeResult(t=29.5, probe="insert", kind="exec", steps=(alive,), write=True)
    v = errors_surface(timeline(*full_between(20, 30), *crash, late), RULES)
    assert failed(v) and "1 of 1 failed request" in v.summary, v.summary


def test_error_recorded_but_cause_never_named() -> None:
    tl = timeline(*full_between(20, 30), home(21.0, 500, passed=False),
                  log(21.2, "ERROR datahub: internal error"))
    v = errors_surface(tl, RULES)
    assert failed(v)
    assert "left no error record" not in v.summary
    assert "1 of 1 full-disk span had no log line naming the disk" in v.summary


def test_error_record_too_late_or_too_early() -> None:
    late = timeline(home(15.0, 500, passed=False), log(21.0, "ERROR x: boom"))
    early = timeline(home(15.0, 500, passed=False), log(13.5, "ERROR x: boom"))
    just = timeline(home(15.0, 500, passed=False), log(14.5, "ERROR x: boom"))
    assert failed(errors_surface(late, RULES))
    assert failed(errors_surface(early, RULES))
    assert ok(errors_surface(just, RULES))


def test_file_lines_count_from_the_previous_read() -> None:
    # app.log read at 12 and at 40: a line first seen at 40 was written between 12 and 40
    err = rec(21.0, "session save failed: [Errno 28] No space left on device", "ERROR")
    tl = timeline(*applog(rec(1.0, "started"), t=12.0), *full_between(20, 30),
                  home(21.0, 500, passed=False), *applog(err, t=40.0))
    assert ok(errors_surface(tl, RULES))
    # read at 12 already: it was written before 12, long before the failure
    early = timeline(*applog(err, t=12.0), *full_between(20, 30), home(21.0, 500, passed=False),
                     *applog(rec(30.0, "ok"), t=40.0))
    assert failed(errors_surface(early, RULES))
    # a container line carries its own stamp: 40 is too late for a failure at 21
    stamped = timeline(*full_between(20, 30), home(21.0, 500, passed=False), log(40.0, err))
    assert failed(errors_surface(stamped, RULES))


def test_hang_is_judged_from_when_it_ended() -> None:
    tl = timeline(home(15.0, None, elapsed=6.0, timed_out=True),
                  log(25.0, "[error] upstream timed out", source="file:weblogs/error.log"))
    assert ok(errors_surface(tl, RULES))


def test_full_log_volume_must_name_the_cause_even_without_failures() -> None:
    quiet = timeline(*full_between(20, 30, "applogs"), home(21.0))
    assert failed(errors_surface(quiet, LOGGING_RULES))
    named = timeline(*full_between(20, 30, "applogs"), home(21.0),
                     log(22.0, "--- Logging error ---"),
                     log(22.0, "OSError: [Errno 28] No space left on device"))
    assert ok(errors_surface(named, LOGGING_RULES))
    # a full volume that holds no logs, broke nothing and was never named: nothing to judge
    v = errors_surface(quiet, RULES)
    assert na(v) and "1 full-disk span, but in none" in v.reason
    # ...unless a sink named the cause: then the span is judged, and passes
    said = timeline(*full_between(20, 30, "db"), home(21.0),
                    log(21.5, "ERROR db: cannot update counter: database or disk is full"))
    assert ok(errors_surface(said, RULES))


def test_expected_client_error_needs_no_record() -> None:
    tl = timeline(probe(5.0, "missing", step(404, passed=True)))
    assert na(errors_surface(tl, RULES))
    tl = timeline(home(1.0), probe(5.0, "missing", step(503, passed=False)))
    assert failed(errors_surface(tl, RULES))


def test_a_step_that_expects_501_and_gets_it_is_no_failed_request() -> None:
    # an endpoint documented to answer 501: every probe passed, so nothing can fail here,
    # even while a volume is full
    tl = timeline(probe(5.0, "legacy", step(501, passed=True)), *full_between(20, 30),
                  probe(21.0, "legacy", step(501, passed=True)))
    v = errors_surface(tl, RULES)
    assert not failed(v), v.summary
    # the same answer where the step expected 200 is a failed request that needs a record
    tl = timeline(home(1.0), probe(5.0, "legacy", step(501, passed=False)))
    assert failed(errors_surface(tl, RULES))


def test_errors_surface_readback_failures_are_not_failed_requests() -> None:
    # a loud readback failure is not itself a failed request needing a record
    tl = timeline(login(1.0), login(5.0, next_ok=False, next_status=503))
    assert na(errors_surface(tl, RULES))


def test_fake_success_needs_an_error_record_from_the_service_that_answered() -> None:
    lost = login(21.0, next_ok=False, next_status=200)  # 302, then logged out: a fake success
    v = errors_surface(timeline(login(1.0), *full_between(20, 30), lost), RULES)
    assert failed(v) and "1 of 1 fake success (acknowledged, then lost) left no error " \
        "record" in v.summary
    assert any(e.startswith("fake success, no error record within 5s: t=21.00s login/login")
               for e in v.evidence)
    rules = Rules(probe_services={"login": frozenset({"web", "app"})},
                  source_services={APP: frozenset({"app"}),
                                   "cleaner:stdout+stderr": frozenset({"cleaner"})})
    said = log(21.2, ENOSPC)
    assert ok(errors_surface(timeline(login(1.0), *full_between(20, 30), lost, said), rules))
    # the same record from a service that did not answer does not count
    other = log(21.2, ENOSPC, source="cleaner:stdout+stderr")
    v = errors_surface(timeline(login(1.0), *full_between(20, 30), lost, other), rules)
    assert failed(v) and "from app, web" in "\n".join(v.evidence)
    # an error record of some other request in the window says nothing about this one
    busy = log(21.5, 'ERROR datahub.error: GET /health 503: sessions full')
    v = errors_surface(timeline(login(1.0), *full_between(20, 30), lost, busy), rules)
    assert failed(v) and "fake success" in v.summary
    # one that names the request does
    named = log(21.5, "ERROR datahub: POST /login: session not saved")
    v = errors_surface(timeline(login(1.0), *full_between(20, 30), lost, named), rules)
    assert "fake success" not in v.summary  # (the span still lacks a cause: that fails)
    assert "1 of 1 full-disk span had no log line naming the disk" in v.summary


def test_app_errors_while_full_judge_the_span_even_without_a_failed_request() -> None:
    """A cache that cannot store an entry serves every page and logs an error with no cause
    (Apache's AH00731): the app met the full disk, so the span is judged, and it fails
    until some sink names the cause; with no error record at all nothing is judged."""
    store = log(22.0, "[Mon Dec 07 22:01:02 2026] [cache_disk:error] [pid 7] AH00731: "
                      "Error when writing cache file for URL /page")
    quiet = timeline(*full_between(20, 30), home(21.0))
    assert na(errors_surface(quiet, RULES))
    blind = timeline(*full_between(20, 30), home(21.0), store)
    v = errors_surface(blind, RULES)
    assert failed(v) and "1 of 1 full-disk span had no log line naming the disk" in v.summary
    assert any("AH00731" in e for e in v.evidence)
    named = timeline(*full_between(20, 30), home(21.0), store,
                     log(22.1, "[cache_disk:error] (28)No space left on device: AH00731"))
    assert ok(errors_surface(named, RULES))


def test_errors_surface_not_applicable_when_nothing_failed() -> None:
    v = errors_surface(timeline(home(1.0), login(2.0)), RULES)
    assert na(v) and "no request failed" in v.summary


# --- 3. graceful_refusal -----------------------------------------------------------------------

def test_fast_503_while_full_is_graceful() -> None:
    tl = timeline(*full_between(20, 30), login(21.0, status=503, next_ok=False), home(22.0))
    v = graceful_refusal(tl, RULES)
    assert ok(v) and "2 requests" in v.summary  # the readback step is not judged


@pytest.mark.parametrize(("bad", "kind"), [
    (step(200, passed=False, body="", error="expected text 'earthquakes'"),
     "success status with a broken page"),
    (step(200, complete=False, error="body cut at 1024 of 4096 bytes"),
     "success status with a cut body"),
    (step(None, error="connection reset by peer"), "no answer (connection reset)"),
    (step(None, elapsed=5.0, timed_out=True, error="read timed out"), "hang"),
    (step(503, elapsed=7.5), "hang"),
    (step(404), "client error 404 instead of a server error"),
    (step(502, complete=False), "error with a cut body"),
])
def test_ungraceful_answers_while_full(bad: StepResult, kind: str) -> None:
    tl = timeline(*full_between(20, 30, "cache"), probe(21.0, "dataset", bad))
    v = graceful_refusal(tl, RULES)
    assert failed(v)
    assert v.summary.endswith(f"1 {kind}")
    assert v.evidence[0].startswith(f"{kind}: t=21.00s dataset: GET /")
    assert "[cache full]" in v.evidence[0]


def test_graceful_refusal_ignores_requests_when_nothing_is_full() -> None:
    tl = timeline(disk(1.0), probe(12.0, "dataset", step(200, passed=False)))
    v = graceful_refusal(tl, RULES)
    assert na(v) and "no volume was full" in v.reason
    tl = timeline(*full_between(20, 30), probe(35.0, "dataset", step(200, passed=False)))
    v = graceful_refusal(tl, RULES)
    assert na(v) and v.reason == "no request ran while a volume was full"


def test_step_time_decides_whether_a_step_ran_while_full() -> None:
    # the flow starts before the disk fills; its second step runs after
    tl = timeline(disk(19.0), disk(20.5, full=True),
                  probe(20.0, "flow", step(200, elapsed=1.0), step(200, passed=False)))
    v = graceful_refusal(tl, RULES)
    assert failed(v) and "t=21.00s" in v.evidence[0]


def exec_run(t: float, *steps: StepResult) -> ProbeResult:
    return ProbeResult(t=t, probe="set", kind="exec", steps=steps, write=True)


def test_exec_writes_while_full_are_judged_like_requests() -> None:
    """A timeout is a hang, a fast non-zero exit a clean refusal, an acknowledged exec write
    that does not read back a fake success."""
    refused = step(1, passed=False, method="EXEC", target="mysql -e INSERT", write=True)
    tl = timeline(*full_between(20, 30), exec_run(21.0, refused))
    assert ok(graceful_refusal(tl, RULES))
    hung = step(None, method="EXEC", target="mysql -e INSERT", write=True, elapsed=5.5,
                timed_out=True, error="no exit within 5 s (killed)")
    v = graceful_refusal(timeline(*full_between(20, 30), exec_run(21.0, hung)), RULES)
    assert failed(v) and v.summary.endswith("1 hang")
    acked = step(0, method="EXEC", target="redis-cli SET k v", write=True)
    gone = step(0, passed=False, method="EXEC", target="redis-cli GET k", readback=True)
    v = graceful_refusal(timeline(*full_between(20, 30), exec_run(21.0, acked, gone)), RULES)
    assert failed(v) and "fake success" in v.summary


def test_exec_write_probes_feed_graceful_refusal() -> None:
    from harness.battery import fed_invariants
    from harness.target import target_from_dict

    def target(**probe: Any) -> Any:
        return target_from_dict({
            "name": "kv", "services": {"db": {"image": "i"}},
            "volumes": {"v": {"size": "1MiB", "mounts": [{"service": "db", "path": "/d"}]}},
            "probes": {"p": {"kind": "exec", "service": "db", "command": ["true"], **probe}}},
            file="<kv>")
    assert "graceful_refusal" in fed_invariants(target(write=True))
    assert "graceful_refusal" not in fed_invariants(target())  # reads only: nothing to refuse


# --- 4. core_isolation -------------------------------------------------------------------------

def downloads_fill(t: float, n: int = 5) -> list[LoadEvent]:
    return [LoadEvent(t + i * 0.1, "download", "downloads", 128 * KiB) for i in range(n)]


def test_unbounded_downloads_break_login() -> None:
    tl = timeline(login(1.0), home(1.5), *downloads_fill(10.0),
                  disk(12.0, "sessions", full=True),
                  login(21.0, status=500, next_ok=False), home(21.5), login(22.0))
    v = core_isolation(tl, RULES)
    assert failed(v)
    assert v.summary == ("1 of 3 core probe runs failed while bulk data filled the disk "
                         "(login)")
    assert v.evidence[0] == "loads: download: 5x, 640 KiB"
    assert "login/login: POST /login -> 500" in v.evidence[1]
    assert "[sessions full]" in v.evidence[1]


def test_core_flows_survive_downloads() -> None:
    tl = timeline(login(1.0), home(1.5), *downloads_fill(10.0),
                  disk(12.0, "downloads", full=True),
                  login(21.0), home(22.0), probe(23.0, "dataset", step(503)))
    v = core_isolation(tl, RULES)
    assert ok(v) and v.summary.startswith("judged 2 core probe runs")


def test_core_failures_outside_fill_and_act_do_not_count() -> None:
    tl = timeline(login(1.0), *downloads_fill(10.0), login(5.0, status=500), login(21.0),
                  login(31.0, status=500))
    assert ok(core_isolation(tl, RULES))


def test_ballast_on_bulk_volume_applies_on_other_volume_does_not() -> None:
    broken = (login(1.0), login(21.0, status=500, next_ok=False))
    bulk = timeline(LoadEvent(10.0, "ballast", "downloads", 8 * KiB * KiB), *broken)
    rules = Rules(bulk_volumes=frozenset({"downloads"}))
    assert failed(core_isolation(bulk, rules))
    other = timeline(LoadEvent(10.0, "ballast", "sessions", 256 * KiB), *broken)
    v = core_isolation(other, rules)
    assert na(v) and "not bulk data" in v.summary


def test_core_isolation_without_core_runs_is_not_applicable() -> None:
    tl = timeline(home(1.0), *downloads_fill(10.0), probe(21.0, "dataset", step(500)))
    assert na(core_isolation(tl, RULES))


def test_core_isolation_not_judged_when_core_never_worked() -> None:
    # red in steady already: a failure while full says nothing about the fill
    tl = timeline(login(1.0, status=500, next_ok=False), dataset(1.5), *downloads_fill(10.0),
                  login(21.0, status=500, next_ok=False))
    v = core_isolation(tl, RULES)
    assert na(v) and "no core probe was green in the steady phase (login failed)" in v.reason


# --- 5. recovery -------------------------------------------------------------------------------

def dataset(t: float, good: bool = True) -> ProbeResult:
    if good:
        return probe(t, "dataset", step(200, target="/datasets/earthquakes",
                                        body="<h1>earthquakes</h1>"))
    return probe(t, "dataset", step(200, target="/datasets/earthquakes", passed=False,
                                    body="<h1>earthq", error="expected text 'earthquakes'"))


def test_poisoned_cache_dataset_never_recovers() -> None:
    tl = timeline(dataset(1.0), home(1.5), dataset(21.0, False), dataset(41.0, False),
                  home(41.5), dataset(45.0, False))
    v = recovery(tl, RULES)
    assert failed(v)
    assert v.summary == "1 probe never green again (dataset)"
    assert v.evidence[0].startswith("dataset: never green again in 2 runs; last failure "
                                    "t=45.00s dataset: GET /datasets/earthquakes -> 200")


def test_everything_green_again_in_time() -> None:
    tl = timeline(dataset(1.0), home(1.5), dataset(21.0, False), dataset(41.0), home(41.5),
                  facts={"restarts": {"app": 0, "web": 0}})
    v = recovery(tl, RULES)
    assert ok(v) and "within 10s, with no restart" in v.summary


def test_recovery_fails_on_restart() -> None:
    tl = timeline(dataset(1.0), dataset(41.0), facts={"restarts": {"app": 1, "web": 0}})
    v = recovery(tl, RULES)
    assert failed(v) and "1 service restarted (app)" in v.summary
    assert "restarts: app x1" in v.evidence


def test_recovery_too_slow_or_relapsing_or_missing() -> None:
    slow = timeline(dataset(1.0), dataset(41.0, False), dataset(55.0))
    v = recovery(slow, RULES)
    assert failed(v) and "green only after 10s (dataset)" in v.summary
    relapse = timeline(dataset(1.0), dataset(41.0), dataset(45.0, False))
    v = recovery(relapse, RULES)
    assert failed(v) and "failing again at the end" in v.evidence[0]
    missing = timeline(dataset(1.0), home(1.0), home(41.0))
    v = recovery(missing, RULES)
    assert failed(v) and v.evidence == ("dataset: never ran during recover",)


def test_first_run_in_recover_passing_late_is_not_slow() -> None:
    # the harness only probed 15s after recover began; the first run was already green
    tl = timeline(dataset(1.0), dataset(55.0))
    assert ok(recovery(tl, RULES))


def test_probe_never_green_in_steady_is_not_required_to_recover() -> None:
    tl = timeline(dataset(1.0, False), home(1.0), dataset(41.0, False), home(41.0))
    assert ok(recovery(tl, RULES))


def test_recovery_not_applicable_without_recover_phase() -> None:
    tl = timeline(dataset(1.0), phases=((0.0, "steady"), (10.0, "fill")))
    assert na(recovery(tl, RULES))


# --- 6. cleanup_keeps_up -----------------------------------------------------------------------

CLEANUP = Rules(cleanup_volume="downloads", cleanup_ceiling=80, cleanup_max_full_seconds=0.5)


def cleanup_run(peaks: list[float], *, full_at: float | None = None,
                full_until: float | None = None) -> Timeline:
    events: list[Event] = [*downloads_fill(20.0, 20), download(20.5), download(21.0),
                           download(21.5, ok=False)]
    for i, used in enumerate(peaks):
        events.append(disk(20.0 + i * 0.5, "downloads", used=used, total=8 * KiB * KiB))
    if full_at is not None and full_until is not None:
        events += [disk(full_at, "downloads", full=True, total=8 * KiB * KiB),
                   disk(full_until, "downloads", used=0.3, total=8 * KiB * KiB)]
    return timeline(*events)


def test_lazy_cleanup_peaks_over_ceiling() -> None:
    v = cleanup_keeps_up(cleanup_run([0.3, 0.6, 0.92, 0.5]), CLEANUP)
    assert failed(v)
    assert v.summary == "cleanup did not keep up: usage of downloads peaked at 92% (ceiling 80%)"
    assert v.evidence[0].startswith("peak: t=21.00s disk downloads:")
    assert v.evidence[1] == ("downloads: 3 attempted, 2 served, 1 refused "
                             "(20 download loads)")


def test_cleanup_keeps_up() -> None:
    v = cleanup_keeps_up(cleanup_run([0.3, 0.6, 0.7, 0.5]), CLEANUP)
    assert ok(v) and "peak 70%" in v.summary


def test_cleanup_full_too_long() -> None:
    v = cleanup_keeps_up(cleanup_run([0.3, 0.5], full_at=22.0, full_until=24.0),
                         Rules(cleanup_volume="downloads", cleanup_ceiling=100,
                               cleanup_max_full_seconds=0.5))
    assert failed(v) and "was full for 2.00s (bound 0.5s)" in v.summary
    assert "full t=22.00s-t=24.00s (2.00s)" in v.evidence


def test_cleanup_full_time_is_clipped_to_act() -> None:
    # full from 29 to 35; act ends at 30 (free starts): only 1s counts
    v = cleanup_keeps_up(cleanup_run([0.3], full_at=29.0, full_until=35.0),
                         Rules(cleanup_volume="downloads", cleanup_ceiling=100,
                               cleanup_max_full_seconds=1.5))
    assert ok(v) and "full 1.00s" in v.summary


def test_cleanup_not_judged_when_every_download_was_refused() -> None:
    refused = timeline(*downloads_fill(20.0, 3), download(20.5, ok=False),
                       download(21.0, ok=False), disk(21.2, "downloads", used=0.1,
                                                      total=8 * KiB * KiB))
    v = cleanup_keeps_up(refused, CLEANUP)
    assert na(v) and "no download was served during the act phase (2 attempted" in v.reason


def test_cleanup_not_applicable() -> None:
    assert na(cleanup_keeps_up(cleanup_run([0.9]), RULES))  # no cleanup declared
    no_downloads = timeline(disk(21.0, "downloads", used=0.95))
    assert na(cleanup_keeps_up(no_downloads, CLEANUP))
    no_act_samples = timeline(*downloads_fill(20.0), disk(5.0, "downloads", used=0.95))
    assert na(cleanup_keeps_up(no_act_samples, CLEANUP))


# --- 7. counter_accuracy -----------------------------------------------------------------------

COUNTERS = Rules(counters={"downloads": "download"})


def test_miscounted_downloads() -> None:
    tl = timeline(CounterSample(1.0, "downloads", 10.0),
                  *(download(2.0 + i) for i in range(5)), download(8.0, ok=False),
                  CounterSample(9.0, "downloads", 13.0), download(12.0))
    v = counter_accuracy(tl, COUNTERS)
    assert failed(v)
    assert v.summary == "downloads moved 3 for 5 successful download runs"
    assert v.evidence[0] == ("downloads: 10 at t=1.00s -> 13 at t=9.00s (moved 3); "
                             "5 successful download runs, 1 failed")
    assert v.evidence[1].startswith("  failed: t=8.00s download: GET")


def test_counter_matches_served_downloads() -> None:
    tl = timeline(CounterSample(1.0, "downloads", 10.0), CounterSample(1.5, "downloads", None),
                  *(download(2.0 + i) for i in range(5)), download(8.0, ok=False),
                  CounterSample(9.0, "downloads", 15.0))
    assert ok(counter_accuracy(tl, COUNTERS))


def test_counter_not_applicable_with_one_readable_sample() -> None:
    tl = timeline(CounterSample(1.0, "downloads", 10.0), CounterSample(9.0, "downloads", None),
                  download(2.0))
    assert na(counter_accuracy(tl, COUNTERS))
    assert na(counter_accuracy(timeline(CounterSample(1.0, "downloads", 1.0),
                                        CounterSample(2.0, "downloads", 1.0)), RULES))


# --- 8. health_truthful ------------------------------------------------------------------------

def test_blind_health_ok_while_full() -> None:
    tl = timeline(disk(1.0), HealthSample(1.5, "healthy", "ok"), disk(20.0, full=True),
                  HealthSample(21.0, "healthy", '{"status": "ok"}'))
    v = health_truthful(tl, RULES)
    assert failed(v) and "said healthy 1 time while a volume was full" in v.summary
    assert v.evidence[0].startswith("t=21.00s health said healthy ('{\"status\": \"ok\"}') "
                                    "while full: t=20.00s disk sessions:")
    assert "FULL" in v.evidence[0]


def test_health_truthful_hardened() -> None:
    tl = timeline(disk(1.0), disk(1.0, "cache", used=0.2), HealthSample(1.5, "healthy"),
                  disk(20.0, full=True), HealthSample(21.0, "degraded"),
                  disk(22.0, used=0.7), HealthSample(23.0, "degraded"),  # in between: free
                  disk(24.0, used=0.8), HealthSample(25.0, "healthy"))
    v = health_truthful(tl, RULES)
    assert ok(v) and "1 taken while full" in v.summary


def test_health_false_alarm() -> None:
    tl = timeline(disk(1.0), HealthSample(1.5, "degraded", "degraded"))
    v = health_truthful(tl, RULES)
    assert failed(v) and "1 false alarm" in v.summary
    assert "no health sample was taken while a volume was full" in v.summary
    # degraded at 90% of inodes is no false alarm; but with no sample while full, and none
    # while calm, nothing was judged
    inodes = timeline(disk(1.0, inodes_used=0.9), HealthSample(1.5, "degraded"))
    v = health_truthful(inodes, RULES)
    assert na(v) and "while a volume was full or with every volume under 50% used" in v.reason


def test_health_must_be_seen_full_and_calm() -> None:
    # "failing" forever is truthful while full, but was never seen saying healthy
    always_failing = timeline(disk(20.0, full=True), HealthSample(21.0, "failing"))
    v = health_truthful(always_failing, RULES)
    assert na(v) and v.reason.startswith("no health sample was taken with every volume")
    calm_only = timeline(disk(1.0), HealthSample(1.5, "healthy"))
    v = health_truthful(calm_only, RULES)
    assert na(v) and v.reason.startswith("no health sample was taken while a volume was full")


def test_health_unreachable_or_failing_while_full_is_fine() -> None:
    tl = timeline(disk(1.0), disk(1.0, "cache"), HealthSample(1.5, "healthy"),
                  disk(20.0, "cache", full=True), disk(20.0),
                  HealthSample(21.0, "unreachable"), HealthSample(22.0, "failing"))
    assert ok(health_truthful(tl, RULES))


def test_health_not_applicable() -> None:
    assert na(health_truthful(timeline(disk(1.0)), RULES))
    v = health_truthful(timeline(HealthSample(1.0, "healthy"), disk(2.0, full=True)), RULES)
    assert na(v) and "no health sample had a disk sample" in v.summary


# --- 9. log_integrity --------------------------------------------------------------------------

FILES = Rules(file_sources={
    APPLOG: FileSourceRule("applogs", LINE_RX, DROP_RX),
    ACCESS: FileSourceRule("weblogs"),
})


def applog(*texts: str, t: float = 50.0) -> list[LogRecord]:
    """Lines of app.log as read back at time t (after recover began)."""
    return [log(t, text, APPLOG) for text in texts]


def test_torn_line_glued_to_the_next_record() -> None:
    torn = rec(22.0, "hel") + rec(41.0, "world")
    tl = timeline(*applog(rec(1.0, "started"), torn, rec(42.0, "ok")))
    v = log_integrity(tl, FILES)
    assert failed(v) and v.summary == f"{APPLOG} has 1 torn line"
    assert v.evidence[0] == f"torn in {APPLOG} at t=50.00s: {torn!r}"


def test_torn_fragment_line() -> None:
    tl = timeline(*applog(rec(1.0, "started"), "lo world", rec(42.0, "ok")))
    assert failed(log_integrity(tl, FILES))


def test_whole_lines_and_tracebacks_are_not_torn() -> None:
    lines = [rec(1.0, "started"), rec(21.0, "cannot save session", "ERROR"),
             "Traceback (most recent call last):",
             '  File "/app/datahub/sessions.py", line 40, in save',
             "    fh.write(data)",
             "OSError: [Errno 28] No space left on device",
             "",
             "During handling of the above exception, another exception occurred:",
             "",
             "Traceback (most recent call last):",
             '  File "/app/datahub/app.py", line 9, in login',
             "RuntimeError: session not saved",
             rec(42.0, "ok")]
    v = log_integrity(timeline(*applog(*lines)), FILES)
    assert ok(v), v.evidence


def test_torn_lines_read_while_full_still_count() -> None:
    # a newline-terminated line read during act is still in the file once space is back
    tl = timeline(*applog(rec(1.0, "started"), "lo world", t=25.0))
    v = log_integrity(tl, FILES)
    assert failed(v) and "'lo world'" in v.evidence[0]


def test_loose_line_pattern_does_not_flag_every_line() -> None:
    rules = Rules(file_sources={APPLOG: FileSourceRule("applogs", r"^\S+ \S+ \S+ ")})
    tl = timeline(*applog(*(f"2026-11-27 10:00:0{i} INFO many words in line {i} here"
                            for i in range(6))))
    assert ok(log_integrity(tl, rules))


def test_single_glued_line_is_torn() -> None:
    tl = timeline(*applog(rec(22.0, "hel") + rec(41.0, "world")))
    assert failed(log_integrity(tl, FILES))


def test_torn_lines_are_listed_in_file_order() -> None:
    lines = [rec(1.0, "a"), rec(2.0, "b") + rec(3.0, "c"), "fragment", rec(4.0, "d"),
             rec(5.0, "e")]
    v = log_integrity(timeline(*applog(*lines)), FILES)
    assert failed(v) and "2 torn lines" in v.summary
    assert "INFO datahub: b2026" in v.evidence[0] and "'fragment'" in v.evidence[1]


def marks(*spec: tuple[float, str]) -> list[LoadEvent]:
    return [LoadEvent(t, "log_mark", None, detail=m) for t, m in spec]


def gap_run(*extra: str) -> Timeline:
    """Mark m-0 sent in steady and logged; m-1..m-3 sent while applogs was full, lost."""
    sent = marks((1.0, "fdmark-0"), (21.0, "fdmark-1"), (22.0, "fdmark-2"),
                 (23.0, "fdmark-3"), (41.0, "fdmark-4"))
    lines = [rec(1.0, "GET /fdmark-0 200"), *extra, rec(41.0, "GET /fdmark-4 200")]
    return timeline(*sent, *full_between(20, 30, "applogs"), *applog(*lines))


def test_silent_gap_while_full() -> None:
    v = log_integrity(gap_run(), FILES)
    assert failed(v)
    assert v.summary == f"{APPLOG} silently lost 3 of 3 records sent while full"
    assert v.evidence[0] == (f"missing from {APPLOG}: mark 'fdmark-1' sent at t=21.00s "
                             "[applogs full]")


def test_drop_announcement_covers_missing_marks() -> None:
    v = log_integrity(gap_run(rec(31.0, "dropped 3 log records while the disk was full",
                                  "WARNING")), FILES)
    assert ok(v), v.summary
    assert "3 missing marks announced as dropped" in v.summary
    assert any(e.startswith(f"drop of {APPLOG} announced") for e in v.evidence)


def test_drop_announcement_too_small() -> None:
    v = log_integrity(gap_run(rec(31.0, "dropped 2 log records", "WARNING")), FILES)
    assert failed(v) and "lost 3 records but announced only 2 dropped" in v.summary


def test_drop_announcement_without_count_covers_any_gap() -> None:
    rules = Rules(file_sources={APPLOG: FileSourceRule("applogs", LINE_RX,
                                                       r"log records were dropped")})
    assert ok(log_integrity(gap_run(rec(31.0, "log records were dropped")), rules))


def test_marks_written_later_from_the_buffer() -> None:
    late = [rec(31.0, f"GET /fdmark-{i} 200") for i in (3, 1, 2)]  # out of order is fine
    assert ok(log_integrity(gap_run(*late), FILES))


def test_marker_that_prefixes_another_is_not_found_inside_it() -> None:
    sent = marks((1.0, "fdmark-0"), (21.0, "fdmark-1"), (22.0, "fdmark-10"))
    tl = timeline(*sent, *full_between(20, 30, "applogs"),
                  *applog(rec(1.0, "GET /fdmark-0 200"), rec(31.0, "GET /fdmark-10 200")))
    v = log_integrity(tl, FILES)
    assert failed(v) and "silently lost 1 of 2 records" in v.summary
    assert "'fdmark-1'" in v.evidence[0]


def test_source_that_does_not_log_requests_is_not_judged_for_gaps() -> None:
    sent = marks((1.0, "fdmark-0"), (21.0, "fdmark-1"))
    tl = timeline(*sent, *full_between(20, 30, "applogs"),
                  *applog(rec(1.0, "started"), rec(41.0, "still here")),
                  log(50.0, "127.0.0.1 - - GET /fdmark-0", ACCESS))
    v = log_integrity(tl, FILES)
    assert failed(v)  # access.log logged fdmark-0 in steady and lost fdmark-1
    assert v.summary == f"{ACCESS} silently lost 1 of 1 record sent while full"


def test_log_it_could_not_check_is_not_judged() -> None:
    # access.log: no line pattern, and no mark was sent while anything was full
    rules = Rules(file_sources={ACCESS: FileSourceRule("weblogs", None, None)})
    tl = timeline(*marks((1.0, "fdmark-0"), (41.0, "fdmark-1")),
                  log(50.0, "127.0.0.1 - - GET /fdmark-0", ACCESS),
                  log(50.0, "127.0.0.1 - - GET /fdmark-1", ACCESS))
    v = log_integrity(tl, rules)
    assert na(v)
    assert v.reason == (f"no log file read back could be checked: {ACCESS} (no line_pattern; "
                        "no mark was sent while a volume was full)")
    # a checked file beside an unchecked one: judged, and the unchecked one is named
    both = timeline(*applog(rec(1.0, "started")), log(50.0, "GET /", ACCESS))
    v = log_integrity(both, Rules(file_sources={**FILES.file_sources,
                                                ACCESS: FileSourceRule("weblogs")}))
    assert ok(v) and v.summary.startswith("judged 1 line for torn records")
    assert f"not checked: {ACCESS} (no line_pattern; it logged none of the steady marks)" \
        in v.evidence
    assert f"judged: {APPLOG} (torn lines)" in v.evidence, v.evidence
    # a declared file never read back is named too, with why
    err = "file:weblogs/error.log"
    v = log_integrity(both, Rules(file_sources={**FILES.file_sources,
                                                err: FileSourceRule("weblogs")}))
    assert any(e.startswith(f"not checked: {err} (declared, but no line of it was read back")
               for e in v.evidence), v.evidence


def test_log_integrity_not_applicable_without_file_records() -> None:
    tl = timeline(log(1.0, "INFO hello"), *marks((1.0, "fdmark-0")))
    v = log_integrity(tl, FILES)
    assert na(v) and "no declared log file was read back" in v.summary


# --- whole battery: hardened run passes everything ---------------------------------------------

def test_hardened_run_passes_every_invariant() -> None:
    rules = Rules(log_volumes=frozenset({"applogs"}),
                  file_sources={APPLOG: FileSourceRule("applogs", LINE_RX, DROP_RX)},
                  counters={"downloads": "download"})
    tl = timeline(
        disk(0.5), disk(0.5, "applogs"), HealthSample(0.8, "healthy"),
        CounterSample(0.9, "downloads", 0.0), login(1.0), home(1.5), download(2.0),
        *marks((2.5, "fdmark-0")),
        LoadEvent(10.0, "ballast", "sessions", 200 * KiB), disk(11.0, full=True),
        HealthSample(12.0, "degraded"),
        login(21.0, status=503, next_ok=False), log(21.1, ENOSPC), home(21.5),
        download(22.0), CounterSample(23.0, "downloads", 2.0),
        LoadEvent(30.0, "drain", "sessions"), disk(31.0),
        login(41.0), home(41.5), download(41.8), HealthSample(42.0, "healthy"),
        *applog(rec(1.0, "GET /fdmark-0 200"), rec(21.1, "session save failed", "ERROR")),
        facts={"restarts": {"app": 0}})
    verdicts = evaluate(tl, rules)
    by_status = {v.invariant: v.status for v in verdicts}
    assert by_status == {
        "no_silent_write_loss": "pass", "errors_surface": "pass", "graceful_refusal": "pass",
        "core_isolation": "not_judged", "recovery": "pass", "cleanup_keeps_up": "not_judged",
        "counter_accuracy": "pass", "health_truthful": "pass", "log_integrity": "pass"}, \
        [v.to_dict() for v in verdicts if not v.passed]
    # every pass states its evidence
    assert all(v.summary.startswith("judged ") for v in verdicts if v.passed)


# --- properties --------------------------------------------------------------------------------

VOLUMES = ("sessions", "cache", "downloads", "applogs")
PROBES = ("login", "home", "dataset", "download")
MARKERS = ("fdmark-a", "fdmark-b", "fdmark-c")
SOURCES = (APP, APPLOG, ACCESS, "web:stdout")
times = st.floats(min_value=0.0, max_value=60.0, allow_nan=False)

steps_st = st.builds(
    StepResult, name=st.sampled_from(["", "login", "next page"]),
    method=st.sampled_from(["GET", "POST"]), target=st.sampled_from(["/", "/login"]),
    status=st.one_of(st.none(), st.sampled_from([200, 302, 401, 404, 500, 503, 507])),
    passed=st.booleans(), elapsed=st.floats(min_value=0.0, max_value=10.0),
    error=st.one_of(st.none(), st.text(max_size=30)), body_excerpt=st.text(max_size=30),
    body_complete=st.booleans(), bytes_received=st.integers(0, 10_000),
    write=st.booleans(), readback=st.booleans(), timed_out=st.booleans())


@st.composite
def disk_st(draw: st.DrawFn) -> DiskSample:
    total = draw(st.integers(0, 64 * 4096))
    itotal = draw(st.integers(0, 256))
    return DiskSample(t=draw(times), volume=draw(st.sampled_from(VOLUMES)), bytes_total=total,
                      bytes_free=draw(st.integers(0, total)), inodes_total=itotal,
                      inodes_free=draw(st.integers(0, itotal)),
                      as_user=draw(st.sampled_from(["root", "1000"])))


log_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from([ENOSPC, rec(1.0, "x"), rec(2.0, "hel") + rec(3.0, "lo"),
                     "Traceback (most recent call last):", "  File x", "dropped 2 log records",
                     "GET /fdmark-a 200", "lo world", "ERROR x: y"]))

events_st = st.one_of(
    st.builds(PhaseMark, t=times, phase=st.sampled_from(PHASES)),
    st.builds(ProbeResult, t=times, probe=st.sampled_from(PROBES), kind=st.just("http"),
              steps=st.lists(steps_st, max_size=3).map(tuple), core=st.booleans(),
              write=st.booleans(), tags=st.sampled_from([(), ("download",)])),
    disk_st(),
    st.builds(LogRecord, t=times, source=st.sampled_from(SOURCES), text=log_text,
              volume=st.none()),
    st.builds(LoadEvent, t=times,
              load=st.sampled_from(["ballast", "download", "drain", "log_mark", "cleanup"]),
              volume=st.one_of(st.none(), st.sampled_from(VOLUMES)),
              bytes=st.integers(0, 10**6), detail=st.sampled_from(("", *MARKERS))),
    st.builds(CounterSample, t=times, counter=st.sampled_from(["downloads", "other"]),
              value=st.one_of(st.none(), st.floats(0, 100, allow_nan=False))),
    st.builds(HealthSample, t=times,
              status=st.sampled_from(["healthy", "degraded", "failing", "unreachable"])),
)

FULL_RULES = Rules(
    bulk_volumes=frozenset({"downloads"}), log_volumes=frozenset({"applogs"}),
    file_sources={APPLOG: FileSourceRule("applogs", LINE_RX, DROP_RX),
                  ACCESS: FileSourceRule("weblogs", None, r"lost (\d+)?")},
    counters={"downloads": "download", "missing": "nothing"},
    cleanup_volume="downloads", cleanup_ceiling=80, cleanup_max_full_seconds=0.5)


@settings(max_examples=150)  # the broadest properties: every rule on any events
@given(events=st.lists(events_st, max_size=40),
       restarts=st.one_of(st.none(), st.just("weird"),
                          st.dictionaries(st.sampled_from(["app", "web"]), st.integers(0, 2))))
def test_evaluate_never_raises_and_is_well_formed(events: list[Event], restarts: Any) -> None:
    tl = Timeline(scenario="prop", volume="sessions", t0=0.0)
    tl.extend(events)
    if restarts is not None:
        tl.facts["restarts"] = restarts
    for rules in (FULL_RULES, RULES):
        verdicts = evaluate(tl, rules)
        assert [v.invariant for v in verdicts] == list(INVARIANTS)
        for v in verdicts:
            assert v.status in ("pass", "fail", "not_judged")
            assert v.passed == (v.status == "pass") and v.failed == (v.status == "fail")
            if v.judged:  # a pass or fail says what it judged; only not judged has a reason
                assert not v.reason
                assert not v.passed or v.summary.startswith("judged "), v.summary
            else:
                assert v.reason and v.summary == f"not judged: {v.reason}"
            assert v.summary and len(v.evidence) <= 20
            assert v.scenario == "prop" and v.volume == "sessions"
            json.dumps(v.to_dict())


@given(total=st.integers(0, 4 * KiB * KiB), free=st.integers(0, 4 * KiB * KiB),
       inodes=st.integers(0, 64), ifree=st.integers(0, 64))
def test_a_disk_sample_is_a_usage_with_the_same_full_rule(total: int, free: int, inodes: int,
                                                           ifree: int) -> None:
    from harness.sizes import PAGE
    from harness.timeline import Usage

    u = Usage(total, free, inodes, ifree, "1000")
    d = DiskSample.of(2.5, "sessions", u)
    assert (d.t, d.volume) == (2.5, "sessions")
    assert u == Usage(d.bytes_total, d.bytes_free, d.inodes_total, d.inodes_free, d.as_user)
    assert d.full == u.full == (free < PAGE or ifree == 0)
    assert d.used_fraction == u.used_fraction and str(d) == f"sessions at t=2.50s: {u}"
    assert Timeline.from_dict(Timeline(events=[d]).to_dict()).events == [d]


@given(samples=st.lists(disk_st(), max_size=20), at=st.lists(times, max_size=10))
def test_disk_index_agrees_with_the_latest_sample_by_hand(samples: list[DiskSample],
                                                          at: list[float]) -> None:
    tl = Timeline(t0=0.0)
    tl.extend(samples)
    disks = tl.disk_index()
    for t in at:
        latest: dict[str, DiskSample] = {}
        for d in tl.disk():  # in time order: the last one at or before t wins
            if d.t <= t:
                latest[d.volume] = d
        assert disks.latest(t) == latest
        assert disks.full_at(t) == tl.full_at(t) == any(d.full for d in latest.values())
        for vol in VOLUMES:
            full = vol in latest and latest[vol].full
            assert (vol in disks.full_volumes(t)) == tl.full_at(t, vol) == full


@given(records=st.lists(st.builds(LogRecord, t=times, source=st.sampled_from(SOURCES),
                                  text=st.just("x"), volume=st.none()), max_size=15),
       a=times, width=st.floats(0.0, 20.0))
def test_log_stamps_agree_with_brute_force(records: list[LogRecord], a: float,
                                           width: float) -> None:
    from harness.invariants._evidence import Stamps as _Stamps

    b = a + width
    expected = False
    for r in records:
        if r.source.startswith("file:"):
            earlier = [x.t for x in records if x.source == r.source and x.t < r.t]
            lo = max(earlier) if earlier else float("-inf")
        else:
            lo = r.t
        expected |= lo <= b and r.t >= a
    assert _Stamps(records).any_between(a, b) == expected


@settings(max_examples=50)  # a small input space: a few phases
@given(phases=st.lists(st.tuples(times, st.sampled_from(PHASES)), max_size=5),
       volume=st.one_of(st.none(), st.sampled_from(VOLUMES)))
def test_timeline_without_observations_is_not_applicable(
        phases: list[tuple[float, Any]], volume: str | None) -> None:
    tl = Timeline(scenario="empty", volume=volume, t0=0.0)
    tl.extend(PhaseMark(t, ph) for t, ph in phases)
    for v in evaluate(tl, FULL_RULES):
        assert na(v), v
        assert v.volume == volume


# --- nothing passes on nothing -------------------------------------------------------------------

def _red(e: Event) -> Event:
    """The same event from a target that never works: every step of every probe failed."""
    if isinstance(e, ProbeResult):
        return replace(e, steps=tuple(replace(s, passed=False) for s in e.steps))
    return e


@settings(max_examples=150)  # the broadest properties: every rule on any events
@given(events=st.lists(events_st, max_size=40))
def test_a_target_that_never_works_passes_nothing(events: list[Event]) -> None:
    tl = Timeline(scenario="red", volume="sessions", t0=0.0)
    tl.add(PhaseMark(0.0, "steady"))
    tl.add(home(0.5, 502, passed=False))
    # the steady window [0, 1) holds only the red home run; later marks may add phases
    tl.extend(_red(e) for e in events if not (isinstance(e, PhaseMark) and e.t < 1.0))
    for rules in (FULL_RULES, RULES):
        for v in evaluate(tl, rules):
            assert not v.passed, v
            assert v.status in ("fail", "not_judged")


def test_a_target_red_in_steady_is_not_judged_with_the_reason() -> None:
    tl = timeline(home(1.0, 502, passed=False), login(2.0, status=502, next_ok=False),
                  *full_between(20, 30), home(21.0, 503, passed=False), log(21.1, ENOSPC),
                  HealthSample(21.5, "failing"), home(41.0, 502, passed=False),
                  facts={"restarts": {"app": 0}})
    for v in evaluate(tl, FULL_RULES):
        assert na(v), v
        assert v.reason.startswith("the target never worked: no probe was green in the "
                                   "steady phase (home, login failed)")


def test_recovery_without_a_green_baseline_is_not_judged_unless_a_service_restarted() -> None:
    tl = timeline(dataset(41.0), facts={"restarts": {"app": 0, "web": 0}})
    v = recovery(tl, RULES)
    assert na(v) and "no probe was green in the steady phase (none ran)" in v.reason
    v = recovery(timeline(dataset(41.0), facts={"restarts": {"app": 2}}), RULES)
    assert failed(v) and "1 service restarted (app)" in v.summary


def test_counter_with_no_successful_run_is_not_judged() -> None:
    tl = timeline(CounterSample(11.0, "downloads", 4.0), download(12.0, ok=False),
                  CounterSample(13.0, "downloads", 4.0))
    v = counter_accuracy(tl, COUNTERS)
    assert na(v)
    assert "no successful download run between the readings" in v.evidence[0]


# --- fake success --------------------------------------------------------------------------------

def test_login_302_session_lost_nothing_logged_fails_three_rules() -> None:
    """The Exversion login: 302 as if fine, the next page logged out, no log line anywhere."""
    tl = timeline(login(1.0), log(1.1, rec(1.1, "login ok for alice")),
                  *full_between(20, 30), login(21.0, next_ok=False), home(21.5),
                  log(21.6, rec(21.6, "POST /login 302")), login(41.0))
    for check_ in (no_silent_write_loss, graceful_refusal, errors_surface):
        v = check_(tl, LOGGING_RULES)
        assert failed(v), v
        assert any("t=21.00s login/login: POST /login -> 302" in e for e in v.evidence), v
    g = graceful_refusal(tl, LOGGING_RULES)
    assert "1 fake success (acknowledged, then lost)" in g.summary
    assert g.evidence[0].startswith("fake success (acknowledged, then lost): t=21.00s")
    assert "[sessions full]" in g.evidence[0]


def test_fake_success_fails_graceful_refusal_even_between_disk_samples() -> None:
    # no disk sample said full when the write was lost: the loss itself is the evidence
    tl = timeline(login(1.0), disk(2.0), login(21.0, next_ok=False))
    v = graceful_refusal(tl, RULES)
    assert failed(v) and "[no volume full]" in v.evidence[0]


def exec_probe(t: float, *steps: StepResult) -> ProbeResult:
    return ProbeResult(t=t, probe="sql", kind="exec", steps=steps,
                       write=any(s.write for s in steps))


def ex(code: int | None, *, passed: bool | None = None, write: bool = False,
       readback: bool = False, timed_out: bool = False, out: str = "") -> StepResult:
    return step(code, passed=(code == 0) if passed is None else passed, method="EXEC",
                target="mariadb -e ...", write=write, readback=readback,
                timed_out=timed_out, body=out)


def test_exec_write_exit_0_then_read_back_without_it_is_a_fake_success() -> None:
    ok_run = exec_probe(1.0, ex(0, write=True), ex(0, readback=True, out="nonce-1"))
    lost = exec_probe(21.0, ex(0, write=True), ex(0, passed=False, readback=True, out=""))
    tl = timeline(ok_run, *full_between(20, 30), lost)
    assert failed(no_silent_write_loss(tl, RULES))
    assert failed(graceful_refusal(tl, RULES))
    # a readback that exits non-zero failed loudly: listed, not a loss
    loud = exec_probe(21.0, ex(0, write=True), ex(1, readback=True))
    v = no_silent_write_loss(timeline(ok_run, *full_between(20, 30), loud), RULES)
    assert ok(v) and v.evidence[0].startswith("unverified")
    # exit 1 on the write is a refusal, not an acknowledgement
    refused = exec_probe(21.0, ex(1, write=True), ex(0, passed=False, readback=True))
    v = no_silent_write_loss(timeline(ok_run, *full_between(20, 30), refused), RULES)
    assert ok(v) and "1 refused with an error" in v.summary


@pytest.mark.parametrize("code", [126, 127, 137, -9])
def test_exec_that_could_not_run_is_not_a_clean_refusal(code: int) -> None:
    tl = timeline(exec_probe(1.0, ex(0)), *full_between(20, 30), exec_probe(21.0, ex(code)))
    v = graceful_refusal(tl, RULES)
    assert failed(v) and f"could not run (exit {code})" in v.summary
    # ...and not a failed request of the app that needs an error record
    v = errors_surface(tl, RULES)
    assert "could not run (not judged): t=21.00s sql" in "\n".join(v.evidence)
    assert "failed request" not in v.summary or "0 failed requests" in v.summary


def test_exec_failing_fast_with_its_own_code_is_a_clean_refusal() -> None:
    tl = timeline(exec_probe(1.0, ex(0)), *full_between(20, 30), exec_probe(21.0, ex(1)))
    v = graceful_refusal(tl, RULES)
    assert ok(v) and v.summary.startswith("judged 1 request made while full")
    hang = timeline(exec_probe(1.0, ex(0)), *full_between(20, 30),
                    exec_probe(21.0, ex(None, timed_out=True)))
    assert failed(graceful_refusal(hang, RULES))


def test_a_write_lost_after_recovery_is_a_fake_success_for_all_three_rules() -> None:
    """The harness rereads writes made while full once space is back (``reread_of``):
    a loss found then is a fake success like one found at once."""
    lost_later = probe(21.0, "login", step(302, name="login", method="POST", target="/login",
                                          write=True),
                       step(503, name="next page", readback=True, passed=False))
    again = ProbeResult(t=42.0, probe="login", kind="http", tags=("reread",), reread_of=21.0,
                        steps=(step(200, name="next page", readback=True, passed=False,
                                    body="Log in"),))
    tl = timeline(login(1.0), *full_between(20, 30), lost_later, login(41.0), again)
    v = no_silent_write_loss(tl, RULES)
    assert failed(v) and v.summary.startswith("1 of 3 acknowledged writes")
    assert v.evidence[0].startswith("lost after recovery: t=21.00s login/login: POST /login")
    assert "and after recovery t=42.00s login/next page: GET / -> 200" in v.evidence[0]
    g = graceful_refusal(tl, RULES)
    assert failed(g) and "fake success" in g.summary
    e = errors_surface(tl, RULES)
    assert failed(e) and "1 of 1 fake success" in e.summary
    # a healthy reread changes nothing: the loud first readback stays unverified
    fine = replace(again, steps=(step(200, name="next page", readback=True,
                                      body="Logged in as alice"),))
    tl = timeline(login(1.0), *full_between(20, 30), lost_later, login(41.0), fine)
    v = no_silent_write_loss(tl, RULES)
    assert ok(v) and v.evidence[0].startswith("unverified (readback failed loudly)")
    assert "fake success" not in graceful_refusal(tl, RULES).summary


def test_the_probers_could_not_run_flag_is_read() -> None:
    flagged = replace(step(2, method="EXEC", target="psql"), passed=False, could_not_run=True)
    tl = timeline(probe(1.0, "sql", step(0, method="EXEC")), *full_between(20, 30),
                  probe(21.0, "sql", flagged))
    v = graceful_refusal(tl, RULES)
    assert failed(v) and "could not run (exit 2)" in v.summary


@pytest.mark.parametrize("line", [
    # SQLite through Python's sqlite3 (SQLITE_FULL)
    "sqlite3.OperationalError: database or disk is full",
    # MariaDB's client and server log (error 1114, ER_RECORD_FILE_FULL)
    "ERROR 1114 (HY000) at line 1: The table 'probe' is full",
    "2026-12-07 22:01:13 5 [ERROR] mariadbd: The table 'probe' is full",
    # coreutils on a volume with a quota (EDQUOT)
    "dd: error writing '/data/fill': Disk quota exceeded",
    # Go's os.PathError (Prometheus, InfluxDB): strerror in lower case
    'level=error component=tsdb msg="WAL write failed" err="write /prometheus/wal/00000002: '
    'no space left on device"',
    "2026/12/07 22:01:13 error writing points: write /var/lib/influxdb/wal/_00001.wal: "
    "no space left on device",
])
def test_default_cause_patterns_know_the_wordings_of_real_software(line: str) -> None:
    from harness.invariants._evidence import compile_any
    from harness.target import DEFAULT_CAUSE_PATTERNS

    rx = compile_any(DEFAULT_CAUSE_PATTERNS)
    assert rx is not None and rx.search(line), line
    # and errors_surface takes the line as the cause of a full-disk span
    tl = timeline(home(1.0), *full_between(20, 30), home(21.0, 503, passed=False),
                  log(21.2, line))
    assert ok(errors_surface(tl, RULES)), errors_surface(tl, RULES).summary


def test_an_ordinary_error_is_not_a_cause() -> None:
    from harness.invariants._evidence import compile_any
    from harness.target import DEFAULT_CAUSE_PATTERNS

    rx = compile_any(DEFAULT_CAUSE_PATTERNS)
    assert rx is not None
    for line in ("ERROR 1146 (42S02): Table 'db.t' doesn't exist", "the table is ready",
                 "quota: 12 of 100 used"):
        assert not rx.search(line), line
