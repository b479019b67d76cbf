"""A hand-built, realistic run for report tests: one scenario filling the session disk, with
one request of every outcome the chart colours, log records from three sources (one line
carries the reference target's password, to prove redaction), judged by the real rules."""

from __future__ import annotations

from harness.invariants import Rules, evaluate
from harness.report import build
from harness.timeline import DiskSample, LogRecord, PhaseMark, ProbeResult, StepResult, Timeline

KIB = 1024
SECRET = "wonderland"  # the login password of the reference target (harness/targets)

# outcome -> number of request markers of that outcome in the timeline below
OUTCOME_COUNTS = {"ok": 11, "refused cleanly": 1, "fake success": 1, "cut body": 1, "hang": 1,
                  "other error": 1}
VOLUMES = ("sessions", "applogs")
SOURCES = ("app:stderr", "file:applogs/app.log", "web:stdout")


def _get(path: str, status: int | None = 200, **kw: object) -> StepResult:
    return StepResult(name=str(kw.pop("name", f"GET {path}")), method="GET", target=path,
                      status=status, passed=bool(kw.pop("passed", True)),
                      elapsed=float(kw.pop("elapsed", 0.01)),  # type: ignore[arg-type]
                      **kw)  # type: ignore[arg-type]


def _login(t: float, *, lost: bool) -> ProbeResult:
    write = StepResult(name="login", method="POST", target="/login", status=302, passed=True,
                       elapsed=0.01, write=True, body_excerpt="Redirecting...")
    read = _get("/", passed=not lost, readback=True, name="next page",
                error="body lacks 'Logged in as alice'" if lost else None,
                body_excerpt="<a href=\"/login\">Log in</a>" if lost else "Logged in as alice")
    return ProbeResult(t=t, probe="login", kind="http", steps=(write, read), core=True,
                       write=True)


def _sample(t: float, volume: str, used_kib: int, size_kib: int = 256, inodes_used: int = 3
            ) -> DiskSample:
    return DiskSample(t=t, volume=volume, bytes_total=size_kib * KIB,
                      bytes_free=(size_kib - used_kib) * KIB, inodes_total=128,
                      inodes_free=128 - inodes_used, as_user="1000:1000")


def sample_timeline() -> Timeline:
    """The session disk filled to the last byte, every kind of request, three log sources."""
    tl = Timeline(scenario="battery-sessions", volume="sessions", t0=0.0, wall0=0.0)
    phases = [(0.0, "steady"), (1.0, "fill"), (2.0, "act"), (4.0, "free"), (4.5, "recover")]
    for t, ph in phases:
        tl.add(PhaseMark(t=t, phase=ph, volume="sessions"))  # type: ignore[arg-type]
    used = {0.05: 8, 1.5: 200, 1.95: 256, 3.9: 256, 4.2: 8, 5.5: 8}
    for t, kib in used.items():
        tl.add(_sample(t, "sessions", kib, inodes_used=3 if kib < 100 else 60))
        tl.add(_sample(t + 0.001, "applogs", 12 + int(t), inodes_used=2))
    # steady: all green (5 ok markers)
    tl.add(ProbeResult(t=0.1, probe="home", kind="http", steps=(_get("/"),), core=True))
    tl.add(_login(0.2, lost=False))
    tl.add(ProbeResult(t=0.3, probe="dataset", kind="http", steps=(_get("/datasets/x"),)))
    tl.add(ProbeResult(t=0.4, probe="download", kind="http", steps=(_get("/export/1.csv"),)))
    # act: one of each failure
    tl.add(_login(2.1, lost=True))  # fake success (the write) + other error (the readback)
    tl.add(ProbeResult(t=2.3, probe="dataset", kind="http", steps=(
        _get("/datasets/x", 500, passed=False, error="expected status [200], got 500",
             body_excerpt="Internal Server Error"),)))  # refused cleanly
    tl.add(ProbeResult(t=2.5, probe="download", kind="http", steps=(
        _get("/export/2.csv", 200, passed=False, body_complete=False, bytes_received=4096,
             error="body cut: 4096 of 65536 bytes"),)))  # cut body
    tl.add(ProbeResult(t=2.8, probe="home", kind="http", steps=(
        _get("/", None, passed=False, timed_out=True, elapsed=5.0,
             error="read timed out after 5 s"),), core=True))  # hang
    # recover: green again (6 ok markers)
    tl.add(ProbeResult(t=4.6, probe="home", kind="http", steps=(_get("/"),), core=True))
    tl.add(_login(4.7, lost=False))
    tl.add(ProbeResult(t=4.9, probe="dataset", kind="http", steps=(_get("/datasets/x"),)))
    tl.add(ProbeResult(t=5.0, probe="download", kind="http", steps=(_get("/export/3.csv"),)))
    tl.add(ProbeResult(t=5.2, probe="home", kind="http", steps=(_get("/"),), core=True))
    logs = [
        (0.1, "web:stdout", '127.0.0.1 - - "GET / HTTP/1.1" 200 353'),
        (0.2, "web:stdout", f'127.0.0.1 - - "POST /login?password={SECRET} HTTP/1.1" 302 189'),
        (0.3, "file:applogs/app.log", "2026-11-28 05:51:20 INFO datahub: dataset x rendered"),
        (2.1, "app:stderr", "--- Logging error ---"),
        (2.11, "app:stderr", "OSError: [Errno 28] No space left on device: '/sessions/s1'"),
        (2.3, "app:stderr", "ERROR datahub: render failed <cache full> & gave up"),
        (2.3, "web:stdout", '127.0.0.1 - - "GET /datasets/x HTTP/1.1" 500 21'),
        (2.5, "web:stdout", '127.0.0.1 - - "GET /export/2.csv HTTP/1.1" 200 65536'),
        (4.6, "file:applogs/app.log", "2026-11-28 05:51:25 INFO datahub: space is back"),
        (5.0, "web:stdout", '127.0.0.1 - - "GET /export/3.csv HTTP/1.1" 200 9000'),
    ]
    for t, src, text in logs:
        tl.add(LogRecord(t=t, source=src, text=text,
                         volume="applogs" if src.startswith("file:") else None))
    return tl


def sample_report() -> tuple[dict[str, object], Timeline]:
    """The JSON report of the sample run (real rules, some fail, some not judged)."""
    tl = sample_timeline()
    verdicts = evaluate(tl, Rules(), ["no_silent_write_loss", "graceful_refusal",
                                      "errors_surface", "recovery", "health_truthful"])
    return build("datahub", [v.to_dict() for v in verdicts]), tl
