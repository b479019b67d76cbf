"""In-process disks (pyfakefs): sizes, fills, and the behaviours of real full disks.

Each behaviour below is one that tmpfs shows (tests/docker/test_volume.py checks the real one):
allocation in 4 KiB pages, truncate-then-write reusing freed pages, appends, temp file +
os.replace, inodes, and what statvfs says.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.fakedisk import FakeDisks
from harness.sizes import PAGE

SESS = "/var/lib/app/sessions"


def write(path: str, data: str, mode: str = "w") -> None:
    with open(path, mode) as f:
        f.write(data)


def test_a_declared_disk_has_its_size_and_inodes(fulldisk_fs: FakeDisks) -> None:
    d = fulldisk_fs.disk(SESS, size="64KiB", inodes=16)
    u = d.usage()
    assert (u.bytes_total, u.bytes_free, u.inodes_total, u.inodes_free) == (65536, 65536, 16, 15)
    st = os.statvfs(SESS)
    assert (st.f_frsize * st.f_blocks, st.f_frsize * st.f_bavail, st.f_files, st.f_favail) == (
        65536, 65536, 16, 15)
    assert shutil.disk_usage(SESS).total == 65536
    write(f"{SESS}/a", "x" * 10)  # ten bytes take a whole page and an inode
    assert d.usage().bytes_free == 65536 - PAGE
    assert os.statvfs(SESS).f_bavail == 15
    assert shutil.disk_usage(SESS).used == PAGE
    assert d.usage().inodes_free == 14


def test_fill_leaves_exactly_what_was_asked_and_drain_gives_it_back(fulldisk_fs: FakeDisks
                                                                   ) -> None:
    d = fulldisk_fs.disk(SESS, size="64KiB")
    write(f"{SESS}/keep", "k" * 5000)  # two pages
    res = d.fill(leave=PAGE)
    assert res.added_bytes == 65536 - 2 * PAGE - PAGE and d.usage().bytes_free == PAGE
    assert not d.full
    d.fill(leave=0)
    assert d.usage().bytes_free == 0 and d.full
    assert os.listdir(SESS) == ["keep"]  # the fill is invisible to the code under test
    with pytest.raises(OSError) as e:
        write(f"{SESS}/new", "n")
    assert e.value.errno == errno.ENOSPC
    assert d.drain() == 65536 - 2 * PAGE
    write(f"{SESS}/new", "n")
    assert d.fill(percent=50).usage.bytes_free == 32768
    assert d.fill(leave=0).added_bytes == 32768


def test_a_write_that_fits_in_the_last_page_succeeds_on_a_full_disk(fulldisk_fs: FakeDisks
                                                                   ) -> None:
    d = fulldisk_fs.disk(SESS, size="64KiB")
    write(f"{SESS}/log", "x" * 100)
    d.fill(leave=0)
    write(f"{SESS}/log", "y" * (PAGE - 100), "a")  # the rest of its page: no new page
    assert os.path.getsize(f"{SESS}/log") == PAGE
    with pytest.raises(OSError) as e:
        write(f"{SESS}/log", "z", "a")  # one byte more needs a page
    assert e.value.errno == errno.ENOSPC
    assert os.path.getsize(f"{SESS}/log") == PAGE


def test_truncate_then_write_reuses_the_pages_it_freed(fulldisk_fs: FakeDisks) -> None:
    d = fulldisk_fs.disk(SESS, size="64KiB")
    write(f"{SESS}/entry", "a" * 6000)
    d.fill(leave=0)
    write(f"{SESS}/entry", "b" * 2 * PAGE)  # 'w' frees both pages, then takes them again
    assert Path(f"{SESS}/entry").read_text() == "b" * 2 * PAGE
    with pytest.raises(OSError):
        write(f"{SESS}/entry", "c" * (2 * PAGE + 1))  # a third page is not there
    # what the failed rewrite leaves: an empty file (the truncation happened first)
    assert os.path.getsize(f"{SESS}/entry") == 0


def test_append_mode_and_os_write_on_a_full_disk(fulldisk_fs: FakeDisks) -> None:
    d = fulldisk_fs.disk("/var/log/app", size="16KiB", logs=True)
    fd = os.open("/var/log/app/app.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, b"first\n")
        d.fill(leave=0)
        os.write(fd, b"x" * (PAGE - 7) + b"\n")  # fills the page exactly
        with pytest.raises(OSError) as e:
            os.write(fd, b"refused\n")
        assert e.value.errno == errno.ENOSPC
        assert os.fstat(fd).st_size == PAGE  # a refused os.write leaves nothing behind
        d.drain()
        os.write(fd, b"after\n")
    finally:
        os.close(fd)
    data = Path("/var/log/app/app.log").read_bytes()
    assert data.startswith(b"first\n") and data.endswith(b"\nafter\n") and b"refused" not in data


def test_os_write_that_partly_fits_is_a_short_write(fulldisk_fs: FakeDisks) -> None:
    d = fulldisk_fs.disk("/var/log/app", size="16KiB", logs=True)
    fd = os.open("/var/log/app/app.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, b"a" * 100)
        d.fill(leave=PAGE)  # the rest of the first page and one more page
        assert os.write(fd, b"b" * 3 * PAGE) == 2 * PAGE - 100  # what fits, no more
        with pytest.raises(OSError) as e:
            os.write(fd, b"c")
        assert e.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    assert os.path.getsize("/var/log/app/app.log") == 2 * PAGE
    fd = os.open("/var/log/app/other", os.O_WRONLY | os.O_CREAT)
    try:  # not appending: the write position counts, not the end of the file
        d.drain()
        d.fill(leave=PAGE)
        os.lseek(fd, 1000, os.SEEK_SET)
        assert os.write(fd, b"d" * 2 * PAGE) == PAGE - 1000
    finally:
        os.close(fd)


def test_buffered_records_refused_while_full_land_later(fulldisk_fs: FakeDisks) -> None:
    """A buffered writer (logging.FileHandler) keeps what a flush could not write and
    writes it with the next flush, as CPython's BufferedWriter does."""
    d = fulldisk_fs.disk("/var/log/app", size="16KiB", logs=True)
    f = open("/var/log/app/app.log", "a")
    try:
        f.write("a" * (PAGE - 1) + "\n")
        f.flush()
        d.fill(leave=0)
        f.write("late\n")
        with pytest.raises(OSError):
            f.flush()
        d.drain()
        f.write("next\n")
        f.flush()
    finally:
        f.close()
    assert Path("/var/log/app/app.log").read_text().endswith("\nlate\nnext\n")


