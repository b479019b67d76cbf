"""The Flask app: home, login/logout, dataset pages, downloads, /health, /metrics."""
from __future__ import annotations

import html
import json
import logging
import os
import time
import traceback
from typing import TYPE_CHECKING, TypedDict

from flask import Flask, Response, g, redirect, request
from werkzeug.exceptions import HTTPException

from . import config, db, downloads, logsetup, render, sessions

if TYPE_CHECKING:
    from flask.typing import ResponseReturnValue
    from werkzeug.wrappers import Response as BaseResponse  # what redirect() returns

logsetup.setup(os.path.join(config.LOG_DIR, "app.log"),
               blackhole=config.defect("log_blackhole"), torn=config.defect("torn_logs"))
log = logging.getLogger("datahub")
db.ensure_db()

app = Flask("datahub")
try:  # never let Flask fall back to its own stderr handler
    from flask.logging import default_handler
    app.logger.removeHandler(default_handler)
except ImportError:  # pragma: no cover
    pass

log.info("datahub app starting (pid %d, defects: %s)", os.getpid(),
         ",".join(sorted(config.DEFECTS)) or "none")


def _page(title: str, body: str, status: int = 200, user: str | None = None) -> Response:
    nav = (f"Logged in as {html.escape(user)} | <a href=\"/logout\">Log out</a>" if user
           else "<a href=\"/login\">Log in</a>")
    doc = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>datahub: {html.escape(title)}</title></head>\n<body>\n"
        f"<header><a href=\"/\">datahub</a> | {nav}</header>\n"
        f"<main>\n{body}\n</main>\n</body></html>\n"
    )
    return Response(doc, status=status, mimetype="text/html")


