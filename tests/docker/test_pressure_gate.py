"""The gate on a server that preallocates: writes into a zero-filled file made at start go
on being acknowledged and read back after the volume reports 0 bytes free. Bounded pressure
that never meets a refusal is NOT TESTED (exit 4 with a one-line hint), never PASSED; the
same server with writes that need new space is judged as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("pressure-gate")]

FULLDISK = [sys.executable, "-c", "from harness.cli import main; main()"]
# A write-ahead log as PostgreSQL keeps one: a 1 MiB segment of zeros made at start.
START = ("head -c 1048576 /dev/zero > /data/wal && echo server ready >&2 && "
         "exec sleep infinity")
# Each write takes the next 16 KiB slot of the segment, in place (conv=notrunc): no new
# page is needed. With GROW=1 the write goes to a file of its own, which needs new pages.
WRITE = ("n=$(cat /tmp/n 2>/dev/null || echo 0); echo $((n+1)) > /tmp/n; "
         "echo {nonce} $n >> /tmp/idx; "
         "if [ -n \"$GROW\" ]; then printf '%s' '{body}' > /data/row-{nonce} "
         "2>>/proc/1/fd/2; else printf '%s' '{body}' | dd of=/data/wal bs=16384 seek=$n "
         "conv=notrunc 2>>/proc/1/fd/2; fi")
READ = ("n=$(grep '^{nonce} ' /tmp/idx | cut -d' ' -f2); if [ -n \"$GROW\" ]; then "
        "cat /data/row-{nonce}; else dd if=/data/wal bs=16384 skip=$n count=1 2>/dev/null; "
        "fi | sha256sum")


def _config(tmp_path: Path, grow: bool) -> Path:
    cfg = tmp_path / "fulldisk.toml"
    env = '{ GROW = "1" }' if grow else "{}"
    cfg.write_text(f'''name = "walserver"
[services.db]
image = "fulldisk/base:bookworm"
command = ["sh", "-c", {json.dumps(START)}]
env = {env}
ready = {{ log = "server ready", timeout = 20 }}

[volumes.data]
size = "2MiB"
inodes = 256
mounts = [{{ service = "db", path = "/data" }}]

[probes.put]
kind = "exec"
service = "db"
core = true
write = true
body_size = "16KiB"
timeout = 5
command = ["sh", "-c", {json.dumps(WRITE)}]
readback = ["sh", "-c", {json.dumps(READ)}]
readback_expect = "{{body_sha256}}"

[[logs]]
kind = "container"
service = "db"

[bounds]
pressure_bytes = "256KiB"
error_record_seconds = 1
''', encoding="utf-8")
    return cfg


def _gate(tmp_path: Path, grow: bool) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    out = tmp_path / ("grow" if grow else "prealloc")
    p = subprocess.run([*FULLDISK, "gate", "--target", str(_config(tmp_path, grow)),
                        "-k", "data", "--report-dir", str(out),
                        "--junit", str(out / "junit.xml")],
                       capture_output=True, text=True, timeout=300, env=os.environ.copy())
    return p, json.loads((out / "report.json").read_text())


def test_a_server_that_never_runs_out_is_not_tested_and_fails_the_gate(tmp_path: Path) -> None:
    p, report = _gate(tmp_path, grow=False)
    out = p.stdout + p.stderr
    assert p.returncode == 4, out[-3000:]
    assert "NOT TESTED: data never ran out" in out and "PASSED" not in out, out[-3000:]
    [hint] = [ln for ln in p.stdout.splitlines() if ln.startswith("gate: data never ran out")]
    assert "Hint:" in hint and "body_size" in hint and "pressure_bytes" in hint, hint
    assert "body_size" in out and "Traceback" not in out
    assert report["status"] == "not_tested" and report["passed"] is False
    verdicts = {v["invariant"]: v for v in report["verdicts"]}  # type: ignore[attr-defined]
    for name in ("graceful_refusal", "errors_surface", "recovery"):
        v = verdicts[name]
        assert v["status"] == "not_judged" and v["untested"] == "data", v
        assert "put accepted 16 writes (256 KiB of fresh content) on a full disk" in v["reason"]


def test_a_server_that_runs_out_is_judged(tmp_path: Path) -> None:
    p, report = _gate(tmp_path, grow=True)
    out = p.stdout + p.stderr
    assert p.returncode in (0, 1), out[-3000:]
    assert report["status"] in ("passed", "failed") and not report["not_tested"]
    verdicts = {v["invariant"]: v for v in report["verdicts"]}  # type: ignore[attr-defined]
    g = verdicts["graceful_refusal"]
    assert g["status"] == "pass", g
    assert any("refused" in e for e in g["evidence"]), g["evidence"]
