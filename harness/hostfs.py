"""Host filesystems: a volume's tmpfs mounted by this process on the engine's own host.

The docker backend's tmpfs is mounted by the engine when a container holds the volume, so
a stack used to start an agent container first and its services after it. When this
process runs as root in the engine's mount namespace it mounts the tmpfs itself, under
``/run/fulldisk/<docker volume name>``, works on it with the host's shell (as the volume's
owner) and services bind its folders at once: no agent container, no exec per step.

The docker volume (labelled, never mounted) stays the record of the run's resources: a
mount here exists only while its volume does, and ``clean`` unmounts before it removes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import io
import os
import shutil
import stat
import subprocess
import tarfile
from functools import cache

from .errors import GuardError, InfrastructureError, UsageError

ROOT = "/run/fulldisk"
SOURCE = "fulldisk"  # the mount's source field: how mountinfo tells our tmpfs apart
TOOLS = ("sh", "stat", "find", "mountpoint", "fallocate", "truncate", "xargs", "grep",
         "tail", "head", "mkdir", "chown", "chmod", "rm")
SHELL_TIMEOUT = 300.0  # a fill of a large volume writing zeros is the slowest script
_MS_NOSUID, _MS_NODEV = 2, 4
_MNT_DETACH = 2
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


def _ns(pid: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/mnt")


def _engine_pid() -> str | None:
    """The local engine's pid (its pid file, else a process named dockerd)."""
    for f in ("/run/docker.pid", "/var/run/docker.pid"):
        try:
            with open(f, encoding="ascii") as fh:
                pid = fh.read().strip()
        except OSError:
            continue
        if pid.isdigit() and _comm(pid) == "dockerd":
            return pid
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if _comm(pid) == "dockerd":
            return pid
    return None


