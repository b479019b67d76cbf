"""The reference app (``docker/datahub/app``) in this process, for the in-process battery.

The Flask app reads its defect switches and paths from the environment at import, so
each build is a fresh import with its own environment. Its SQLite database is written
by a C extension that pyfakefs cannot see: it lives in a real temporary folder
(:meth:`~harness.fakedisk.FakeDisks.real_dir`), outside the in-process battery.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable

from .fakedisk import FakeDisks
from .inprocess import WSGIApp
from .target import reference_stack_dir

APP_DIR = reference_stack_dir() / "datahub" / "app"
SERVICE = "app"
VOLUMES = ("sessions", "cache", "downloads", "applogs")
"""Volumes the app writes from Python (db is SQLite, weblogs is nginx's)."""
DEFECTS = ("silent_sessions", "log_blackhole", "poisoned_cache", "blind_health",
           "miscounted_downloads", "streamed_exports", "torn_logs")
"""Switches whose bug lives in the app's Python code: the in-process battery catches each
with the invariant that catches it in containers (those this build of the app knows)."""
NOT_IN_PROCESS = {
    "unbounded_downloads": "needs every path on one shared disk filled by the download "
                           "load, with the cleaner process paused: the container battery",
    "lazy_cleanup": "the bug is in the cleaner, another process: the container battery",
    "stale_partial_exports": "an order of events, found by `fulldisk explore`, not by the "
                             "battery",
}
"""Switches the in-process battery does not judge, and where they are caught instead."""


def known_defects() -> tuple[str, ...]:
    """The switches this build of the app knows (its ``KNOWN_DEFECTS``, read as text)."""
    text = (APP_DIR / "datahub" / "config.py").read_text(encoding="utf-8")
    block = re.search(r"KNOWN_DEFECTS = \((.*?)\)", text, re.S)
    return tuple(re.findall(r'"([a-z_]+)"', block.group(1))) if block else ()


def datahub_app(disks: FakeDisks, defects: Iterable[str] = ()) -> WSGIApp:
    """A fresh import of the datahub Flask app with these defect switches on."""
    env = {"DATAHUB_DEFECTS": ",".join(defects), "DATAHUB_DB_DIR": disks.real_dir()}
    saved = {k: os.environ.get(k) for k in env}
    for name in [m for m in sys.modules if m == "datahub" or m.startswith("datahub.")]:
        del sys.modules[name]
    os.environ.update(env)
    sys.path.insert(0, str(APP_DIR))
    try:
        from datahub.web import app
    finally:
        sys.path.remove(str(APP_DIR))
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return app