def _fail(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error page; the after_request hook logs ``message`` at ERROR for status >= 500."""
    g.error = message
    resp = _page("error", f"<h1>{status}</h1>\n<p>{html.escape(message)}</p>", status=status)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _current_user() -> str | None:
    data = sessions.load(request.cookies.get(sessions.COOKIE))
    user = data.get("user") if data else None
    return user if isinstance(user, str) else None


@app.after_request
def _access_log(resp: Response) -> Response:
    path = request.full_path.rstrip("?") if request.query_string else request.path
    log.info("%s %s %d", request.method, path, resp.status_code)
    if resp.status_code >= 500:
        logging.getLogger("datahub.error").error(
            "%s %s %d: %s", request.method, path, resp.status_code,
            getattr(g, "error", None) or "(no detail)"
        )
    return resp


@app.errorhandler(Exception)
def _on_exception(exc: Exception) -> ResponseReturnValue:
    if isinstance(exc, HTTPException):
        return exc
    detail = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, OSError):
        detail += "\n" + traceback.format_exc()
    g.error = detail
    return _page("error", "<h1>500 Internal Server Error</h1>", status=500)


@app.route("/")
def home() -> Response:
    """The home page, greeting a logged-in user."""
    user = _current_user()
    body = ("<h1>datahub</h1>\n<p>Open data, searchable. Try "
            "<a href=\"/datasets/earthquakes\">earthquakes</a> or "
            "<a href=\"/datasets/mappluto-queens\">MapPLUTO Queens</a>.</p>")
    if user:
        body += f"\n<p>Welcome back, {html.escape(user)}.</p>"
    return _page("home", body, user=user)


@app.route("/login", methods=["GET"])
def login_form() -> Response:
    """The login form."""
    form = (
        "<h1>Log in</h1>\n<form method=\"post\" action=\"/login\">"
        "<input name=\"user\"> <input name=\"password\" type=\"password\"> "
        "<button>Log in</button></form>"
    )
    return _page("log in", form, user=_current_user())


@app.route("/login", methods=["POST"])
def login() -> BaseResponse:
    """Check the password, save a session and redirect home (503 if unsaved)."""
    user = request.form.get("user", "")
    password = request.form.get("password", "")
    if not db.check_user(user, password):
        log.info("login failed for %r", user)
        return _page("log in", "<h1>Invalid login</h1>\n"
                     "<p>Invalid login: unknown user or wrong password.</p>", status=401)
    sessions.gc()
    sid = sessions.new_id()
    try:
        sessions.save(sid, {"user": user, "created": int(time.time())})
    except sessions.SessionSaveError as exc:
        db.count("session_save_failures")
        return _fail(503, str(exc))
    log.info("login ok for %s", user)
    resp = redirect("/", code=302)
    resp.set_cookie(sessions.COOKIE, sid, httponly=True, samesite="Lax", path="/")
    return resp


@app.route("/logout")
def logout() -> BaseResponse:
    """Delete the session and the cookie."""
    sessions.delete(request.cookies.get(sessions.COOKIE))
    resp = redirect("/", code=302)
    resp.delete_cookie(sessions.COOKIE, path="/")
    return resp


@app.route("/datasets/<name>")
def dataset(name: str) -> Response:
    """A dataset page through the render cache."""
    if not downloads.NAME_RE.match(name):
        return _page("not found", "<h1>404</h1>", status=404)
    try:
        page, how = render.get_page(name)
    except render.CacheWriteError as exc:
        g.error = str(exc)
        return _page("error", "<h1>500 Internal Server Error</h1>", status=500)
    resp = Response(page, mimetype="text/html")
    resp.headers["X-Datahub-Cache"] = how
    return resp


@app.route("/datasets/<name>/download")
def download(name: str) -> Response:
    """An export of the dataset: generated or reused, refused with 507 when short of space."""
    fmt = request.args.get("format", "csv")
    if not downloads.NAME_RE.match(name) or fmt not in downloads.FORMATS:
        return _page("bad request",
                     "<h1>400</h1><p>unknown dataset name or format (csv, geojson)</p>", status=400)
    try:
        size = int(request.args.get("size") or config.DOWNLOAD_DEFAULT_SIZES[fmt])
    except ValueError:
        size = -1
    if not 1 <= size <= config.DOWNLOAD_MAX_SIZE:
        return _page("bad request",
                     f"<h1>400</h1><p>size must be 1..{config.DOWNLOAD_MAX_SIZE}</p>", status=400)
    if config.defect("streamed_exports"):
        f = downloads.open_complete(name, fmt, size)
        if f is None:
            # the bug: the 200 and the first bytes go out before the file is written
            resp = Response(downloads.stream_while_writing(name, fmt, size),
                            mimetype=downloads.FORMATS[fmt], direct_passthrough=True)
            resp.headers["Content-Length"] = str(size)
            resp.headers["Content-Disposition"] = f"attachment; filename={name}.{fmt}"
            resp.headers["X-Datahub-Cache"] = "miss"
            return resp
    try:
        f, hit = downloads.prepare(name, fmt, size)
    except downloads.Refused as exc:
        db.count("downloads_refused")
        logging.getLogger("datahub.downloads").warning(
            "download refused (507 Insufficient Storage, disk full below reserve): %s", exc)
        return _fail(507, f"download refused: {exc}; retry later", {"Retry-After": "30"})
    except downloads.GenerationFailed as exc:
        db.count("downloads_refused")
        return _fail(507, str(exc), {"Retry-After": "30"})
    resp = Response(downloads.stream(f, name, fmt, size, hit), mimetype=downloads.FORMATS[fmt],
                    direct_passthrough=True)
    resp.headers["Content-Length"] = str(size)
    resp.headers["Content-Disposition"] = f"attachment; filename={name}.{fmt}"
    resp.headers["X-Datahub-Cache"] = "hit" if hit else "miss"
    return resp


class Usage(TypedDict):
    """One writable path's space, as /health reports it."""

    free_bytes: int
    total_bytes: int
    free_inodes: int
    total_inodes: int
    used_pct: float
    inodes_used_pct: float


def _usage(path: str) -> Usage:
    st = os.statvfs(path)
    bsize = st.f_frsize or 4096
    total, free = st.f_blocks * bsize, st.f_bavail * bsize
    used_pct = 100.0 * (total - free) / total if total else 0.0
    inodes_used_pct = 100.0 * (st.f_files - st.f_favail) / st.f_files if st.f_files else 0.0
    return {
        "free_bytes": free,
        "total_bytes": total,
        "free_inodes": st.f_favail,
        "total_inodes": st.f_files,
        "used_pct": round(used_pct, 2),
        "inodes_used_pct": round(inodes_used_pct, 2),
    }


@app.route("/health")
def health() -> Response:
    """Every writable path's space: ok, degraded or failing (503)."""
    if config.defect("blind_health"):
        return Response(json.dumps({"status": "ok"}) + "\n", mimetype="application/json")
    status = "ok"
    paths: dict[str, Usage] = {}
    reasons: list[str] = []
    for label, path in config.WRITABLE_PATHS.items():
        try:
            u = _usage(path)
        except OSError as exc:
            status = "failing"
            reasons.append(f"{label} {path}: cannot stat: {exc}")
            continue
        paths[path] = u
        no_inodes = u["total_inodes"] > 0 and u["free_inodes"] == 0
        if u["free_bytes"] < config.HEALTH_MIN_FREE_BYTES or no_inodes:
            status = "failing"
            reasons.append(f"{label} {path} is full: "
                           f"{u['free_bytes']} bytes, {u['free_inodes']} inodes free")
        elif max(u["used_pct"], u["inodes_used_pct"]) > config.HEALTH_DEGRADED_PCT:
            if status == "ok":
                status = "degraded"
            reasons.append(
                f"{label} {path} above {config.HEALTH_DEGRADED_PCT:g}%: "
                f"{u['used_pct']}% of bytes, {u['inodes_used_pct']}% of inodes used"
            )
    body = {"status": status, "paths": paths, "reasons": reasons, "defects": sorted(config.DEFECTS)}
    return Response(json.dumps(body) + "\n", status=503 if status == "failing" else 200,
                    mimetype="application/json")


METRICS = [
    ("downloads_served", "Downloads served in full (the download counter)."),
    ("downloads_refused", "Downloads refused or failed for lack of space (507)."),
    ("log_records_dropped",
     "Log records that could not be written to the log file (this process)."),
    ("session_save_failures", "Logins whose session could not be saved."),
]


@app.route("/metrics")
def metrics() -> Response:
    """The counters in Prometheus text format."""
    values, errors = db.read_counters()
    values["log_records_dropped"] = logsetup.dropped_total()
    lines: list[str] = []
    for name, help_text in METRICS:
        lines += [f"# HELP datahub_{name}_total {help_text}",
                  f"# TYPE datahub_{name}_total counter",
                  f"datahub_{name}_total {values.get(name, 0)}"]
    for e in errors:
        lines.append("# error: " + e.replace("\n", " "))
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")


@app.errorhandler(404)
def _not_found(exc: HTTPException) -> Response:
    return _page("not found", "<h1>404 Not Found</h1>", status=404)


@app.errorhandler(405)
def _not_allowed(exc: HTTPException) -> Response:
    return _page("method not allowed", "<h1>405 Method Not Allowed</h1>", status=405)
