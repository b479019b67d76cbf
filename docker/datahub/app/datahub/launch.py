"""``datahub-app``: check the defect switches, make sure the database exists, exec gunicorn."""
from __future__ import annotations

import os
import sys

from . import config  # noqa: F401  (exits 2 on an unknown defect)


def main() -> None:
    """Replace this process with gunicorn serving ``datahub.web:app``."""
    bind = os.environ.get("DATAHUB_BIND", "0.0.0.0:8000")
    # One worker, several threads: the in-process counters (log drops, pending db
    # increments) are then exact; downloads and sessions live on disk anyway.
    threads = os.environ.get("DATAHUB_THREADS", "8")
    argv = [
        "gunicorn", "--bind", bind, "--workers", "1", "--threads", threads,
        "--worker-class", "gthread", "--timeout", "60", "--graceful-timeout", "5",
        "--worker-tmp-dir", "/tmp", "--error-logfile", "-", "--log-level", "info",
        "--chdir", "/tmp", "datahub.web:app",
    ]
    sys.stdout.flush()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
