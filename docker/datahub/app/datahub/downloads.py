"""Generated exports (CSV/GeoJSON) in /var/lib/datahub/downloads, and their counter.

A download is generated on first request into ``<name>-<size>.<format>`` and reused
while it exists (Exversion kept generated files until a cron job cleared them).

Hardened: refuse (507, Retry-After) when generating would leave less than a reserve
(15 % of the filesystem, 4 inodes); generate into a temp file and rename; on ENOSPC
remove the partial file and answer 507; count a download once its last byte was
handed to the server (cache hits included; refusals and failures excluded).

Defects: ``unbounded_downloads`` (no reserve, written in place until ENOSPC, the
partial file stays, 500); ``miscounted_downloads`` (counted when generated, before
serving: hits never counted, failed serving still counted); ``streamed_exports``
(generated while streaming: each piece goes to the client, then into the file, with no
reserve check; once the 200 and the first bytes are out a failed write can only end the
response short, so the client gets a 200 with a cut body); ``stale_partial_exports``
(generated in a work folder on the cache disk and moved into the downloads folder when
done; a generation cut short by ENOSPC answers 507 but leaves its work file, and the next
request for that export takes the leftover for a finished generation and publishes it:
200 with the export's Content-Length and a short body. The bug of every job runner that
takes "the output file exists" for "the job finished", like make without
.DELETE_ON_ERROR).
"""
from __future__ import annotations

import errno
import hashlib
import logging
import math
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from typing import BinaryIO

from . import config, db

log = logging.getLogger("datahub.downloads")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FORMATS = {"csv": "text/csv", "geojson": "application/geo+json"}
CHUNK = 64 * 1024

_inflight_lock = threading.Lock()
_inflight_bytes = 0  # space promised to generations in progress (this process)


class Refused(Exception):
    """Not enough space: answered 507 with Retry-After."""


class GenerationFailed(Exception):
    """ENOSPC while generating: answered 507."""