def test_temp_file_and_os_replace_on_a_full_disk(fulldisk_fs: FakeDisks) -> None:
    d = fulldisk_fs.disk(SESS, size="64KiB")
    write(f"{SESS}/sess_1", "old" * 100)  # one page
    write(f"{SESS}/.tmp_1", "new" * 2000)  # two pages
    d.fill(leave=0)
    os.replace(f"{SESS}/.tmp_1", f"{SESS}/sess_1")  # a rename needs no space
    assert sorted(os.listdir(SESS)) == ["sess_1"]
    assert Path(f"{SESS}/sess_1").read_text() == "new" * 2000
    assert d.usage().bytes_free == PAGE  # the old file's page came back
    with pytest.raises(OSError):  # but a new temp file's data needs pages it lacks
        write(f"{SESS}/.tmp_2", "n" * (PAGE + 1))


def test_inodes_run_out(fulldisk_fs: FakeDisks) -> None:
    d = fulldisk_fs.disk(SESS, size="64KiB", inodes=4)
    open(f"{SESS}/a", "w").close()
    open(f"{SESS}/b", "w").close()
    open(f"{SESS}/c", "w").close()  # root + 3 files: all 4 inodes
    assert d.usage().inodes_free == 0 and d.full
    with pytest.raises(OSError) as e:
        open(f"{SESS}/d", "w").close()
    assert e.value.errno == errno.ENOSPC and not os.path.exists(f"{SESS}/d")
    os.remove(f"{SESS}/a")
    d.fill_inodes(leave=0)
    with pytest.raises(OSError):
        open(f"{SESS}/d", "w").close()
    d.drain()
    open(f"{SESS}/d", "w").close()


