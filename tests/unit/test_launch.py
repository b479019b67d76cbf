"""The console script ends without the interpreter's teardown: its output, its exit code
and its exit handlers must survive that, and a library import must not change the
collector's settings."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = ("import atexit, sys; sys.argv = ['fulldisk', *sys.argv[1:]]; "
          "atexit.register(lambda: print('exit handler ran', flush=True)); "
          "from harness.launch import main; main()")


def launch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True,
                          text=True, timeout=60)


def test_output_exit_code_and_exit_handlers_survive_the_fast_exit() -> None:
    ok = launch("parse-size", "1KiB")
    assert (ok.returncode, ok.stdout) == (0, "1024\nexit handler ran\n"), ok.stderr
    bad = launch("parse-size", "12XB")
    assert bad.returncode == 2 and bad.stderr.startswith("fulldisk: error:"), bad.stderr
    assert "Traceback" not in bad.stderr and "exit handler ran" in bad.stdout


def test_the_installed_console_script_is_the_launcher() -> None:
    script = Path(sys.executable).parent / "fulldisk"
    assert "harness.launch" in script.read_text()
    out = subprocess.run([str(script), "parse-size", "2KiB"], capture_output=True, text=True,
                         timeout=60)
    assert (out.returncode, out.stdout) == (0, "2048\n"), out.stderr


def test_only_the_console_script_raises_the_collectors_threshold() -> None:
    import gc

    import harness.cli  # noqa: F401  (a library import)
    from harness.launch import GC_THRESHOLD

    assert gc.get_threshold() != GC_THRESHOLD
