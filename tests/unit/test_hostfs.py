"""hostfs without mounting anything: the choice of agent, names, the seed filter, the
mount table. (Mounting, the owner's shell and clean after SIGKILL run against the engine
in tests/docker/test_volume.py and test_teardown.py.)"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from harness import hostfs
from harness.errors import GuardError, InfrastructureError


def _tar(*members: tarfile.TarInfo) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(b"x" * m.size) if m.isfile() else None)
    return buf.getvalue()


def _file(name: str) -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.size = 1
    return m


def _link(name: str, target: str) -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type = tarfile.SYMTYPE
    m.linkname = target
    return m


def test_the_container_kind_never_mounts_and_an_unknown_kind_names_the_choices(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert hostfs.unavailable("container") is not None
    monkeypatch.setenv("FULLDISK_AGENT", "container")
    assert "FULLDISK_AGENT=container" in str(hostfs.unavailable())
    monkeypatch.setenv("FULLDISK_AGENT", "hots")
    with pytest.raises(InfrastructureError, match="auto, host or container"):
        hostfs.unavailable()


def test_host_kind_where_it_cannot_be_is_an_error_and_auto_falls_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostfs, "_why_not", lambda: "this process is not root")
    assert hostfs.unavailable("auto") == "this process is not root"
    with pytest.raises(InfrastructureError, match="not root") as e:
        hostfs.unavailable("host")
    assert "unset FULLDISK_AGENT" in e.value.one_line()


def test_a_remote_engine_is_never_mounted_for(monkeypatch: pytest.MonkeyPatch) -> None:
    hostfs._why_not.cache_clear()
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    try:
        assert "not local" in str(hostfs._why_not())
    finally:
        hostfs._why_not.cache_clear()


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".hidden"])
def test_only_plain_volume_names_map_to_a_path(name: str) -> None:
    with pytest.raises(GuardError):
        hostfs.path_of(name)


def test_path_of_is_below_the_root() -> None:
    assert hostfs.path_of("fd-1-2-db") == f"{hostfs.ROOT}/fd-1-2-db"


def test_seed_keeps_absolute_symlinks_but_never_writes_through_one(tmp_path: Path) -> None:
    """An image's folder may hold absolute links (harmless text); a member written below
    a link that leaves the folder is refused, and nothing lands outside."""
    dest, outside = tmp_path / "vol", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    hostfs.put_tar(str(dest), _tar(_file("data/a"), _link("data/l", "/etc/passwd")))
    assert (dest / "data" / "a").read_bytes() == b"x"
    assert (dest / "data" / "l").is_symlink()
    evil = _tar(_link("data/out", str(outside)), _file("data/out/pwned"))
    with pytest.raises(tarfile.TarError):
        hostfs.put_tar(str(dest), evil)
    assert list(outside.iterdir()) == []
    with pytest.raises(tarfile.TarError):
        hostfs.put_tar(str(dest), _tar(_file("../escaped")))
    assert not (tmp_path / "escaped").exists()


def _dir(name: str, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.mode, m.uid, m.gid = tarfile.DIRTYPE, mode, uid, gid
    return m


def test_seed_keeps_the_images_modes_sticky_setgid_and_owner(tmp_path: Path) -> None:
    """Debian's PHP session folder is 1733 root:root: tarfile's own filter would make it
    0711 (no sticky bit, no write for others), and PHP could not open a session."""
    import os
    import stat

    dest = tmp_path / "vol"
    dest.mkdir()
    exe = _file("data/bin/tool")
    exe.mode = 0o4755
    hostfs.put_tar(str(dest), _tar(_dir("data", 0o1733), _dir("data/shared", 0o2775, 0, 50),
                                   _dir("data/own", 0o750, 101, 101), _dir("data/bin", 0o755),
                                   exe))
    modes = {p: stat.S_IMODE(os.stat(dest / p).st_mode)
             for p in ("data", "data/shared", "data/own", "data/bin/tool")}
    assert modes == {"data": 0o1733, "data/shared": 0o2775, "data/own": 0o750,
                     "data/bin/tool": 0o4755}, {k: oct(v) for k, v in modes.items()}
    if os.geteuid() == 0:  # only root may give files away
        st = os.stat(dest / "data" / "own")
        assert (st.st_uid, st.st_gid) == (101, 101)
        assert os.stat(dest / "data" / "shared").st_gid == 50


def test_retar_keeps_the_images_top_folder_unless_the_target_sets_it() -> None:
    from harness import engine

    data = _tar(_dir("sessions", 0o1733), _file("sessions/a"))
    kept = tarfile.open(fileobj=io.BytesIO(engine.retar(data, "folder"))).getmembers()
    assert (kept[0].name, kept[0].mode) == ("folder", 0o1733)
    given = engine.retar(data, "folder", uid=33, gid=33, mode=0o700)
    top, inner = tarfile.open(fileobj=io.BytesIO(given)).getmembers()
    assert (top.uid, top.gid, top.mode) == (33, 33, 0o700)
    assert inner.name == "folder/a" and inner.uid == 0  # below the top: the image's


def test_get_tar_of_a_missing_file_is_none_and_of_a_file_its_bytes(tmp_path: Path) -> None:
    assert hostfs.get_tar(str(tmp_path / "nope")) is None
    (tmp_path / "f").write_bytes(b"hello")
    with tarfile.open(fileobj=io.BytesIO(hostfs.get_tar(str(tmp_path / "f")) or b"")) as t:
        [m] = t.getmembers()
        assert m.name == "f" and (t.extractfile(m) or io.BytesIO()).read() == b"hello"


def test_only_tmpfs_mounted_with_our_source_below_the_root_count_as_ours(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(
        "30 25 0:26 / /run rw,nosuid - tmpfs tmpfs rw,size=10%\n"
        f"41 30 0:40 / {hostfs.ROOT}/fd-a-1-db rw,nosuid,nodev - tmpfs fulldisk rw,size=1m\n"
        f"42 30 0:41 / {hostfs.ROOT}/fd-a-1-x rw - tmpfs other rw\n"
        f"43 30 8:1 / {hostfs.ROOT}/fd-a-1-y rw - ext4 /dev/sda1 rw\n")
    real_open = open

    def fake_open(path: str, *a: object, **k: object) -> object:
        return real_open(table if path == "/proc/self/mountinfo" else path,
                         *a, **k)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", fake_open)
    assert hostfs.mounted() == ["fd-a-1-db"]
    assert hostfs.is_ours(f"{hostfs.ROOT}/fd-a-1-db")
    assert not hostfs.is_ours(f"{hostfs.ROOT}/fd-a-1-x")
    assert not hostfs.is_ours("/run")


def test_make_dir_sets_owner_and_mode_and_never_goes_through_a_link(tmp_path: Path) -> None:
    import os

    uid, gid = os.getuid(), os.getgid()  # root in CI: any owner; elsewhere only one's own
    hostfs.make_dir(str(tmp_path), "data", uid, gid, 0o750)
    hostfs.make_dir(str(tmp_path), "data", uid, gid, 0o750)  # mkdir -p: again is fine
    st = (tmp_path / "data").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (uid, gid, 0o750)
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    (tmp_path / "planted").symlink_to(outside)  # an app's link where a folder should be
    with pytest.raises(OSError):
        hostfs.make_dir(str(tmp_path), "planted", uid, gid, 0o777)
    assert outside.stat().st_mode & 0o777 == 0o700  # the link's target was not touched
    with pytest.raises(Exception, match="one plain name"):
        hostfs.make_dir(str(tmp_path), "../escape", uid, gid)