def test_reset_empties_a_disk_and_truncates_a_log_disk_in_place(fulldisk_fs: FakeDisks
                                                                ) -> None:
    data = fulldisk_fs.disk("/srv/data", size="64KiB")
    logs = fulldisk_fs.disk("/srv/logs", size="64KiB", logs=True)
    os.makedirs("/srv/data/sub")
    write("/srv/data/sub/f", "x" * 9000)
    write("/srv/logs/app.log", "y" * 9000)
    data.fill(leave=0)
    data.reset()
    logs.reset()
    assert os.listdir("/srv/data") == [] and data.usage().bytes_free == 65536
    assert os.path.getsize("/srv/logs/app.log") == 0 and logs.usage().bytes_free == 65536
    assert logs.read("app.log") == b"" and logs.read("missing.log") is None


def test_one_disk_seen_at_several_paths_shares_its_space(fulldisk_fs: FakeDisks) -> None:
    d = fulldisk_fs.disk({"sessions": "/srv/sessions", "logs": "/srv/logs"}, size="64KiB",
                         inodes=16, logs=["logs"])
    write("/srv/logs/app.log", "y" * 5000)  # two pages
    d.fill(leave=PAGE)
    assert os.statvfs("/srv/sessions").f_bavail == 1  # the log took space the sessions lack
    assert shutil.disk_usage("/srv/sessions").free == PAGE
    with pytest.raises(OSError):
        write("/srv/sessions/s", "x" * (PAGE + 1))
    assert d.usage().inodes_free == 16 - 2 - 2  # two roots, the log, the refused session
    assert d.read("logs/app.log") == b"y" * 5000 and d.resolve("sessions/s") == "/srv/sessions/s"
    d.reset()
    assert os.listdir("/srv/sessions") == [] and os.path.getsize("/srv/logs/app.log") == 0
    with pytest.raises(UsageError, match="needs a path"):
        fulldisk_fs.disk({}, size="64KiB")


def test_paths_outside_every_disk_are_one_big_disk(fulldisk_fs: FakeDisks) -> None:
    os.makedirs("/elsewhere")
    st = os.statvfs("/elsewhere")
    assert st.f_bavail * st.f_frsize > 2**30
    with pytest.raises(FileNotFoundError):
        os.statvfs("/nowhere")


def test_real_dir_is_seen_by_python_and_real_code_and_removed_at_exit() -> None:
    import sqlite3

    with FakeDisks() as disks:
        real = disks.real_dir()
        assert os.path.isdir(real)  # the fake side shows it
        conn = sqlite3.connect(f"{real}/db.sqlite")  # a C extension writes the real one
        conn.execute("CREATE TABLE t (x)")
        conn.close()
        assert not os.path.exists(f"{real}/db.sqlite")  # pyfakefs cannot see that file
    assert not os.path.exists(real)  # and nothing outlives the context


@pytest.mark.parametrize(("kwargs", "fix"), [
    ({"size": "1KiB"}, "at least 4096 bytes"),
    ({"size": "ten"}, "512KiB"),
    ({"size": "64KiB", "inodes": 1}, "at least 2"),
])
def test_bad_disks_are_refused_with_the_fix(fulldisk_fs: FakeDisks, kwargs: dict[str, object],
                                            fix: str) -> None:
    with pytest.raises(UsageError) as e:
        fulldisk_fs.disk(SESS, **kwargs)  # type: ignore[arg-type]
    assert fix in str(e.value) and "Hint:" in str(e.value)


def test_a_disk_over_existing_files_or_twice_is_refused(fulldisk_fs: FakeDisks) -> None:
    os.makedirs("/srv/busy")
    write("/srv/busy/f", "x")
    with pytest.raises(UsageError, match="already holds files"):
        fulldisk_fs.disk("/srv/busy", size="64KiB")
    d = fulldisk_fs.disk(SESS, size="64KiB")
    with pytest.raises(UsageError, match="already declared"):
        fulldisk_fs.disk(SESS, size="64KiB")
    with pytest.raises(UsageError, match="exactly one of"):
        d.fill()
    with pytest.raises(UsageError, match="relative"):
        d.read("/etc/passwd")


def test_fulldisk_fs_and_pyfakefs_fs_together_are_refused(fs: object) -> None:
    with pytest.raises(UsageError, match="already active") as e, FakeDisks():
        pass
    assert "fulldisk_fs.fs" in str(e.value)
