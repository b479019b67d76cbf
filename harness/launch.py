"""The ``fulldisk`` console script: process-wide settings made before the CLI loads.

Loading the CLI and its libraries makes some 80,000 objects that live as long as the
process; with the collector's default threshold (a collection every 700 new objects)
they are traversed again and again while they are made: 40 ms of a 0.8 s ``fulldisk
run``. A CLI process owns its interpreter, so it raises the threshold (a library import
never does); a long run still collects, every 100,000 new objects.
"""

from __future__ import annotations

import gc
import os
from typing import NoReturn

GC_THRESHOLD = (100_000, 10, 10)  # new objects between collections of the youngest
                                  # generation; the older two as by default


def main() -> NoReturn:
    """Set the collector's threshold, then run ``harness.cli.entry``."""
    gc.set_threshold(*GC_THRESHOLD)
    from . import signals

    signals.install()  # a stop while the CLI loads: nothing made yet, one line, exit 130
    try:
        from .cli import entry
    except KeyboardInterrupt:
        os.write(2, b"fulldisk: error: interrupted before it started; nothing was made\n")
        os._exit(130)
    entry()
