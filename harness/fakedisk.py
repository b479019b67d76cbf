"""Fake disks: small size- and inode-limited filesystems at real paths, in this process.

A :class:`FakeDisks` context starts pyfakefs and lets a test declare disks at the paths
its code writes (``disks.disk("/var/lib/app/sessions", size="64KiB")``). Each disk is a
pyfakefs mount point whose space fulldisk accounts for itself, as tmpfs does:

- allocation is page-granular (4 KiB): a file uses whole pages, so an append that fits
  in the unused tail of a file's last page succeeds on a "full" disk, and a
  truncate-then-rewrite reuses the pages it just freed;
- every file and folder takes an inode; creating a file with none left is ENOSPC;
- ``fill`` and ``drain`` take and give back space the code under test cannot see (no
  ballast file in its folders), ``reset`` empties the disk (log disks: truncated in place);
- ``os.statvfs`` and ``shutil.disk_usage`` report the disk, so health checks and
  free-space reserves see what a real disk would show.

What pyfakefs patches: ``os``, ``os.path``, ``io``/``open``, ``shutil``, ``pathlib`` as
used from Python code. What it cannot see: C extensions that open files themselves
(SQLite, lxml, most database drivers) and other processes (gunicorn workers, nginx, a
cron job). Their paths need :meth:`FakeDisks.real_dir` (a real temporary folder that the
Python side sees too) and their full-disk behaviour needs the container battery.

An ``os.write`` that only partly fits writes what fits and returns the short count, as
the kernel does; the next one gets ENOSPC. Differences from a real disk, kept and said
here: a buffered file's flush (``open()``, ``logging.FileHandler``) is all or nothing
(CPython's writer would first write what fits, then fail and keep the rest), and creating
a folder on a disk with no inode left is not refused (pyfakefs gives no hook for it),
though the folder counts once it exists.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import FrameType, ModuleType, TracebackType
from typing import Any, Self

from pyfakefs.fake_file import FakeDirectory, FakeFile, FakeFileWrapper
from pyfakefs.fake_filesystem import FakeFilesystem
from pyfakefs.fake_filesystem_unittest import Patcher

from .errors import UsageError
from .sizes import PAGE, format_size, parse_size
from .target import Mount, VolumeSpec
from .timeline import Usage
from .volume import FillResult, ballast_needed

AS_USER = "in-process"
ROOT_INODES = 10_000_000
"""Inodes reported for paths outside every declared disk (pyfakefs's root has no limit)."""


def _pages(n: int) -> int:
    """Bytes a file of ``n`` bytes occupies: whole pages."""
    return -(-n // PAGE) * PAGE


def _tree(obj: FakeFile) -> Iterator[FakeFile]:
    """An object and, for a folder, everything below it."""
    yield obj
    if isinstance(obj, FakeDirectory):
        for child in list(obj.entries.values()):
            yield from _tree(child)


def _allocated(obj: FakeFile) -> int:
    """Page-rounded bytes of a file, or of every file below a folder."""
    return sum(_pages(o.st_size or 0) for o in _tree(obj) if not isinstance(o, FakeDirectory))


def _enospc(path: str) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


class FakeDisk:
    """One small in-process disk at a path: a Volume for the in-process battery."""

    def __init__(self, disks: FakeDisks, roots: Mapping[str, str], size: int, inodes: int,
                 name: str, logs: Iterable[str]) -> None:
        self.disks = disks
        self.roots = dict(roots)  # folder name -> path: one filesystem seen at these paths
        self.path = next(iter(self.roots.values()))
        self.name = name
        self.size = size
        self.inodes = inodes
        self.log_roots = set(logs)  # folders holding log files: reset truncates in place
        # descriptive only (the Volume protocol's spec); not validated, so that unit tests
        # may declare disks smaller than a target config allows
        self.spec = VolumeSpec.model_construct(
            size=size, inodes=inodes, owner="0:0", mode="0755", seed=False, description="",
            mounts=[Mount(service="inprocess", path=p, subdir=f if len(self.roots) > 1 else None,
                          logs=f in self.log_roots) for f, p in self.roots.items()],
            role="logs" if self.log_roots == set(self.roots) else "core")
        self.allocated = 0  # page-rounded bytes of the files on the disk
        self.ballast = 0  # bytes taken by fill(), invisible to the code under test
        self.ballast_inodes = 0
        self.devs: list[int] = []

    def __repr__(self) -> str:
        return f"FakeDisk({self.path!r}, {format_size(self.size)}: {self.usage()})"

    # --- measuring ---------------------------------------------------------------------
    def inodes_used(self) -> int:
        """Inodes of the files and folders on the disk (its root folders included)."""
        fs = self.disks.fs
        return len({id(o) for p in self.roots.values() for o in _tree(fs.get_object(p))})

    def usage(self) -> Usage:
        """Bytes and inodes, as statvfs on a real disk would report them."""
        return Usage(self.size, max(0, self.size - self.allocated - self.ballast),
                     self.inodes, max(0, self.inodes - self.inodes_used() - self.ballast_inodes),
                     AS_USER)

    @property
    def free(self) -> int:
        """Bytes free."""
        return self.usage().bytes_free

    @property
    def full(self) -> bool:
        """No whole page or no inode left."""
        return self.usage().full

    # --- loads -------------------------------------------------------------------------
    def fill(self, *, leave: int | str | None = None, percent: float | None = None) -> FillResult:
        """Take space (invisible to the code under test) so ``leave`` bytes stay free, or
        ``percent`` of the disk is used; a disk already that full is left as it is."""
        before, n = ballast_needed(self.usage, leave=leave, percent=percent)
        if n == 0:
            return FillResult(0, 0, before, f"already at or below the target: {before}")
        self.ballast += n
        self.disks.sync(self)
        return FillResult(n, 0, self.usage())

    def fill_inodes(self, *, leave: int = 0) -> FillResult:
        """Take every inode but ``leave``."""
        before = self.usage()
        n = max(0, before.inodes_free - leave)
        if n == 0:
            return FillResult(0, 0, before, f"no inode to take: {before}")
        self.ballast_inodes += n
        return FillResult(0, n, self.usage())

    def drain(self) -> int:
        """Give back what fill() took; returns bytes freed (the code's files stay)."""
        freed = self.ballast
        self.ballast = self.ballast_inodes = 0
        self.disks.sync(self)
        return freed

    def reset(self) -> None:
        """Drain, then empty the disk; a log disk keeps its files, truncated in place (an
        open log file stays the file its handler writes)."""
        self.drain()
        fs = self.disks.fs
        for folder, path in self.roots.items():
            root = fs.get_object(path)
            assert isinstance(root, FakeDirectory)
            if folder in self.log_roots:
                for obj in _tree(root):
                    if not isinstance(obj, FakeDirectory):
                        obj.size = 0
                continue
            for name in list(root.entries):
                fs.remove_object(f"{path}/{name}")

    def read(self, path: str) -> bytes | None:
        """A file on the disk (path relative to the disk), None when absent."""
        full = self.resolve(path)
        fs = self.disks.fs
        if not fs.isfile(full):
            return None
        obj = fs.get_object(full)
        return obj.byte_contents or b""

    def resolve(self, path: str) -> str:
        """The absolute path of a path relative to the disk (on a disk seen at several
        paths, the first folder names which: ``applogs/app.log``)."""
        if path.startswith("/") or ".." in path.split("/"):
            raise UsageError(f"path {path!r} must be relative to the disk", "e.g. 'app.log'")
        first, _, rest = path.partition("/")
        if len(self.roots) > 1 and first in self.roots and rest:
            return f"{self.roots[first]}/{rest}"
        return f"{self.path}/{path}"


class FakeDisks:
    """pyfakefs started with fulldisk's disks: declare, fill, drain and measure them.

    Use as a context manager (or the ``fulldisk_fs`` pytest fixture). ``skip`` names
    modules whose file calls must reach the real filesystem (pyfakefs's
    ``additional_skip_names``), e.g. a module that works on files a C extension writes.
    """

    def __init__(self, *, skip: Sequence[str] = ()) -> None:
        self.skip: list[str | ModuleType] = list(skip)
        self.disks: dict[str, FakeDisk] = {}
        self._by_dev: dict[int, FakeDisk] = {}
        self._patcher: Patcher | None = None
        self._real: list[str] = []
        self._orig_change: Any = None

    # --- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Self:
        if Patcher.PATCHER is not None and Patcher.REF_COUNT > 0:
            raise UsageError("pyfakefs is already active in this test (the `fs` fixture or "
                             "another Patcher)",
                             "use fulldisk_fs alone; its FakeFilesystem is fulldisk_fs.fs")
        patcher = Patcher(additional_skip_names=self.skip or None)
        patcher.setUp()
        self._patcher = patcher
        fs = self.fs
        self._orig_change = fs.change_disk_usage
        fs.change_disk_usage = self._change  # type: ignore[method-assign,assignment]
        fake_os = patcher.fake_modules["os"]
        fake_os.statvfs = self.statvfs
        write = fake_os.write

        def write_fd(fd: int, data: bytes) -> int:
            view = bytes(data)
            if fd in (1, 2):
                # pyfakefs 6 fails on os.write to fd 1/2 (AttributeError); a logging
                # fallback to stderr must reach sys.stderr as in a real process.
                stream = sys.stdout if fd == 1 else sys.stderr
                stream.write(view.decode("utf-8", "replace"))
                stream.flush()
                return len(view)
            fit = self._fits(fd, len(view))
            if 0 < fit < len(view):
                return int(write(fd, view[:fit]))  # a short write, as the kernel makes it
            return int(write(fd, view))

        fake_os.write = write_fd
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop pyfakefs and remove the real folders made by real_dir()."""
        if self._patcher is not None:
            self._patcher.tearDown()
            self._patcher = None
        for path in self._real:
            shutil.rmtree(path, ignore_errors=True)
        self._real.clear()

    @property
    def fs(self) -> FakeFilesystem:
        """The pyfakefs filesystem (create_file, get_object, ...)."""
        if self._patcher is None or self._patcher.fs is None:
            raise UsageError("the fake filesystem is not active",
                             "use FakeDisks as a context manager, or the fulldisk_fs fixture")
        return self._patcher.fs

    # --- declaring ---------------------------------------------------------------------
    def disk(self, path: str | Mapping[str, str], size: int | str, *, inodes: int = 4096,
             name: str | None = None, logs: bool | Iterable[str] = False) -> FakeDisk:
        """A new disk of ``size`` bytes (whole pages) and ``inodes`` inodes at ``path``, or
        one disk seen at several paths (``{folder name: path}``, a shared disk); ``logs``:
        the disk (or those folders) holds log files, truncated in place by reset()."""
        fs = self.fs
        roots = {"": path} if isinstance(path, str) else dict(path)
        if not roots:
            raise UsageError("a disk needs a path", "e.g. disks.disk('/var/lib/app', '64KiB')")
        roots = {f: fs.absnormpath(p) for f, p in roots.items()}
        folders = set(roots) if logs is True else set() if logs is False else set(logs)
        total = parse_size(size, what="size") // PAGE * PAGE
        first = next(iter(roots.values()))
        for p in roots.values():
            self._check_free(p, size, total, inodes)
        d = FakeDisk(self, roots, total, inodes,
                     name or os.path.basename(first) or "root", folders)
        for p in roots.values():
            mount = fs.add_mount_point(p, total_size=total, can_exist=False)
            d.devs.append(int(mount["idev"]))
            self.disks[p] = d
            self._by_dev[d.devs[-1]] = d
        return d

    def _check_free(self, path: str, size: int | str, total: int, inodes: int) -> None:
        """Refuse a disk that is too small, or at a path already declared or in use."""
        fs = self.fs
        if total < PAGE:
            raise UsageError(f"disk {path}: size {size!r} is smaller than one page",
                             f"give at least {PAGE} bytes, e.g. size='64KiB'")
        if inodes < 2:
            raise UsageError(f"disk {path}: {inodes} inodes leave none for files",
                             "give at least 2 (the disk's root folder takes one)")
        if path in self.disks:
            raise UsageError(f"a disk is already declared at {path}", "declare each path once")
        if fs.exists(path) and (not fs.isdir(path) or fs.listdir(path)):
            raise UsageError(f"{path} already holds files",
                             "declare disks before the code under test writes there")

    def real_dir(self) -> str:
        """A real folder (removed at exit) that the fake filesystem shows too: for files a C
        extension writes (SQLite) while Python code still checks the folder."""
        assert self._patcher is not None
        self._patcher.pause()
        try:
            # in memory where the machine has it: SQLite's fsyncs cost milliseconds on disk
            shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
            real = tempfile.mkdtemp(prefix="fulldisk-real-", dir=shm)
        finally:
            self._patcher.resume()
        self._real.append(real)
        self.fs.create_dir(real)
        return real

    def sync(self, d: FakeDisk) -> None:
        """Keep pyfakefs's own count (shutil.disk_usage) equal to the disk's."""
        for mount in self.fs.mount_points.values():
            if mount["idev"] in d.devs:
                mount["used_size"] = d.allocated + d.ballast

    def disk_at(self, path: str) -> FakeDisk | None:
        """The declared disk a path lies on."""
        fs = self.fs
        p = fs.absnormpath(path)
        best: FakeDisk | None = None
        for root, d in self.disks.items():
            if (p == root or p.startswith(root + "/")) and (best is None
                                                            or len(root) > len(best.path)):
                best = d
        return best

    # --- the kernel's side -------------------------------------------------------------
    def _fits(self, fd: int, n: int) -> int:
        """How many of ``n`` bytes written to ``fd`` land before the disk is full (``n``
        when the fd is not a file on a declared disk)."""
        try:
            w = self.fs.get_open_file(fd)
        except OSError:
            return n  # a bad fd: the real write raises the right error
        if not isinstance(w, FakeFileWrapper):
            return n
        d = self._by_dev.get(w.file_object.st_dev)
        if d is None:
            return n
        size = w.file_object.st_size or 0
        start = size if w.open_modes.append else w.tell()
        room = _pages(size) + d.size - d.allocated - d.ballast - start
        return max(0, min(n, room))

    def statvfs(self, path: Any) -> os.statvfs_result:
        """``os.statvfs`` for the fake filesystem: a declared disk as it stands, anything
        else as one big disk."""
        fs = self.fs
        p = fs.absnormpath(os.fspath(path))
        if not fs.exists(p):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
        d = self.disk_at(p)
        if d is not None:
            u = d.usage()
            total, free, files, ffree = u.bytes_total, u.bytes_free, u.inodes_total, u.inodes_free
        else:
            total, _, free = fs.get_disk_usage(p)
            files = ffree = ROOT_INODES
        return os.statvfs_result((PAGE, PAGE, total // PAGE, free // PAGE, free // PAGE,
                                  files, ffree, ffree, 0, 255))

    def _change(self, usage_change: int, file_path: str, st_dev: int) -> None:
        """pyfakefs's space accounting, page-granular with inodes on declared disks.

        pyfakefs calls this with a byte delta before it applies a change; the caller's
        frame says which object changes and how (added, removed, resized).
        """
        d = self._by_dev.get(st_dev)
        if d is None:
            self._orig_change(usage_change, file_path, st_dev)
            return
        frame = sys._getframe(1)
        how = frame.f_code.co_name
        loc = frame.f_locals
        if how == "add_entry" and isinstance(loc.get("path_object"), FakeFile):
            obj = loc["path_object"]
            delta = _allocated(obj)
            if (d.inodes_used() + d.ballast_inodes > d.inodes
                    or delta > d.size - d.allocated - d.ballast):
                _undo_add(frame, obj)
                raise _enospc(file_path)
        elif how == "remove_entry" and isinstance(loc.get("entry"), FakeFile):
            delta = -_allocated(loc["entry"])
        elif isinstance(loc.get("self"), FakeFile) and not isinstance(loc["self"],
                                                                        FakeDirectory):
            old = loc["self"].st_size or 0
            delta = _pages(old + usage_change) - _pages(old)
        else:  # a caller this layer does not know: whole pages, rounded away from zero
            delta = _pages(abs(usage_change)) * (1 if usage_change >= 0 else -1)
        if delta > 0 and delta > d.size - d.allocated - d.ballast:
            raise _enospc(file_path)
        d.allocated = max(0, d.allocated + delta)
        self.sync(d)


def _undo_add(frame: FrameType, obj: FakeFile) -> None:
    """Take back an entry pyfakefs added before asking for its space (it asks after)."""
    parent = frame.f_locals.get("self")
    if isinstance(parent, FakeDirectory):
        for name, entry in list(parent._entries.items()):
            if entry is obj:
                del parent._entries[name]
                parent.st_nlink -= 1
                obj.st_nlink -= 1
