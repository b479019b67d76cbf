"""Dataset pages, rendered through an on-disk cache in /var/cache/datahub.

A page is ~15 KiB and the dataset's name first appears after the first 8 KiB (a long
<head>), so an entry cut at a page boundary lacks the name.

Hardened: entries are written to a temp file and renamed; a read checks the end
marker and treats a partial entry as a miss. A failed cache write is logged and the
freshly rendered page is served anyway.

Defect ``poisoned_cache`` (Twig/Symfony-style cache written in place): ``open(path,
'w')`` and the page written in chunks (a 512-byte header first, flushed); on ENOSPC
the request fails (500) and the truncated entry stays; later reads serve whatever is
there, unchecked.
"""
from __future__ import annotations

import hashlib
import html
import logging
import os
import secrets

from . import config

log = logging.getLogger("datahub.cache")

END_MARKER = "<!-- end datahub -->\n"
HEAD_MIN = 8192 + 512  # the name appears only after the first two 4 KiB pages

_STYLE_RULES = [
    "body { font-family: Helvetica, Arial, sans-serif; margin: 0; color: #222; "
    "background: #fafafa; }",
    "header.top { background: #20344f; color: #fff; padding: 0.6em 1.2em; }",
    "header.top a { color: #cde; text-decoration: none; margin-right: 1em; }",
    "main { max-width: 60em; margin: 1.5em auto; padding: 0 1em; }",
    "table.rows { border-collapse: collapse; width: 100%; font-size: 0.9em; }",
    "table.rows th { text-align: left; border-bottom: 2px solid #999; padding: 0.2em 0.4em; }",
    "table.rows td { border-bottom: 1px solid #ddd; padding: 0.2em 0.4em; }",
    "table.rows tr:nth-child(even) td { background: #f0f3f7; }",
    "ul.columns li { display: inline-block; margin: 0 0.8em 0.4em 0; padding: 0.1em 0.5em; "
    "background: #e6ecf3; }",
    "footer { color: #777; font-size: 0.8em; margin: 2em auto; max-width: 60em; }",
    ".meta dt { font-weight: bold; } .meta dd { margin: 0 0 0.5em 1em; }",
    ".badge { display: inline-block; padding: 0 0.4em; border-radius: 3px; background: #8a3; "
    "color: #fff; }",
]


BOROUGHS = ("Queens", "Staten Island", "Brooklyn", "Bronx", "Manhattan")


def _style_block() -> str:
    lines = ["<style>"]
    i = 0
    while sum(len(x) + 1 for x in lines) < HEAD_MIN:
        rule = _STYLE_RULES[i % len(_STYLE_RULES)]
        lines.append(f"/* {i:03d} */ {rule}")
        i += 1
    lines.append("</style>")
    return "\n".join(lines) + "\n"


STYLE = _style_block()
HEADER = (
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<title>datahub: dataset</title>\n"
)


def render_chunks(name: str) -> list[str]:
    """The page as chunks: [512-byte header, style, body parts..., end marker]."""
    h = html.escape(name)
    seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    columns = ["id", "lat", "lon", "depth_km", "magnitude", "borough", "block", "lot", "updated"]
    first = HEADER + "<!-- " + "~" * max(0, 512 - len(HEADER) - 9) + " -->\n"
    chunks = [first[:512].ljust(512), STYLE, "</head>\n<body>\n"]
    chunks.append(
        "<header class=\"top\"><a href=\"/\">datahub</a><a href=\"/login\">Log in</a></header>\n"
        f"<main>\n<h1>Dataset {h}</h1>\n"
        f"<dl class=\"meta\"><dt>name</dt><dd>{h}</dd>"
        f"<dt>rows</dt><dd>{1000 + seed % 90000}</dd></dl>\n"
        "<ul class=\"columns\">" + "".join(f"<li>{c}</li>" for c in columns) + "</ul>\n"
        f"<p><a href=\"/datasets/{h}/download?format=csv\">CSV</a> | "
        f"<a href=\"/datasets/{h}/download?format=geojson\">GeoJSON</a></p>\n"
    )
    rows = ["<table class=\"rows\">\n<tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>\n"]
    for r in range(40):
        v = (seed * (r + 7)) % 1000003
        rows.append(
            f"<tr><td>{r + 1}</td><td>{40 + v % 1000 / 1000:.3f}</td>"
            f"<td>{-74 + v % 997 / 1000:.3f}</td>"
            f"<td>{v % 700 / 10:.1f}</td><td>{v % 80 / 10:.1f}</td><td>{BOROUGHS[v % 5]}</td>"
            f"<td>{v % 9000}</td><td>{v % 120}</td><td>2013-09-0{1 + v % 2}</td></tr>\n"
        )
    rows.append("</table>\n")
    chunks.append("".join(rows[:21]))
    chunks.append("".join(rows[21:]))
    chunks.append(f"</main>\n<footer>datahub: {h}</footer>\n</body>\n</html>\n")
    chunks.append(END_MARKER)
    return chunks


def _entry_path(name: str) -> str:
    return os.path.join(config.CACHE_DIR, f"{name}.html")


class CacheWriteError(Exception):
    """A cache entry could not be written (poisoned_cache: the request fails)."""


def get_page(name: str) -> tuple[str, str]:
    """(html, 'hit'|'miss'). Raises CacheWriteError only in the poisoned_cache defect."""
    path = _entry_path(name)
    poisoned = config.defect("poisoned_cache")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            cached = f.read()
    except OSError:
        cached = None
    if cached is not None:
        if poisoned:
            return cached, "hit"  # the bug: no validation
        if cached.endswith(END_MARKER):
            return cached, "hit"
        log.warning("cache entry %s is incomplete (%d bytes): re-rendering", path, len(cached))
    chunks = render_chunks(name)
    page = "".join(chunks)
    if poisoned:
        _write_in_place(path, chunks)
    else:
        try:
            _write_atomic(path, page)
        except OSError as exc:
            log.error("cannot write cache entry %s: %s (serving the page uncached)", path, exc)
    return page, "miss"


def _write_in_place(path: str, chunks: list[str]) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            for chunk in chunks:
                f.write(chunk)
                f.flush()
    except OSError as exc:
        raise CacheWriteError(f"Unable to write in the cache directory ({path}): {exc}") from exc


def _write_atomic(path: str, page: str) -> None:
    data = page.encode("utf-8")
    tmp = f"{path}.tmp-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except OSError:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