def _rows(name: str, fmt: str) -> tuple[bytes, bytes, list[bytes]]:
    seed = int(hashlib.sha256(f"{name}/{fmt}".encode()).hexdigest()[:12], 16)
    rows = []
    for i in range(400):
        v = (seed + i * 2654435761) % 4294967291
        lat, lon = 40.5 + (v % 4000) / 10000, -74.2 + (v // 7 % 5000) / 10000
        if fmt == "csv":
            rows.append(f"{i},{lat:.4f},{lon:.4f},{v % 700 / 10:.1f},{v % 80 / 10:.1f},"
                        f"{name},{v % 9000},{v % 120}\n".encode())
        else:
            rows.append(
                (f'{{"type":"Feature","properties":{{"id":{i},"dataset":"{name}",'
                 f'"block":{v % 9000},"lot":{v % 120}}},'
                 f'"geometry":{{"type":"Point","coordinates":[{lon:.4f},{lat:.4f}]}}}},\n').encode()
            )
    if fmt == "csv":
        return b"id,lat,lon,depth_km,magnitude,dataset,block,lot\n", b"", rows
    prefix = f'{{"type":"FeatureCollection","name":"{name}","features":[\n'.encode()
    suffix = b'{"type":"Feature","properties":{"end":true},"geometry":null}]}\n'
    return prefix, suffix, rows


def content(name: str, fmt: str, size: int) -> Iterator[bytes]:
    """Deterministic synthetic export of exactly ``size`` bytes, in chunks of ~64 KiB."""
    prefix, suffix, rows = _rows(name, fmt)
    if size < len(prefix) + len(suffix) + 1:
        yield (prefix + suffix + b"\n" * size)[:size]
        return
    block = b"".join(rows)
    body = size - len(prefix) - len(suffix)
    out = [prefix]
    pending = len(prefix)
    while body > 0:
        if body >= len(block):
            piece = block
        else:
            acc, n = [], 0
            for r in rows:
                if n + len(r) > body:
                    break
                acc.append(r)
                n += len(r)
            pad = body - n
            if pad:
                acc.append((b"#" if fmt == "csv" else b" ") * (pad - 1) + b"\n")
            piece = b"".join(acc)
        out.append(piece)
        pending += len(piece)
        body -= len(piece)
        if pending >= CHUNK:
            yield b"".join(out)
            out, pending = [], 0
    out.append(suffix)
    yield b"".join(out)


def path_for(name: str, fmt: str, size: int) -> str:
    """Where the export of this dataset, format and size lives."""
    return os.path.join(config.DOWNLOADS_DIR, f"{name}-{size}.{fmt}")


def _open_complete(path: str, size: int) -> BinaryIO | None:
    """The existing export if it is complete (a cache hit), else None."""
    try:
        f = open(path, "rb")
    except OSError:
        return None
    try:
        if os.fstat(f.fileno()).st_size == size:
            return f
    except OSError:
        pass
    f.close()
    return None


def open_complete(name: str, fmt: str, size: int) -> BinaryIO | None:
    """The complete export if it exists already (a cache hit), else None."""
    return _open_complete(path_for(name, fmt, size), size)


STREAM_PIECE = 16 * 1024


def _tmp_path(final: str) -> str:
    """A private temp name next to the downloads, for one generation of ``final``."""
    return os.path.join(config.DOWNLOADS_DIR,
                        f".tmp-{os.path.basename(final)}-{secrets.token_hex(4)}")


def stream_while_writing(name: str, fmt: str, size: int) -> Iterator[bytes]:
    """Defect ``streamed_exports``: client first, then the file, piece by piece.

    A write error raises after the status line and some of the body were sent: the
    server can only drop the connection. The temp file is removed; the download is
    counted only when the whole export was sent and saved."""
    final = path_for(name, fmt, size)
    tmp = _tmp_path(final)
    f = open(tmp, "wb")
    try:
        for chunk in content(name, fmt, size):
            for i in range(0, len(chunk), STREAM_PIECE):
                piece = chunk[i:i + STREAM_PIECE]
                yield piece
                f.write(piece)
                f.flush()  # the bug: the error surfaces only after the piece was sent
        f.close()
        os.replace(tmp, final)
    except BaseException:
        try:
            f.close()
        except OSError:
            pass
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    db.count_download(name, fmt)
    log.info("served %s-%d.%s (%d bytes, streamed while generated)", name, size, fmt, size)


def _reserve_check(size: int) -> int:
    """Refuse if generating would eat into the reserve. Returns the bytes promised."""
    global _inflight_bytes
    st = os.statvfs(config.DOWNLOADS_DIR)
    bsize = st.f_frsize or 4096
    total = st.f_blocks * bsize
    free = st.f_bavail * bsize
    need = math.ceil(size / bsize) * bsize
    reserve = int(total * config.DOWNLOAD_RESERVE_PCT / 100)
    with _inflight_lock:
        left = free - _inflight_bytes - need
        if left < reserve or (st.f_files and st.f_favail < config.DOWNLOAD_RESERVE_INODES):
            raise Refused(
                f"not enough free space on {config.DOWNLOADS_DIR}: {free} bytes and "
                f"{st.f_favail} inodes free, {_inflight_bytes} bytes in use by other downloads, "
                f"this one needs {need} bytes "
                f"and {reserve} bytes ({config.DOWNLOAD_RESERVE_PCT:g}%) are kept free"
            )
        _inflight_bytes += need
    return need


def _release(need: int) -> None:
    global _inflight_bytes
    with _inflight_lock:
        _inflight_bytes -= need


def _generate_atomic(name: str, fmt: str, size: int, final: str) -> BinaryIO:
    tmp = _tmp_path(final)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        for chunk in content(name, fmt, size):
            view = memoryview(chunk)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        os.replace(tmp, final)  # fd stays valid even if the cleaner deletes `final` now
    except BaseException as exc:
        os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise GenerationFailed(f"could not generate {os.path.basename(final)}: {exc}") from exc
        raise
    f = os.fdopen(fd, "rb")
    f.seek(0)
    return f


def _generate_in_place(name: str, fmt: str, size: int, final: str) -> BinaryIO:
    # unbounded_downloads: straight into the final name; ENOSPC propagates (500) and
    # the partial file stays on the disk.
    f = open(final, "w+b")
    try:
        for chunk in content(name, fmt, size):
            f.write(chunk)
        f.flush()
    except BaseException:
        try:
            f.close()
        except OSError:
            pass
        raise
    f.seek(0)
    return f


def _generate_in_work_dir(name: str, fmt: str, size: int, final: str) -> BinaryIO:
    # stale_partial_exports: a leftover work file is taken for a finished generation.
    work = os.path.join(config.EXPORT_WORK_DIR, os.path.basename(final))
    try:
        if not os.path.exists(work):
            os.makedirs(config.EXPORT_WORK_DIR, exist_ok=True)
            with open(work, "wb") as out:
                for chunk in content(name, fmt, size):
                    out.write(chunk)
        shutil.move(work, final)  # another filesystem: copied, then the work file removed
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise GenerationFailed(f"could not generate {os.path.basename(final)}: {exc}") from exc
        raise
    return open(final, "rb")


def prepare(name: str, fmt: str, size: int) -> tuple[BinaryIO, bool]:
    """Open (hit) or generate (miss) the export. Returns (file, hit)."""
    final = path_for(name, fmt, size)
    f = _open_complete(final, size)
    if f is not None:
        return f, True
    if config.defect("unbounded_downloads"):
        f = _generate_in_place(name, fmt, size, final)
    else:
        need = _reserve_check(size)
        try:
            if config.defect("stale_partial_exports"):
                f = _generate_in_work_dir(name, fmt, size, final)
            else:
                f = _generate_atomic(name, fmt, size, final)
        finally:
            _release(need)
    log.info("generated %s (%d bytes)", os.path.basename(final), size)
    if config.defect("miscounted_downloads"):
        db.count_download(name, fmt)  # the bug: counted when generated, not when served
    return f, False


def stream(f: BinaryIO, name: str, fmt: str, size: int, hit: bool) -> Iterator[bytes]:
    """Yield the file; count the download only after the last byte was handed over."""
    sent = 0
    try:
        while sent < size:
            data = f.read(min(CHUNK, size - sent))
            if not data:
                break
            sent += len(data)
            yield data
        if sent == size:
            if not config.defect("miscounted_downloads"):
                db.count_download(name, fmt)
            log.info("served %s-%d.%s (%d bytes, %s)", name, size, fmt, size,
                     "cache hit" if hit else "generated")
        else:
            log.error("download %s-%d.%s cut short: %d of %d bytes", name, size, fmt, sent, size)
            # Raising makes the server drop the connection now; ending quietly would
            # leave the client (and nginx) waiting for the rest until a keep-alive timeout.
            raise OSError(f"export {name}-{size}.{fmt} ended after {sent} of {size} bytes")
    finally:
        f.close()
