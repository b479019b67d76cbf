"""Write pressure on a full disk: the battery keeps writing until the app first refuses,
reports the slack, and judges nothing (never passes) on a volume that never ran out.

The app stores records in a file it preallocated on its (empty) disk, as a write-ahead log
with zero-filled segments does: once the ballast has taken every free page, writes into
that file still succeed until the file is used up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from rich.console import Console

from harness.fakedisk import FakeDisks
from harness.inprocess import InProcessStack, WSGIApp, battery
from harness.invariants import Verdict
from harness.report import build, summary
from harness.target import Target, target_from_dict

WAL = "/var/lib/walstore"
UNTESTED = ("graceful_refusal", "errors_surface", "recovery")


def wal_target(body: str = "16KiB", **bounds: Any) -> Target:
    """One service storing 16 KiB records on a 1 MiB volume, read back by key."""
    return target_from_dict({
        "name": "walstore",
        "services": {"web": {"image": "walstore:dev", "ports": [8000]}},
        "volumes": {"wal": {"size": "1MiB", "inodes": 64, "mounts": [
            {"service": "web", "path": WAL}]}},
        "probes": {"put": {"service": "web", "steps": [
            {"name": "put", "method": "PUT", "path": "/r/{nonce}", "body_size": body,
             "expect_status": [201], "write": True},
            {"name": "get", "path": "/r/{nonce}", "expect_sha256": "{body_sha256}",
             "readback": True}]}},
        "logs": [{"kind": "container", "service": "web"}],
        "bounds": {"error_record_seconds": 1, **bounds},
    }, file="<walstore>")


def wal_app(prealloc: int, *, grow: bool = False) -> WSGIApp:
    """Records go into one file of ``prealloc`` bytes made on first use; a record that
    does not fit in it is refused with 507 and an ENOSPC line on stderr. ``grow``: each
    record is appended instead (taking new pages), refused when the disk is full."""
    index: dict[str, tuple[int, int]] = {}
    path = f"{WAL}/wal.dat"

    def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(b"\0" * prealloc)
            index.clear()
        key = environ["PATH_INFO"].removeprefix("/r/")
        if environ["REQUEST_METHOD"] == "PUT":
            data = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            at = max((o + n for o, n in index.values()), default=0)
            try:
                if not grow and at + len(data) > prealloc:
                    raise OSError(28, "No space left on device")
                with open(path, "r+b" if not grow else "ab") as f:
                    f.seek(at)
                    f.write(data)
            except OSError as e:
                print(f"ERROR cannot store {key}: {e}", file=__import__("sys").stderr)
                start("507 Insufficient Storage", [("Content-Type", "text/plain")])
                return [b"full"]
            index[key] = (at, len(data))
            start("201 Created", [("Content-Type", "text/plain")])
            return [b"stored"]
        if key not in index:
            start("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such record"]
        at, n = index[key]
        with open(path, "rb") as f:
            f.seek(at)
            body = f.read(n)
        start("200 OK", [("Content-Type", "application/octet-stream"),
                         ("Content-Length", str(len(body)))])
        return [body]
    return app


def _verdicts(target: Target, prealloc: int, fs: FakeDisks) -> tuple[list[Verdict], Any]:
    with InProcessStack(target, lambda: wal_app(prealloc), disks=fs) as st:
        [out] = battery(st)
    return out.verdicts, out.timeline


def test_an_app_that_never_runs_out_is_not_judged_and_never_passes(
        fulldisk_fs: FakeDisks) -> None:
    # 640 KiB preallocated, pressure bounded at 256 KiB of fresh content: every write fits
    verdicts, tl = _verdicts(wal_target(pressure_bytes="256KiB"), 640 * 1024, fulldisk_fs)
    by = {v.invariant: v for v in verdicts}
    for name in UNTESTED:
        v = by[name]
        assert v.status == "not_judged" and v.untested == "wal", (name, v.summary)
        assert "wal never ran out" in v.reason and "body_size" in v.reason, v.reason
        assert "acknowledged and read back" in v.reason, v.reason
    f = tl.facts["pressure"]["put"]
    assert not f["refused"] and f["bound"] == "bytes" and f["bytes"] >= 256 * 1024, f
    assert f["accepted"] == 16, f  # 16 runs of 16 KiB reach the 256 KiB bound
    report = build("walstore", [v.to_dict() for v in verdicts])
    assert report["status"] == "not_tested" and not report["passed"]
    assert report["not_tested"] == ["wal"]
    con = Console(record=True, width=200, force_terminal=False)
    summary(report, con)
    head = con.export_text().splitlines()[0]
    assert "NOT TESTED: wal never ran out" in head and "PASSED" not in head, head
    from harness.report_html import render_report

    page = render_report(report, [])  # the headline; no chart needed
    assert "NOT TESTED: wal never ran out" in page and ">PASSED<" not in page


def test_an_app_that_refuses_after_some_slack_is_judged_with_the_slack(
        fulldisk_fs: FakeDisks) -> None:
    # 160 KiB preallocated: ten 16 KiB records fit, the eleventh is refused with a 507
    verdicts, tl = _verdicts(wal_target(), 160 * 1024, fulldisk_fs)
    by = {v.invariant: v for v in verdicts}
    f = tl.facts["pressure"]["put"]
    assert f["refused"] and 1 <= f["accepted"] <= 10, f
    g = by["graceful_refusal"]
    assert g.status == "pass" and g.untested is None, g.summary
    assert any("before the first refusal" in e and "fresh content" in e
               for e in g.evidence), g.evidence
    assert by["errors_surface"].status == "pass", by["errors_surface"].summary
    assert by["recovery"].judged
    assert build("walstore", [v.to_dict() for v in verdicts])["status"] != "not_tested"


def test_a_pressure_bound_below_a_page_is_a_config_error() -> None:
    import pytest

    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="pressure_bytes"):
        wal_target(pressure_bytes="1KiB")
    with pytest.raises(ConfigError, match="pressure_seconds"):
        wal_target(pressure_seconds=0)


def test_the_gate_exit_code_of_a_volume_that_never_ran_out() -> None:
    from harness.cli import NOT_TESTED, _exit_code

    untested = {"invariant": "recovery", "status": "not_judged", "applicable": False,
                "passed": False, "summary": "not judged: wal never ran out", "untested": "wal"}
    passed = {"invariant": "no_silent_write_loss", "status": "pass", "passed": True,
              "summary": "ok"}
    failing = {**passed, "status": "fail", "passed": False}
    assert _exit_code(0, build("t", [passed, untested])) == NOT_TESTED == 4
    assert _exit_code(1, build("t", [failing, untested])) == 1  # a failure says more
    assert _exit_code(0, build("t", [passed])) == 0


def test_a_write_flood_samples_the_disk_at_each_runs_start_and_stops_when_full(
        fulldisk_fs: FakeDisks) -> None:
    """Each write of a flood is judged by the disk at its own start (no sample taken ten
    runs earlier says "not full" about it), and the flood stops once the volume is full."""
    from harness.loads import writes_until_full
    from harness.probes import Prober
    from harness.timeline import DiskSample, ProbeResult, Timeline

    with InProcessStack(wal_target(), lambda: wal_app(0, grow=True), disks=fulldisk_fs) as st:
        tl = Timeline()
        pr = Prober(st, tl)
        st.volume("wal").fill(leave=96 * 1024)  # room for a few 16 KiB records
        full = writes_until_full(pr, "put", ["wal"], 400, deadline=10)
    assert full == ["wal"]
    events = [e for e in tl.events if isinstance(e, ProbeResult | DiskSample)]
    for i, e in enumerate(events):
        if isinstance(e, ProbeResult):
            assert i and isinstance(events[i - 1], DiskSample), events[i - 1]
    assert isinstance(events[-1], DiskSample) and events[-1].full
    assert 1 <= len(tl.probes("put")) <= 8  # the writes filled it; stopped when full


def test_a_write_flood_the_app_refuses_before_a_sample_says_full_has_run_out(
        fulldisk_fs: FakeDisks) -> None:
    """A write of several pages fails while a few pages are still free (lighttpd's PUT
    answers 507 with 12 KiB left): refusals in a row end the flood as a volume that ran
    out, never as one the flood "never filled"."""
    from harness.loads import writes_until_full
    from harness.probes import Prober
    from harness.timeline import LoadEvent, Timeline

    with InProcessStack(wal_target(), lambda: wal_app(32 * 1024), disks=fulldisk_fs) as st:
        tl = Timeline()
        pr = Prober(st, tl)
        full = writes_until_full(pr, "put", ["wal"], 400, deadline=10)
        assert not st.usage()["wal"].full  # the disk itself still has room
    assert full == ["wal"]
    said = [e.detail for e in tl.of(LoadEvent)]
    assert any("refused 3 runs in a row" in d for d in said), said
    assert not any("never filled" in d for d in said)


def test_a_volume_with_no_free_inode_is_full() -> None:
    from harness.invariants import Rules, graceful_refusal
    from harness.timeline import DiskSample, PhaseMark, ProbeResult, StepResult, Timeline

    tl = Timeline(scenario="x", volume="sess", t0=0.0)
    ok = StepResult(name="w", method="POST", target="/login", status=302, passed=True,
                    elapsed=0.01, write=True)
    lost = StepResult(name="r", method="GET", target="/", status=200, passed=False,
                      elapsed=0.01, readback=True, error="expected text not found")
    tl.extend([PhaseMark(0.0, "steady"), ProbeResult(0.5, "login", "http", (ok,), write=True),
               PhaseMark(1.0, "act"),
               # bytes free, but no inode left: no new file can land
               DiskSample(256 * 1024, 64 * 1024, 256, 0, t=1.5, volume="sess"),
               ProbeResult(1.6, "login", "http", (ok, lost), write=True)])
    v = graceful_refusal(tl, Rules())
    assert v.failed and "[sess full]" in "\n".join(v.evidence), v.evidence
