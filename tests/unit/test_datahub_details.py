"""The reference app's hardened details that no invariant judges, in-process (no Docker):
how a refusal tells the client when to retry, a generation cut by ENOSPC, a truncated
cache entry, /health's degraded state, an unknown defect switch, what the cleaner may
delete. Every switch's symptom is the selftest's (tests/docker/test_selftest.py); these are the
remaining checks of the by-hand script the reference stack once had."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest
import requests

from harness.fakedisk import FakeDisks
from harness.inprocess import InProcessStack
from harness.refapp import APP_DIR, SERVICE, VOLUMES, datahub_app
from harness.target import reference_target

TARGET = reference_target()  # read before pyfakefs hides the real files
KIB = 1024


@contextmanager
def app(disks: FakeDisks, *defects: str) -> Iterator[tuple[InProcessStack, requests.Session,
                                                           str]]:
    """The app in-process on the reference volumes: the stack, a session, the base URL."""
    with InProcessStack(TARGET, lambda: datahub_app(disks, defects), disks=disks,
                        service=SERVICE, volumes=VOLUMES) as stack:
        yield stack, stack.session(), stack.url(SERVICE)


def metric(http: requests.Session, base: str, name: str) -> int:
    """One counter of /metrics."""
    for line in http.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith(f"datahub_{name}_total "):
            return int(line.split()[1])
    raise AssertionError(f"no datahub_{name}_total in /metrics")


def test_a_refused_download_says_why_and_when_to_retry(fulldisk_fs: FakeDisks) -> None:
    with app(fulldisk_fs) as (stack, http, base):
        stack.volume("downloads").fill(leave=1536 * KIB)
        ok = http.get(f"{base}/datasets/pluto-2/download?format=csv&size=65536", timeout=10)
        assert ok.status_code == 200 and len(ok.content) == 65536
        # 512 KiB would leave less than the reserve (15 % of 8 MiB)
        r = http.get(f"{base}/datasets/pluto-3/download?format=csv&size=524288", timeout=10)
        assert r.status_code == 507, r.text
        assert r.headers["Retry-After"] == "30"
        assert "not enough free space" in r.text
        assert (metric(http, base, "downloads_refused"), metric(http, base, "downloads_served")) \
            == (1, 1)
        assert not [n for n in os.listdir("/var/lib/datahub/downloads") if "pluto-3" in n]


def test_a_generation_cut_by_enospc_answers_507_and_leaves_nothing(
        fulldisk_fs: FakeDisks, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAHUB_DOWNLOAD_RESERVE_PCT", "-100")  # the pre-check lets it start
    with app(fulldisk_fs) as (stack, http, base):
        stack.volume("downloads").fill(leave=256 * KIB)
        r = http.get(f"{base}/datasets/pluto-5/download?format=csv&size=524288", timeout=10)
        assert r.status_code == 507, r.text
        assert "No space left on device" in r.text and r.headers["Retry-After"] == "30"
        assert not [n for n in os.listdir("/var/lib/datahub/downloads") if "pluto-5" in n]
        assert metric(http, base, "downloads_served") == 0
        # the partial file was given back: a smaller export still fits
        r = http.get(f"{base}/datasets/pluto-6/download?format=csv&size=65536", timeout=10)
        assert r.status_code == 200 and len(r.content) == 65536


def test_a_truncated_cache_entry_is_a_miss_not_a_page(fulldisk_fs: FakeDisks) -> None:
    with app(fulldisk_fs) as (_stack, http, base):
        url = f"{base}/datasets/staten-island"
        assert http.get(url, timeout=10).headers["X-Datahub-Cache"] == "miss"
        assert http.get(url, timeout=10).headers["X-Datahub-Cache"] == "hit"
        entry = Path("/var/cache/datahub/staten-island.html")
        entry.write_bytes(entry.read_bytes()[:4096])  # cut at a page: the name is after 8 KiB
        r = http.get(url, timeout=10)
        assert r.status_code == 200 and r.headers["X-Datahub-Cache"] == "miss"
        assert "staten-island" in r.text


def test_health_is_degraded_above_its_threshold_and_failing_when_full(
        fulldisk_fs: FakeDisks) -> None:
    with app(fulldisk_fs) as (stack, http, base):
        assert http.get(f"{base}/health", timeout=10).json()["status"] == "ok"
        stack.volume("sessions").fill(percent=85)
        r = http.get(f"{base}/health", timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "degraded"
        assert any(s.startswith("sessions /var/lib/datahub/sessions above 80%")
                   for s in r.json()["reasons"]), r.json()
        stack.volume("sessions").fill(leave=0)
        r = http.get(f"{base}/health", timeout=10)
        assert r.status_code == 503 and r.json()["status"] == "failing"


def test_an_unknown_defect_switch_stops_the_app_with_exit_2(
        fulldisk_fs: FakeDisks, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        datahub_app(fulldisk_fs, ["silent_sessions", "bogus"])
    assert e.value.code == 2
    assert "datahub: unknown defect 'bogus'; known: silent_sessions," in capsys.readouterr().err


def _cleaner() -> ModuleType:
    """A fresh import of the app's cleaner module."""
    for name in [m for m in sys.modules if m == "datahub" or m.startswith("datahub.")]:
        del sys.modules[name]
    sys.path.insert(0, str(APP_DIR))
    try:
        import datahub.cleaner as cleaner
    finally:
        sys.path.remove(str(APP_DIR))
    return cleaner


def test_the_cleaner_deletes_only_old_generated_exports(tmp_path: Path) -> None:
    """The downloads path may share a disk and a folder with sessions, logs and the db."""
    old = time.time() - 3600
    names = {"eq-1000.csv": old, "eq-2000.geojson": time.time(), ".tmp-eq-3000.csv-0a1b": old,
             ".tmp-eq-4000.csv-0a1b": time.time(), "sess_0123": old, "app.log": old,
             "datahub.sqlite": old, "notes-1.txt": old}
    for name, mtime in names.items():
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (mtime, mtime))
    _cleaner().sweep(str(tmp_path), max_age=60, pressure=False)
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["eq-2000.geojson", ".tmp-eq-4000.csv-0a1b", "sess_0123", "app.log", "datahub.sqlite",
         "notes-1.txt"])
