"""Which folders a container wrote (harness.writes), from the engine's diff; and, against
the reference stack, a writable path the target leaves undeclared listed as untested."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.writes import written_folders

ROOT = Path(__file__).resolve().parents[2]
C, A, D = 0, 1, 2


def test_files_added_in_an_image_folder_name_that_folder() -> None:
    changes = [("/var", C), ("/var/lib", C), ("/var/lib/app", C), ("/var/lib/app/sess_1", A),
               ("/var/lib/app/db.sqlite", C)]
    assert written_folders(changes) == ["/var/lib/app"]


def test_folders_the_app_created_fold_into_the_image_folder_above() -> None:
    changes = [("/tmp", C), ("/tmp/nginx-proxy", A), ("/tmp/nginx-proxy/1", A),
               ("/tmp/nginx-proxy/1/00", A), ("/tmp/nginx.pid", A)]
    assert written_folders(changes) == ["/tmp"]


def test_deletions_count_and_nested_folders_fold_into_the_outermost() -> None:
    changes = [("/srv", C), ("/srv/old.txt", D), ("/srv/data", C), ("/srv/data/x", A)]
    assert written_folders(changes) == ["/srv"]


def test_covered_paths_and_engine_files_are_left_out() -> None:
    changes = [("/usr", C), ("/usr/sbin", C), ("/usr/sbin/docker-init", A),
               ("/srv", C), ("/srv/share", A),  # a mount point the engine created
               ("/var/log/app", C), ("/var/log/app/app.log", A), ("/etc/hosts", C)]
    assert written_folders(changes, covered=["/srv/share"]) == ["/var/log/app"]
    assert written_folders(changes, covered=["/srv/share", "/var/log/app"]) == []


def test_nothing_written_is_nothing_listed() -> None:
    assert written_folders([]) == []


@pytest.mark.docker
def test_an_undeclared_writable_path_is_listed_as_not_tested(tmp_path: Path) -> None:
    """The reference target without its sessions volume: the login probe still writes
    session files, now on the container's own disk; the run says so, in the terminal
    summary and in report.json."""
    text = (ROOT / "harness" / "targets" / "datahub.toml").read_text()
    text = re.sub(r'(?m)^build = "datahub"\n', "", text)
    text = re.sub(r"(?s)\[volumes\.sessions\].*?(?=\n\[volumes\.)", "", text)
    assert "volumes.sessions" not in text and "/var/lib/datahub/sessions" not in text
    (tmp_path / "fulldisk.toml").write_text(text)
    p = subprocess.run([sys.executable, "-m", "pytest", "-m", "chaos", "-k", "cache and recovery",
                        "-p", "no:xdist", "-p", "no:cacheprovider", "--fulldisk-report",
                        str(tmp_path / "reports")], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path, env=dict(os.environ))
    assert p.returncode == 0, p.stdout[-3000:]
    assert "not tested on a small disk" in p.stdout
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("datahub/app:"))
    assert "/var/lib/datahub/sessions" in line
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    paths = {(u["service"], u["path"]) for u in report["untested_paths"]}
    assert ("app", "/var/lib/datahub/sessions") in paths
    # the declared writable paths are covered by volumes, so never listed
    assert not any(path.startswith(("/var/cache/datahub", "/var/log/datahub"))
                   for _, path in paths)


# Every kind of write a service makes: a file added in an image folder, a new nested
# folder, a file changed in place, one only chmod-ed, one deleted, a folder removed, a
# symlink, a hard link to an image file, a folder whose mtime alone changed (a temp file
# made and removed), and a file left as it was but copied up by an open for writing.
SCRIPT = """set -e
echo new > /etc/added.conf
mkdir -p /opt/app/cache/deep && echo x > /opt/app/cache/deep/f
echo more >> /etc/debian_version
chmod 600 /etc/issue.net
rm /etc/issue
rm -r /usr/share/doc/tar
ln -s /etc/hostname /var/link
ln /etc/shells /root/shells-link
t=$(mktemp -p /tmp) && rm "$t"
: >> /etc/profile
echo ready
"""


@pytest.mark.docker
def test_reading_the_overlay_layers_gives_the_engines_diff() -> None:
    """``Handle.changes`` walks the container's overlay2 layers itself (the engine's diff
    costs it about a second of CPU): the same (path, kind) set as the engine's own diff."""
    from harness import engine

    spec = engine.ContainerSpec(
        name=f"{engine.run_id()}-overlay-parity", image=engine.BASE_IMAGE,
        command=["sh", "-c", SCRIPT + "exec sleep infinity"], env={}, user="0:0", ports=(),
        network="", aliases=(), binds={}, volumes={}, role="probe", cap_drop=())
    h = engine.start(spec)
    try:
        deadline = time.monotonic() + 10
        while "ready" not in h.logs(timestamps=False):
            assert time.monotonic() < deadline, "the script never finished"
            time.sleep(0.05)  # poll interval of a deadline-bounded wait
        assert h._overlay_dirs() is not None  # this machine reads the layers itself
        ours = h.changes()
        assert sorted(ours) == sorted(engine_diff(h))
        assert ("/etc/issue", 2) in ours and ("/etc/added.conf", 1) in ours
        assert written_folders(ours) == written_folders(engine_diff(h))
    finally:
        h.remove()


def engine_diff(h: object) -> list[tuple[str, int]]:
    """The engine's own diff, through docker-py (the witness)."""
    container = h._container  # type: ignore[attr-defined]
    return [(str(d["Path"]), int(d["Kind"])) for d in container.diff() or []]


@pytest.mark.docker
def test_reading_the_json_log_gives_the_engines_lines() -> None:
    """``Handle.log_lines`` reads the container's json-file log itself, on from where it
    stopped (the engine's API sends the whole log each time, after an inspect): the same
    lines and timestamps as the engine's own ``docker logs --timestamps``, a line over
    16 KiB (written by the engine in pieces) whole, stdout and stderr both."""
    from harness import engine

    script = ("echo one; echo two >&2; printf 'no newline yet'; sleep 0.3; echo ' done'; "
              "head -c 40000 /dev/zero | tr '\\0' x; echo; printf 'a\\r\\nb\\n'; "
              "echo ready; exec sleep infinity")
    spec = engine.ContainerSpec(
        name=f"{engine.run_id()}-jsonlog-parity", image=engine.BASE_IMAGE,
        command=["sh", "-c", script], env={}, user="0:0", ports=(), network="",
        aliases=(), binds={}, volumes={}, role="probe", cap_drop=())
    h = engine.start(spec)
    try:
        first = h.log_lines()  # a read part way: the rest comes on the next reads
        deadline = time.monotonic() + 10
        while "ready" not in h.logs(timestamps=False):
            assert time.monotonic() < deadline, "the script never finished"
            time.sleep(0.05)  # poll interval of a deadline-bounded wait
        assert h._log is not None and h._log.usable  # this machine reads the file itself
        ours = h.log_lines()
        assert ours[:len(first)] == first
        api = [engine.split_timestamp(line)
               for line in h.logs(timestamps=True).splitlines()]
        texts = [text for _, text in ours]
        # stdout and stderr reach the engine through two pipes: either may come first
        assert sorted(texts[:2]) == ["one", "two"] and texts[2] == "no newline yet done"
        assert "x" * 40000 in texts and texts[-3:] == ["a", "b", "ready"]
        # the engine's own lines: the same, but for the long line it sends in pieces
        assert [x for x in ours if len(x[1]) < 16384] == [
            x for x in api if "x" * 100 not in x[1]]
        assert h.log_lines() == ours  # nothing new: nothing added
    finally:
        h.remove()
