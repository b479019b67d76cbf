"""README's "Unit-level checks without Docker" examples, run as a team would copy them:
against a small Flask app of their own and its fulldisk.toml, in a real pytest session."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[2] / "README.md"

MYAPP = '''
import json, os, secrets
from flask import Flask, redirect, request

SESSIONS = "/var/lib/myapp/sessions"
BUGGY = False


def create_app():
    app = Flask("myapp")

    @app.post("/login")
    def login():
        sid = secrets.token_hex(16)
        try:
            with open(os.path.join(SESSIONS, sid), "w") as f:
                f.write(json.dumps({"user": request.form["user"], "pad": "x" * 5000}))
        except OSError as e:
            if not BUGGY:
                app.logger.error("could not save session: %s", e)
                return "could not save session", 503
        resp = redirect("/")
        resp.set_cookie("sid", sid)
        return resp

    @app.get("/")
    def home():
        try:
            with open(os.path.join(SESSIONS, request.cookies.get("sid", "none"))) as f:
                return f"Logged in as {json.load(f)['user']}"
        except (OSError, ValueError):
            return "Log in"

    return app
'''

TOML = '''
name = "myapp"

[services.web]
image = "myapp:latest"
ports = [8000]

[volumes.sessions]
size = "64KiB"
inodes = 64
mounts = [{ service = "web", path = "/var/lib/myapp/sessions" }]

[probes.login]
service = "web"
core = true

[[probes.login.steps]]
method = "POST"
path = "/login"
form = { user = "alice" }
expect_status = [302]
write = true

[[probes.login.steps]]
path = "/"
expect_text = "Logged in as alice"
readback = true

[[logs]]
kind = "container"
service = "web"
'''


def examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Unit-level checks without Docker\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_battery_example_is_ten_lines() -> None:
    battery_example = examples()[0]
    assert len([ln for ln in battery_example.splitlines() if ln.strip()]) <= 10


@pytest.mark.parametrize("buggy", [False, True], ids=["hardened", "swallows-enospc"])
def test_readme_examples_run_against_a_team_app(pytester: pytest.Pytester, buggy: bool) -> None:
    battery_example, disk_example = examples()
    pytester.makepyfile(myapp=MYAPP.replace("BUGGY = False", f"BUGGY = {buggy}"))
    pytester.makefile(".toml", fulldisk=TOML)
    pytester.makepyfile(test_battery_example=battery_example, test_disk_example=disk_example)
    r = pytester.runpytest("-p", "no:xdist", "-q")
    if buggy:
        r.assert_outcomes(passed=1, failed=1)
        r.stdout.fnmatch_lines(["*acknowledged write*lost silently*"])
    else:
        r.assert_outcomes(passed=2)