def _comm(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def unavailable(kind: str = "auto") -> str | None:
    """Why volumes cannot be mounted here for the engine (None: they can), for an agent
    ``kind``: ``auto`` (``$FULLDISK_AGENT``, else this way where it can be), ``host`` (this
    way or an error) or ``container`` (never this way)."""
    if kind == "auto":
        kind = os.environ.get("FULLDISK_AGENT", "auto")
    if kind not in ("auto", "host", "container"):
        raise InfrastructureError(f"FULLDISK_AGENT={kind!r} is not a choice",
                                  "set it to auto, host or container (or unset it)")
    if kind == "container":
        return "the agent is a container (FULLDISK_AGENT=container)"
    why = _why_not()
    if why and kind == "host":
        raise InfrastructureError(f"volumes cannot be mounted by fulldisk here: {why}",
                                  "unset FULLDISK_AGENT (auto uses an agent container then)")
    return why


def reachable() -> bool:
    """Whether the engine's host mounts are this process's to unmount (root, in the
    engine's mount namespace): ``clean`` leaves a volume fulldisk mounted on the host to
    a clean run there otherwise."""
    return _why_not() is None


LABEL = "fulldisk.hostfs"  # on a docker volume whose tmpfs fulldisk mounted on the host


@cache
def _why_not() -> str | None:
    host = os.environ.get("DOCKER_HOST", "")
    if host and not host.startswith("unix://"):
        return f"the engine is not local (DOCKER_HOST={host})"
    if os.geteuid() != 0:
        return "this process is not root"
    pid = _engine_pid()
    if pid is None:
        return "no dockerd process is visible here"
    try:
        if _ns(pid) != _ns("self"):
            return "the engine runs in another mount namespace"
    except OSError as e:
        return f"the engine's mount namespace cannot be read ({e.strerror})"
    if _selinux_enforcing():
        return ("SELinux is enforcing (a host folder bound into a container needs a "
                "label the engine gives only its own volumes)")
    missing = [t for t in TOOLS if shutil.which(t, path=_ENV["PATH"]) is None]
    if missing:
        return f"the host lacks {', '.join(missing)}"
    if _libc() is None:
        return "the C library's mount() cannot be called"
    return None


def _selinux_enforcing() -> bool:
    try:
        with open("/sys/fs/selinux/enforce", encoding="ascii") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


@cache
def _libc() -> ctypes.CDLL | None:
    # This process's own symbols hold libc's (dlopen of NULL); find_library, the fallback,
    # runs `ldconfig -p` (a process on the stack's start path).
    return _with_mount(None) or _with_mount(ctypes.util.find_library("c"))


def _with_mount(name: str | None) -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    return lib if hasattr(lib, "mount") and hasattr(lib, "umount2") else None


def path_of(name: str) -> str:
    """Where the tmpfs of docker volume ``name`` is mounted here."""
    if not name or "/" in name or name.startswith("."):
        raise GuardError(f"{name!r} is not a volume name", "use the stack's volume names")
    return f"{ROOT}/{name}"


def _mounts() -> dict[str, tuple[str, str]]:
    """Mount points below ROOT: path -> (filesystem type, source)."""
    out: dict[str, tuple[str, str]] = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            point = fields[4].replace("\\040", " ")
            if point.startswith(ROOT + "/"):
                out[point] = (fields[sep + 1], fields[sep + 2])
    return out


def mounted() -> list[str]:
    """Names of the volumes whose tmpfs is mounted here now (leftovers, after a run)."""
    return sorted(p.rsplit("/", 1)[1] for p, (fs, src) in _mounts().items()
                  if fs == "tmpfs" and src == SOURCE)


def is_ours(path: str) -> bool:
    """A tmpfs this module mounted."""
    return _mounts().get(path) == ("tmpfs", SOURCE)


def require_ours(*paths: str) -> None:
    """The guard's check before any write (and any measurement): each path is a tmpfs this
    module mounted, by one read of the mount table; never another filesystem (a stack
    removed meanwhile: its folder would be the host's own)."""
    table = _mounts()
    for path in paths:
        if table.get(path) != ("tmpfs", SOURCE):
            raise GuardError(f"Refusing to work on {path}: not a tmpfs this run mounted",
                             "fulldisk only writes to tmpfs volumes it created")


def mount_tmpfs(name: str, options: str) -> str:
    """Mount a tmpfs with the docker volume's own options (size, inodes, owner, mode) at
    ``path_of(name)``, refusing a path that is already a mount; returns the path."""
    lib = _libc()
    assert lib is not None
    path = path_of(name)
    os.makedirs(ROOT, mode=0o755, exist_ok=True)
    try:
        os.mkdir(path, 0o700)  # a new, empty folder: never a mount over existing files
    except FileExistsError:
        raise GuardError(f"{path} exists already (a run that did not end?)",
                         "run `fulldisk clean`") from None
    if path in _mounts():
        raise GuardError(f"{path} is already a mount point", "run `fulldisk clean`")
    if lib.mount(SOURCE.encode(), path.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                 options.encode()) != 0:
        err = ctypes.get_errno()
        os.rmdir(path)
        raise InfrastructureError(f"cannot mount a tmpfs at {path}: {os.strerror(err)}",
                                  "set FULLDISK_AGENT=container to let the engine mount it")
    return path


def release(name: str) -> bool:
    """Unmount the tmpfs of volume ``name`` (contents gone) and remove its folder; True
    when there was one. Services that still bind it keep theirs until they are removed."""
    lib = _libc()
    path = path_of(name)
    found = is_ours(path)
    if found:
        assert lib is not None
        if lib.umount2(path.encode(), 0) != 0:
            err = ctypes.get_errno()
            # busy (a shell inside it): detached, gone once let go of; not a mount any
            # more: another clean reaping the same stale run got there first
            if err == errno.EBUSY and lib.umount2(path.encode(), _MNT_DETACH) == 0:
                pass
            elif is_ours(path):
                err = ctypes.get_errno() if err == errno.EBUSY else err
                raise InfrastructureError(f"cannot unmount {path}: {os.strerror(err)}",
                                          "run `fulldisk clean` as root")
    try:
        os.remove(f"{path}.marks")
    except FileNotFoundError:
        pass
    if not found and os.path.isdir(path) and not os.path.ismount(path):
        # empty folders the engine made there for a service's bind while the tmpfs was
        # being unmounted (a run cut short): removed; a file would stop the rmdir below
        for root, dirs, _files in os.walk(path, topdown=False):
            for d in dirs:
                try:
                    os.rmdir(os.path.join(root, d))
                except OSError:
                    pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as e:  # still a mount (not ours) or not empty: never removed by force
        raise InfrastructureError(f"cannot remove {path}: {e.strerror}",
                                  f"see `findmnt {path}`") from e
    return found


def _ids(user: str) -> tuple[int, int]:
    uid, _, gid = (user or "0:0").partition(":")
    return int(uid), int(gid or uid)


def make_dir(root: str, name: str, uid: int, gid: int, mode: int | None = None) -> None:
    """``mkdir -p root/name``, then owner (and mode) set on what was opened, never
    through a link: a folder of a volume fulldisk mounted, made as root without a shell."""
    if not name or "/" in name or name in (".", ".."):
        raise UsageError(f"folder {name!r} must be one plain name", "e.g. 'data'")
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    top = os.open(root, flags)
    try:
        try:
            os.mkdir(name, 0o777, dir_fd=top)  # the umask applies, as to mkdir -p
        except FileExistsError:
            pass
        fd = os.open(name, flags, dir_fd=top)
        try:
            os.fchown(fd, uid, gid)
            if mode is not None:
                os.fchmod(fd, mode)
        finally:
            os.close(fd)
    finally:
        os.close(top)


def shell(script: str, *, user: str = "0:0") -> tuple[int, bytes]:
    """Run a shell script here as ``uid:gid`` (no other groups); exit code and output
    (stdout and stderr together, as an exec's)."""
    uid, gid = _ids(user)
    try:
        done = subprocess.run(["sh", "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=_ENV, cwd="/",
                              user=uid, group=gid, extra_groups=[], timeout=SHELL_TIMEOUT,
                              check=False)
    except subprocess.TimeoutExpired as e:
        raise InfrastructureError(f"a volume script ran over {SHELL_TIMEOUT:g} s",
                                  "is the host very slow? see `top`") from e
    return done.returncode, done.stdout


def _seed_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's ``tar`` filter (nothing is written outside ``dest``, no device files),
    except that a symbolic link may point anywhere: a link is only text, and no later
    member is written through one (the filter resolves each member's path); and the
    image's modes are kept whole. The filter clears sticky, setgid, setuid and group/other
    write bits: Debian's PHP session folder (1733) would become 0711, which PHP cannot
    write to on an empty disk."""
    try:
        safe = tarfile.tar_filter(member, dest)
    except (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError):
        if member.issym():
            return member
        raise
    if safe is None or not (safe.isdir() or safe.isfile()):
        return safe
    return safe.replace(mode=member.mode & 0o7777, deep=False)


def put_tar(path: str, data: bytes) -> None:
    """Extract a tar (an image's files) into a folder, keeping numeric owners and modes."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(path, numeric_owner=True, filter=_seed_filter)


def get_tar(path: str) -> bytes | None:
    """A tar holding the file at ``path`` (None when there is none)."""
    if not os.path.lexists(path):
        return None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(path, arcname=os.path.basename(path), recursive=False)
    return buf.getvalue()


def statvfs(*paths: str) -> list[tuple[int, int, int, int, int]]:
    """(block size, blocks, blocks free, inodes, inodes free) of tmpfs this module mounted,
    as ``stat -f -c '%S %b %a %c %d'`` prints them (``require_ours`` first)."""
    require_ours(*paths)
    return [(st.f_frsize, st.f_blocks, st.f_bavail, st.f_files, st.f_ffree)
            for st in map(os.statvfs, paths)]


def read_tail(root: str, rel: str, offset: int, *, limit: int = 64 << 20) -> tuple[int, bytes]:
    """The size of file ``rel`` below ``root`` and its bytes from ``offset`` (at most
    ``limit``); size -1 when it is absent or not a regular file. Each component is opened
    without following a link: a link the app made (even to /etc/shadow) is not read by
    this root process."""
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        return -1, b""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fds: list[int] = []
    try:
        fds.append(os.open(root, flags | os.O_DIRECTORY))
        for part in parts[:-1]:
            fds.append(os.open(part, flags | os.O_DIRECTORY, dir_fd=fds[-1]))
        fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fds[-1])
        fds.append(fd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return -1, b""
        if offset >= st.st_size:
            return st.st_size, b""
        return st.st_size, os.pread(fd, min(st.st_size - offset, limit), offset)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EACCES):
            return -1, b""
        raise
    finally:
        for f in reversed(fds):
            os.close(f)
