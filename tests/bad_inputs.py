"""Bad inputs and faults as a new user meets them, run through the real CLI.

Each case is one command line (with a config file and environment where it needs them)
and the exit code and words its one-line message must have. ``tests/docker/test_bad_inputs.py``
runs them; run this file to write the table of what each one printed::

    FULLDISK_DATAHUB_TAG=dev .venv/bin/python tests/bad_inputs.py --out inputs.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

FULLDISK = [sys.executable, "-c", "from harness.cli import main; main()"]
DOWN = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}

# A small valid target every config case edits (it never starts: the edit is refused).
GOOD = """\
name = "shop"
[services.web]
image = "shop:1"
ports = [8080]
[volumes.uploads]
size = "1MiB"
owner = "1000:1000"
mounts = [{ service = "web", path = "/srv/uploads" }]
[probes.home]
service = "web"
core = true
steps = [{ path = "/" }]
"""

# (what, old, new, key the message names, words it has): checked when a config is loaded.
CONFIG_CASES: list[tuple[str, str, str, str, str]] = [
    ("ready path without slash", "ports = [8080]", 'ports = [8080]\nready = { http = "health" }',
     "services.web.ready.http", "must start with '/'"),
    ("ready bad regex", "ports = [8080]", 'ports = [8080]\nready = { log = "Serving[" }',
     "services.web.ready.log", "bad regex"),
    ("ready with neither", "ports = [8080]", "ports = [8080]\nready = { timeout = 5 }",
     "services.web.ready", "exactly one of 'http'"),
    ("ready port not published", "ports = [8080]",
     'ports = [8080]\nready = { http = "/", port = 81 }', "services.web.ready", "port 81"),
    ("depends on itself", "ports = [8080]", 'ports = [8080]\ndepends_on = ["web"]',
     "services.web.depends_on", "itself"),
    ("depends_on cycle", "[volumes.uploads]",
     '[services.a]\nimage = "i"\ndepends_on = ["b"]\n[services.b]\nimage = "i"\n'
     'depends_on = ["a"]\n[volumes.uploads]', "services", "cycle"),
    ("depends_on unknown service", "ports = [8080]", 'ports = [8080]\ndepends_on = ["db"]',
     "services.web.depends_on", "unknown service 'db'"),
    ("no ports with probes", "ports = [8080]", "ports = []", "probes.home",
     "publishes no ports; add the port"),
    ("duplicate ports", "ports = [8080]", "ports = [8080, 8080]", "services.web.ports",
     "listed twice"),
    ("port above 65535", "ports = [8080]", "ports = [70000]", "services.web.ports",
     "outside 1-65535"),
    ("mount on /", 'path = "/srv/uploads"', 'path = "/"', "mounts[0].path", "system folder"),
    ("mount under /proc", 'path = "/srv/uploads"', 'path = "/proc/x"', "mounts[0].path",
     "system folder"),
    ("mount on /etc/", 'path = "/srv/uploads"', 'path = "/etc/"', "mounts[0].path",
     "system folder"),
    ("mount under /dev", 'path = "/srv/uploads"', 'path = "/dev/shm"', "mounts[0].path",
     "system folder"),
    ("same path twice (/x and /x/)", 'path = "/srv/uploads" }',
     'path = "/srv/uploads" }, { service = "web", path = "/srv/uploads/" }',
     "volumes.uploads.mounts", "already mounted"),
    ("relative mount path", 'path = "/srv/uploads"', 'path = "srv/uploads"',
     "mounts[0].path", "absolute"),
    ("mount path with ..", 'path = "/srv/uploads"', 'path = "/srv/../etc"',
     "mounts[0].path", "without '..'"),
    ("owner uid above 2^32", 'owner = "1000:1000"', 'owner = "4294967296:1000"',
     "volumes.uploads.owner", "4294967294"),
    ("owner not numeric", 'owner = "1000:1000"', 'owner = "www-data"', "volumes.uploads.owner",
     "uid:gid"),
    ("user uid above 2^32", "ports = [8080]", 'ports = [8080]\nuser = "99999999999"',
     "services.web.user", "largest uid"),
    ("size zero", 'size = "1MiB"', 'size = "0"', "volumes.uploads.size", "unlimited"),
    ("size one byte", 'size = "1MiB"', "size = 1", "volumes.uploads.size", "4096-byte page"),
    ("size 16 bytes", 'size = "1MiB"', 'size = "16"', "volumes.uploads.size", "page"),
    ("size 99999TiB", 'size = "1MiB"', 'size = "99999TiB"', "volumes", "live in RAM"),
    ("size not a size", 'size = "1MiB"', 'size = "12XB"', "volumes.uploads.size", "not a size"),
    ("size negative", 'size = "1MiB"', "size = -5", "volumes.uploads.size", "not a size"),
    ("inodes below 16", 'size = "1MiB"', 'size = "1MiB"\ninodes = 3', "volumes.uploads.inodes",
     "16"),
    ("mode not octal", 'size = "1MiB"', 'size = "1MiB"\nmode = "999"', "volumes.uploads.mode",
     "octal"),
    ("volume named shared", "[volumes.uploads]", "[volumes.shared]", "volumes.shared",
     "rename the volume"),
    ("service named agent", "[services.web]", "[services.agent]", "services.agent",
     "rename the service"),
    ("name with capitals", "[volumes.uploads]", "[volumes.Uploads]", "volumes", "lowercase"),
    ("status never possible", 'path = "/" }', 'path = "/", expect_status = [999] }',
     "probes.home.steps[0].expect_status", "could never pass"),
    ("placeholder never captured", 'path = "/" }', 'path = "/x/{token}" }',
     "probes.home.steps[0]", "{token} is never captured"),
    ("capture regex without a group", 'path = "/" }', 'path = "/", capture = { t = "x" } }',
     "probes.home.steps[0].capture", "one group"),
    ("probe to another host", 'path = "/" }', 'path = "http://10.0.0.1/" }',
     "probes.home.steps[0].path", "127.0.0.1"),
    ("readback before any write", 'path = "/" }', 'path = "/", readback = true }',
     "probes.home", "readback"),
    ("path set in the config (the loader's)", 'name = "shop"',
     'name = "shop"\npath = "/etc/other.toml"', "path", "unknown key 'path'; accepted here"),
    ("root set in the config (the loader's)", 'name = "shop"', 'name = "shop"\nroot = "/"',
     "root", "unknown key 'root'; accepted here"),
    ("download size not a size", "[probes.home]",
     '[downloads]\nprobe = "home"\nvolume = "uploads"\nsizes = ["64KiB", "lots"]\n'
     "[probes.home]", "downloads.sizes", "'lots' is not a size"),
    ("http probe without steps", 'steps = [{ path = "/" }]', "steps = []", "probes.home",
     "at least one"),
    ("unknown HTTP method", 'path = "/" }', 'path = "/", method = "FETCH" }',
     "probes.home.steps[0].method", "GET"),
    ("exec probe without command", 'steps = [{ path = "/" }]', 'kind = "exec"',
     "probes.home", "needs 'command'"),
    ("expect_exit above 255", "[probes.home]",
     '[probes.ex]\nkind = "exec"\nservice = "web"\ncommand = ["true"]\nexpect_exit = 300\n'
     "[probes.home]", "probes.ex.expect_exit", "255"),
    ("probe port not published", "core = true", "core = true\nport = 9999", "probes.home",
     "port 9999"),
    ("health path without slash", "[probes.home]",
     '[health]\nservice = "web"\npath = "health"\n[probes.home]', "health.path", "'/'"),
    ("log path with ..", "[probes.home]",
     '[[logs]]\nkind = "file"\nvolume = "uploads"\npath = "../../../etc/shadow"\n'
     "[probes.home]", "logs[0]", "'..'"),
    ("log path absolute in a volume", "[probes.home]",
     '[[logs]]\nkind = "file"\nvolume = "uploads"\npath = "/app.log"\n[probes.home]',
     "logs[0]", "absolute"),
    ("log line_pattern bad regex", "[probes.home]",
     '[[logs]]\nkind = "container"\nservice = "web"\nline_pattern = "(("\n[probes.home]',
     "logs[0]", "bad regex"),
    ("missing build context", "ports = [8080]", 'ports = [8080]\nbuild = "no-such-dir"',
     "services.web.build", "not a folder"),
    ("counter with metric and json_field", "[probes.home]",
     '[counters.c]\nservice = "web"\nmetric = "m"\njson_field = "f"\ncounts = "home"\n'
     "[probes.home]", "counters.c", "exactly one"),
    ("cleanup without downloads", "[probes.home]",
     '[cleanup]\nvolume = "uploads"\n[probes.home]', "cleanup", "[downloads]"),
    ("cleanup ceiling 150%", "[probes.home]",
     '[cleanup]\nvolume = "uploads"\nceiling = "150%"\n[downloads]\nprobe = "home"\n'
     'volume = "uploads"\n[probes.home]', "cleanup.ceiling", "150"),
    ("unknown key (typo)", "core = true", "cor = true", "probes.home.cor",
     "unknown keys are refused"),
    ("missing name", 'name = "shop"\n', "", "name", "add this key"),
    ("env default makes a bad size", 'size = "1MiB"', 'size = "${FULLDISK_NO_SUCH_VAR:-huge}"',
     "volumes.uploads.size", "not a size"),
    # issue 23: inputs that gave a traceback, a wrong exit code or a nonsense verdict
    ("service name ends in a newline", "[services.web]", '[services."web\\n"]', "services",
     "lowercase"),
    ("request_timeout negative", "[probes.home]", "[bounds]\nrequest_timeout = -1\n"
     "[probes.home]", "bounds.request_timeout", "greater than 0"),
    ("recovery_seconds nan", "[probes.home]", "[bounds]\nrecovery_seconds = nan\n"
     "[probes.home]", "bounds.recovery_seconds", "finite"),
    ("error_record_seconds inf", "[probes.home]", "[bounds]\nerror_record_seconds = inf\n"
     "[probes.home]", "bounds.error_record_seconds", "finite"),
    ("empty target name", 'name = "shop"', 'name = ""', "name", "name is empty"),
    ("image not a reference", 'image = "shop:1"', 'image = "Bad Image!"', "services.web.image",
     "not an image reference"),
    ("image from an unset variable", 'image = "shop:1"', 'image = "${FULLDISK_NO_SUCH_VAR}"',
     "services.web.image", "${FULLDISK_NO_SUCH_VAR} is not set"),
    ("unset variable in an env value", "ports = [8080]",
     'ports = [8080]\nenv = { A = "x${FULLDISK_NO_SUCH_VAR}y" }', "services.web.env.A",
     "is not set"),
    ("size of 400 digits", 'size = "1MiB"', f'size = "{"9" * 400}"', "volumes.uploads.size",
     "too large"),
    ("body_size above 16 MiB", 'path = "/" }', 'path = "/", method = "PUT", body_size = "1GiB" }',
     "probes.home.steps[0].body_size", "16 MiB"),
    ("log file is a device", "[probes.home]",
     '[[logs]]\nkind = "file"\nservice = "web"\npath = "/dev/zero"\n[probes.home]', "logs[0]",
     "kernel file"),
    ("log file is a folder", "[probes.home]",
     '[[logs]]\nkind = "file"\nservice = "web"\npath = "/usr/lib/"\n[probes.home]', "logs[0]",
     "folder"),
    ("2000-deep nested array", 'name = "shop"', 'x = ' + "[" * 2000 + "]" * 2000 +
     '\nname = "shop"', "", "nested too deep"),
]


@dataclass
class Case:
    """One input: a command line, its files and environment, and what must come out."""

    kind: str
    what: str
    args: list[str]
    code: int
    words: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    docker: bool = False  # needs a Docker engine
    signal_at: str | None = None  # hold the run in this phase and send SIGINT/SIGTERM
    signal: int = signal.SIGINT
    within: float | None = None  # seconds the whole command may take (a bound it must keep)
    signals: int = 1  # signals sent: ``signal``, then Ctrl-C for the rest (0.2 s apart)
    report: bool = True  # run/gate: a report.json whose status and exit match the exit code
    unchanged: tuple[str, ...] = ()  # files of the case that must be left as they were
    absent: tuple[str, ...] = ()  # files that must not exist afterwards
    tmpfs: str | None = None  # a folder of the case mounted as a 64 KiB tmpfs (root only)
    never: str = ""  # words that must not be in the output (what must not have happened)


def _datahub_image() -> str:
    return f"fulldisk/datahub:{os.environ.get('FULLDISK_DATAHUB_TAG', 'dev')}"


def _http_target(probe: str) -> str:
    return (f'name = "x"\n[services.app]\nimage = "{_datahub_image()}"\n'
            'command = ["datahub-app"]\nuser = "1000:1000"\nports = [8000]\n'
            'ready = { http = "/health", timeout = 30 }\n'
            '[volumes.scratch]\nsize = "256KiB"\nowner = "1000:1000"\n'
            'mounts = [{ service = "app", path = "/srv/scratch" }]\n'
            f'[probes.p]\nservice = "app"\n{probe}\n')


def _base_target(service: str = 'command = ["sleep", "infinity"]',
                 probe: str = 'kind = "exec"\ncommand = ["true"]',
                 mount: str = "/data", size: str = "256KiB") -> str:
    return (f'name = "x"\n[services.a]\nimage = "fulldisk/base:bookworm"\n{service}\n'
            f'[volumes.v]\nsize = "{size}"\nmounts = [{{ service = "a", path = "{mount}" }}]\n'
            f'[probes.p]\nservice = "a"\n{probe}\n')


# A server on port 8000 of the datahub image (it has python3) that answers every request
# the way argv[1] says: "trickle" (status line and headers a byte every 0.5 s, never done),
# "hints" (103 Early Hints, then 200 "ok"), "aaa" (200 with a line of 40 a's).
_ODD_SERVER = """\
import socket, sys, time
mode = sys.argv[1]
srv = socket.create_server(("", 8000))
print("serving", flush=True)
while True:
    c, _ = srv.accept()
    try:
        c.settimeout(5)
        got = b""
        while b"\\r\\n\\r\\n" not in got and len(got) < 1 << 20:
            got += c.recv(65536) or b"\\r\\n\\r\\n"
        if mode == "trickle":
            for b in b"HTTP/1.1 200 OK\\r\\nX-Slow: " + b"a" * 200:
                c.sendall(bytes([b]))
                time.sleep(0.5)
        body = b"a" * 40 + b"\\n" if mode == "aaa" else b"ok"
        early = b"HTTP/1.1 103 Early Hints\\r\\nLink: </s>\\r\\n\\r\\n" if mode == "hints" else b""
        c.sendall(early + b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n"
                  b"Connection: close\\r\\n\\r\\n" % len(body) + body)
    except OSError:
        pass
    c.close()
"""


def _odd_target(mode: str, probe: str, ready: str = 'ready = { log = "serving", timeout = 30 }'
                ) -> str:
    """A target whose one service is _ODD_SERVER in the given mode."""
    return (f'name = "x"\n[services.app]\nimage = "{_datahub_image()}"\n'
            f"command = ['python3', '-c', '''{_ODD_SERVER}''', '{mode}']\n"
            f'user = "1000:1000"\nports = [8000]\n{ready}\n'
            '[volumes.scratch]\nsize = "256KiB"\nowner = "1000:1000"\n'
            'mounts = [{ service = "app", path = "/srv/scratch" }]\n'
            f'[probes.p]\nservice = "app"\n{probe}\n')


def cases() -> list[Case]:
    """Every case, config edits first, then the command line, then faults on Docker."""
    out: list[Case] = []
    for what, old, new, _key, words in CONFIG_CASES:
        out.append(Case("config", what, ["run", "--target", "fulldisk.toml"], 2, words,
                        {"fulldisk.toml": GOOD.replace(old, new, 1)}))
    sleeper = 'command = ["sleep", "infinity"]'
    out += [
        Case("config", "not TOML", ["list", "-t", "fulldisk.toml"], 2, "not valid TOML",
             {"fulldisk.toml": "name = \n"}),
        Case("config", "BOM at the start (accepted)", ["list", "-t", "fulldisk.toml"], 0,
             "target shop", {"fulldisk.toml": b"\xef\xbb\xbf" + GOOD.encode()}),
        Case("config", "config file missing", ["run", "--target", "nope.toml"], 2,
             "no such file"),
        Case("config", "pyproject without [tool.fulldisk]", ["list", "-t", "pyproject.toml"], 2,
             "tool.fulldisk", {"pyproject.toml": "[tool.other]\nx = 1\n"}),
        Case("config", "folder without fulldisk.toml", ["list", "-t", "."], 2, "no such file"),
        Case("config", "not UTF-8", ["list", "-t", "fulldisk.toml"], 2, "cannot read",
             {"fulldisk.toml": b"name = \"\xff\xfe\"\n"}),
        Case("usage", "unknown command", ["bogus"], 2, "No such command"),
        Case("usage", "unknown flag", ["run", "--bogus-flag"], 2, "No such option",
             report=False),  # refused by the parser: before any --report-dir is known
        Case("usage", "-n out of range", ["gate", "-n", "99"], 2, "-n",
             report=False),  # refused by the parser: before any --report-dir is known
        Case("usage", "-n not a number", ["run", "-n", "zero"], 2, "zero",
             report=False),  # refused by the parser: before any --report-dir is known
        Case("usage", "demo size not a size", ["demo", "--size", "12XB"], 2, "12XB"),
        Case("usage", "demo size below a page", ["demo", "--size", "100"], 2, "page"),
        Case("usage", "demo size of 400 digits", ["demo", "--size", "9" * 400], 2, "too large"),
        Case("config", "$${ is a literal ${ (accepted)", ["list", "-t", "fulldisk.toml"], 0,
             "target shop", {"fulldisk.toml": GOOD.replace(
                 "ports = [8080]", 'ports = [8080]\nenv = { A = "$${HOME}" }')}),
        Case("usage", "demo inodes below 16", ["demo", "--inodes", "3"], 2, "16<=x"),
        Case("usage", "unknown defect switch", ["selftest", "--only", "bogus"], 2,
             "unknown defect"),
        Case("usage", "clean --run without a value", ["clean", "--run"], 2, "--run"),
        Case("output", "--json is a folder", ["run", "--json", "out"], 2, "is a folder",
             {"out/keep": ""}),
        Case("output", "--json under a missing folder", ["run", "--json", "no/such/r.json"], 2,
             "does not exist"),
        Case("output", "--report-dir is a file", ["run", "--report-dir", "afile"], 2,
             "is a file", {"afile": "x"}, report=False),
        Case("output", "explore --report-dir is a file (F04)",
             ["explore", "--report-dir", "afile"], 2, "is a file", {"afile": "x"},
             report=False),
        Case("output", "--junit is a folder", ["gate", "--junit", "out"], 2, "is a folder",
             {"out/keep": ""}),
        Case("output", "selftest --json is a folder", ["selftest", "--json", "out"], 2,
             "is a folder", {"out/keep": ""}),
        Case("docker", "no engine: doctor", ["doctor"], 3, "No Docker engine", env=DOWN),
        Case("docker", "no engine: run", ["run"], 3, "No Docker engine", env=DOWN),
        Case("docker", "no engine: gate", ["gate"], 3, "No Docker engine", env=DOWN),
        Case("docker", "no engine: clean", ["clean"], 3, "No Docker engine", env=DOWN),
        Case("docker", "no engine: demo", ["demo"], 3, "No Docker engine", env=DOWN),
        Case("docker", "clean --run of an unknown run", ["clean", "--run", "fd-nonexistent"], 2,
             "no resources of run", docker=True),
        Case("docker", "-k matches no scenario", ["run", "-k", "no_such_scenario"], 2,
             "no battery scenario matches", docker=True),
        Case("docker", "doctor --target with a missing image",
             ["doctor", "--target", "fulldisk.toml"], 3, "shop:1 missing",
             {"fulldisk.toml": GOOD}, docker=True),
        Case("docker", "base image missing", ["demo"], 3, "ci/setup",
             env={"FULLDISK_BASE_IMAGE": "fulldisk/no-base:1"}, docker=True),
        Case("fault", "service image missing", ["run", "-t", "fulldisk.toml"], 3,
             "fulldisk/no-such-image:1", {"fulldisk.toml": _base_target(
                 sleeper).replace("fulldisk/base:bookworm", "fulldisk/no-such-image:1")},
             docker=True),
        Case("fault", "service exits at start", ["run", "-t", "fulldisk.toml"], 3,
             "exited at start (exit code 7)", {"fulldisk.toml": _base_target(
                 'command = ["sh", "-c", "echo boom: cannot open config; exit 7"]')},
             docker=True),
        # Dies after its start check, during the pre-flight's probe: still named as the
        # cause (exit 3), not reported as a probe that fails on empty disks (exit 2).
        Case("fault", "service exits during the pre-flight", ["run", "-t", "fulldisk.toml"],
             3, "exited at start (exit code 7)", {"fulldisk.toml": _base_target(
                 'command = ["sh", "-c", "sleep 0.3; exit 7"]',
                 probe='kind = "exec"\ncommand = ["sleep", "2"]')}, docker=True),
        Case("fault", "ready log line never comes", ["run", "-t", "fulldisk.toml"], 3,
             "not ready within 2 s", {"fulldisk.toml": _base_target(
                 sleeper + '\nready = { log = "never printed", timeout = 2 }')}, docker=True),
        Case("fault", "image files do not fit the volume", ["run", "-t", "fulldisk.toml"], 2,
             "need", {"fulldisk.toml": _base_target(sleeper, mount="/var/lib/dpkg",
                                                     size="64KiB")}, docker=True),
        Case("fault", "exec probe fails on empty disks", ["run", "-t", "fulldisk.toml"], 2,
             "pre-flight", {"fulldisk.toml": _base_target(
                 sleeper, probe='kind = "exec"\ncommand = ["sh", "-c", "exit 4"]')},
             docker=True),
        Case("fault", "http probe gets 404 on empty disks", ["run", "-t", "fulldisk.toml"], 2,
             "got status 404", {"fulldisk.toml": _http_target(
                 'steps = [{ path = "/no-such-page" }]')}, docker=True),
        Case("fault", "expected text never on the page", ["run", "-t", "fulldisk.toml"], 2,
             "body lacks", {"fulldisk.toml": _http_target(
                 'steps = [{ path = "/health", expect_text = "no such words" }]')},
             docker=True),
        Case("fault", "unknown defect switch in the app", ["run", "-k", "sessions and recovery"], 3,
             "unknown defect 'no_such_defect'", env={"DATAHUB_DEFECTS": "no_such_defect"},
             docker=True),
        # issue 23: regexes that run away, requests that trickle, inits that find nothing
        Case("fault", "ready.log regex runs away (P08)", ["run", "-t", "fulldisk.toml"], 2,
             "services.a.ready.log: the regex", {"fulldisk.toml": _base_target(
                 'command = ["sh", "-c", "echo ' + "a" * 40 + '; exec sleep infinity"]\n'
                 'ready = { log = "(a|a)+\\\\d", timeout = 10 }')}, docker=True, within=60),
        Case("fault", "ready.log (?:a+)+b on 34 a's: the ready timeout holds (P08)",
             ["run", "-t", "fulldisk.toml"], 3, "not ready within 3 s", {"fulldisk.toml":
             _base_target('command = ["sh", "-c", "echo ' + "a" * 34 + '; exec sleep infinity"]'
                          '\nready = { log = "(?:a+)+b", timeout = 3 }')},
             docker=True, within=45),
        Case("fault", "capture regex runs away (C01)", ["run", "-t", "fulldisk.toml"], 2,
             "probes.p.steps[0].capture.t: the regex", {"fulldisk.toml": _odd_target(
                 "aaa", 'steps = [{ path = "/", capture = { t = "(a|a)+\\\\d" } }]')},
             docker=True, within=60),
        Case("fault", "capture (?:a+)+(b) on a line of a's ends at once (C01)",
             ["run", "-t", "fulldisk.toml"], 2, "got status 200, expected [404]",
             {"fulldisk.toml": _odd_target("aaa", 'steps = [{ path = "/", expect_status = [404],'
                                           ' capture = { t = "(?:a+)+(b)" } }]')},
             docker=True, within=60),
        Case("fault", "status line and headers trickled (B04)", ["run", "-t", "fulldisk.toml"], 2,
             "no answer within 2 s", {"fulldisk.toml": _odd_target(
                 "trickle", 'steps = [{ path = "/", timeout = 2 }]')}, docker=True, within=60),
        Case("fault", "ready http against trickled headers (B11)", ["run", "-t", "fulldisk.toml"],
             3, "not ready within 3 s", {"fulldisk.toml": _odd_target(
                 "trickle", 'steps = [{ path = "/" }]',
                 ready='ready = { http = "/", timeout = 3 }')}, docker=True, within=45),
        Case("fault", "103 Early Hints before the answer (B07)", ["run", "-t", "fulldisk.toml"], 2,
             "got status 200, expected [404]", {"fulldisk.toml": _odd_target(
                 "hints", 'steps = [{ path = "/", expect_status = [404] }]')}, docker=True,
             within=60),
        Case("fault", "{body} of 4 KiB in a header value (P07)", ["run", "-t", "fulldisk.toml"],
             2, "got status 200, expected [404]", {"fulldisk.toml": _odd_target(
                 "hints", 'steps = [{ path = "/", headers = { X-Body = "{body}" }, '
                 'body_size = "4KiB", expect_status = [404] }]')}, docker=True, within=60),
        Case("fault", "a folder declared as a log file (O03)", ["run", "-t", "fulldisk.toml"], 2,
             "logs[0]: a:/usr/lib is a folder, not a log file", {"fulldisk.toml": _base_target(
                 sleeper) + '[[logs]]\nkind = "file"\nservice = "a"\npath = "/usr/lib"\n'},
             docker=True, within=60),
        Case("fault", "FULLDISK_LEASE_INTERVAL=abc (I01)", ["run", "-t", "fulldisk.toml"], 2,
             "FULLDISK_LEASE_INTERVAL='abc'", {"fulldisk.toml": _base_target(sleeper)},
             env={"FULLDISK_LEASE_INTERVAL": "abc"}, docker=True),
        Case("fault", "FULLDISK_LEASE_INTERVAL=inf (I02)", ["run", "-t", "fulldisk.toml"], 2,
             "FULLDISK_LEASE_INTERVAL='inf'", {"fulldisk.toml": _base_target(sleeper)},
             env={"FULLDISK_LEASE_INTERVAL": "inf"}, docker=True),
        Case("config", "doctor: image not a reference (P04)",
             ["doctor", "--target", "fulldisk.toml"], 2, "not an image reference",
             {"fulldisk.toml": GOOD.replace('image = "shop:1"', 'image = "Bad Image!"')}),
        Case("usage", "init: image not a reference (G11)", ["init", "Bad Image!"], 2,
             "not an image reference"),
        Case("fault", "init: the image exits at once (G01)",
             ["init", "fulldisk/base:bookworm", "--timeout", "20"], 3,
             "exited during the warm-up", docker=True, within=60),
        Case("fault", "init: the image writes nothing (G02)",
             ["init", "fulldisk/base:bookworm", "--command", "base=sleep 60", "--timeout", "20"],
             2, "nothing written, nothing to propose", docker=True, within=60),
        Case("interrupt", "Ctrl-C during stack start", ["run", "-k", "sessions and recovery"], 130,
             "INTERRUPTED", docker=True, signal_at="start"),
        Case("interrupt", "SIGTERM during stack start", ["run", "-k", "sessions and recovery"], 130,
             "INTERRUPTED", docker=True, signal_at="start", signal=signal.SIGTERM),
        Case("interrupt", "Ctrl-C during fill", ["run", "-k", "sessions and recovery"], 130,
             "INTERRUPTED", docker=True, signal_at="fill"),
        Case("interrupt", "SIGTERM during act", ["run", "-k", "sessions and recovery"], 130,
             "INTERRUPTED", docker=True, signal_at="act", signal=signal.SIGTERM),
    ]
    out += lifecycle_cases()
    return out


STALE = '{"target": "x", "status": "passed", "passed": true, "exit": 0}\n'
"""An earlier run's report.json, which a later run that fails must replace."""


def lifecycle_cases() -> list[Case]:
    """Signals, a full report disk, outputs that would replace the user's files, -k, and
    reports on every exit path (issue 23)."""
    small = {"fulldisk.toml": _base_target()}
    run = ["run", "-t", "fulldisk.toml"]
    return [
        Case("report", "config error after a passing run", run, 2, "not a size",
             {"fulldisk.toml": GOOD.replace('"1MiB"', '"12XB"'), "reports/report.json": STALE}),
        Case("report", "Docker down after a passing run", run, 3, "No Docker engine",
             {"fulldisk.toml": GOOD, "reports/report.json": STALE}, env=DOWN),
        Case("output", "--json is the target config", [*run, "--json", "fulldisk.toml"], 2,
             "is the target config", {"fulldisk.toml": GOOD}, unchanged=("fulldisk.toml",)),
        Case("output", "--html is the target config", [*run, "--html", "fulldisk.toml"], 2,
             "is the target config", {"fulldisk.toml": GOOD}, unchanged=("fulldisk.toml",)),
        Case("output", "--junit is the target config", ["gate", "-t", "fulldisk.toml",
             "--junit", "fulldisk.toml"], 2, "is the target config", {"fulldisk.toml": GOOD},
             unchanged=("fulldisk.toml",)),
        Case("output", "--json over a file fulldisk did not write",
             [*run, "--json", "notes.txt"], 2, "not a report fulldisk wrote",
             {"fulldisk.toml": GOOD, "notes.txt": "mine\n"}, unchanged=("notes.txt",)),
        Case("output", "--html and --json on one path",
             [*run, "--json", "r.out", "--html", "r.out"], 2, "same file",
             {"fulldisk.toml": GOOD}),
        Case("usage", "-k expression that does not parse", ["run", "-k", "and or ("], 2,
             "not a valid expression"),
        Case("usage", "-k expression that does not parse (gate)", ["gate", "-k", "x and"], 2,
             "not a valid expression"),
        Case("docker", "-k matches no scenario, -n 2", ["run", "-k", "no_such_scenario", "-n",
             "2"], 2, "no battery scenario matches", docker=True),
        Case("output", "--json - is stdout", [*run, "--json", "-"], 0, "", small,
             docker=True, absent=("-",)),
        Case("output", "--json on a full disk (/dev/full)", [*run, "--json", "/dev/full"], 3,
             "cannot write /dev/full", small, docker=True),
        Case("output", "--html on a full disk (/dev/full)", [*run, "--html", "/dev/full"], 3,
             "cannot write /dev/full", small, docker=True),
        Case("output", "gate --junit on a full disk (/dev/full)",
             ["gate", "-t", "fulldisk.toml", "--junit", "/dev/full"], 3,
             "cannot write /dev/full", small, docker=True),
        Case("output", "init -o on a full disk (/dev/full)",
             ["init", _datahub_image(), "--seconds", "0", "-o", "/dev/full", "--force"], 3,
             "cannot write /dev/full", docker=True),
        Case("output", "--report-dir on a 64 KiB disk", [*run, "--report-dir", "tiny"], 3,
             "No space left on device", small, docker=True, tmpfs="tiny"),
        Case("fault", "pre-flight fails: the other lane fills nothing", run, 2, "pre-flight",
             {"fulldisk.toml": _base_target(probe='kind = "exec"\nwrite = true\n'
                                            'command = ["sh", "-c", "exit 4"]')},
             docker=True, never="session-flood: fill"),
        Case("interrupt", "SIGHUP during act (terminal closed)", run, 130, "INTERRUPTED",
             small, docker=True, signal_at="act", signal=signal.SIGHUP),
        Case("interrupt", "Ctrl-C twice during act", run, 130, "INTERRUPTED", small,
             docker=True, signal_at="act", signals=2),
        Case("interrupt", "Ctrl-C three times during stack start", run, 130, "INTERRUPTED",
             small, docker=True, signal_at="start", signals=3),
        Case("interrupt", "SIGTERM, then Ctrl-C, during fill", run, 130, "INTERRUPTED", small,
             docker=True, signal_at="fill", signals=2, signal=signal.SIGTERM),
    ]


@dataclass
class Result:
    """What one case printed and returned."""

    code: int
    message: str
    output: str
    seconds: float
    report: dict[str, object] | None = None  # report.json of a run or gate, if written
    files: list[str] = field(default_factory=list)  # what is wrong with the case's files


def message_of(stdout: str, stderr: str) -> str:
    """The line a user reads: the error line, else the interrupted line, else the last."""
    for line in stderr.splitlines():
        if line.startswith("fulldisk: error:"):
            return line
    for line in stdout.splitlines():
        if "INTERRUPTED" in line or line.startswith("target "):
            return line.strip()
    lines = [ln for ln in (stderr + stdout).splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _sigint_as_a_terminal() -> None:
    """In the child: SIGINT as a terminal delivers it, also when this suite runs as a
    background job (which starts its children with SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_case(case: Case, workdir: Path) -> Result:
    """Run one case in a fresh folder."""
    before: dict[str, bytes] = {}
    for name, content in case.files.items():
        p = workdir / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
        before[name] = p.read_bytes()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FULLDISK_RUN_ID": run_id(case, workdir),
           "COLUMNS": "400", **case.env}  # wide: a summary line is not wrapped
    args = list(case.args)
    if args[0] in ("run", "gate") and "--report-dir" not in args:
        args += ["--report-dir", str(workdir / "reports")]
    reports = Path(args[args.index("--report-dir") + 1]) if "--report-dir" in args else None
    if case.tmpfs:
        (workdir / case.tmpfs).mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                        str(workdir / case.tmpfs)], check=True)
    t0 = time.monotonic()
    report = None
    try:
        out, err, code = _run(case, args, env, workdir)
        seconds = time.monotonic() - t0
        if reports is not None:
            path = (workdir / reports) / "report.json"
            report = json.loads(path.read_text()) if path.exists() else None
    finally:
        if case.tmpfs:
            subprocess.run(["umount", str(workdir / case.tmpfs)], check=True)
    files = [f"{n} was changed" for n, data in before.items()
             if n in case.unchanged and (workdir / n).read_bytes() != data]
    files += [f"{n} exists" for n in case.absent if (workdir / n).exists()]
    return Result(code, message_of(out, err), out + err, seconds, report, files)


def _run(case: Case, args: list[str], env: dict[str, str], workdir: Path
         ) -> tuple[str, str, int]:
    if case.signal_at is None:
        p = subprocess.run([*FULLDISK, *args], capture_output=True, text=True, timeout=600,
                           env=env, cwd=workdir, preexec_fn=_sigint_as_a_terminal)
        return p.stdout, p.stderr, p.returncode
    phases = workdir / "phases"
    env.update({"FULLDISK_PHASE_FILE": str(phases), "FULLDISK_HOLD_PHASE": case.signal_at})
    q = subprocess.Popen([*FULLDISK, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env, cwd=workdir, preexec_fn=_sigint_as_a_terminal)
    end = time.monotonic() + 120
    while time.monotonic() < end and q.poll() is None and not (
            phases.exists() and case.signal_at in phases.read_text().split()):
        time.sleep(0.05)  # polling a file with a deadline
    for i in range(case.signals):
        if q.poll() is not None:
            break
        q.send_signal(case.signal if i == 0 else signal.SIGINT)
        time.sleep(0.2)  # an impatient user's pace, not a synchronisation
    out, err = q.communicate(timeout=120)
    return out, err, q.returncode


def run_id(case: Case, workdir: Path) -> str:
    """The run id a case's process gets (one per work folder, so cases running at once
    never share one), so that its leftovers can be counted."""
    return f"fd-input-{hashlib.sha1(str(workdir.resolve()).encode()).hexdigest()[:10]}"


def leftovers(case: Case, workdir: Path) -> int:
    """Resources the case's run left on the engine (0 without Docker)."""
    if not case.docker:
        return 0
    from harness import engine

    return engine.count_labelled(run_id(case, workdir)).total


def problems(case: Case, r: Result, left: int = 0) -> list[str]:
    """What is wrong with a result (empty when the case behaved as documented)."""
    bad = [f"{left} resources left behind"] if left else []
    bad += r.files
    if case.never and case.never in r.output:
        bad.append(f"the output has {case.never!r}")
    if case.args[0] in ("run", "gate") and case.report:
        want = {0: "passed", 1: "failed", 4: "not_tested",
                130: "interrupted"}.get(r.code, "error")
        if r.report is None:
            bad.append("no report.json")
        elif (r.report.get("status"), r.report.get("exit")) != (want, r.code):
            bad.append(f"report.json says {r.report.get('status')} (exit "
                       f"{r.report.get('exit')}), the process exited {r.code}")
    if r.code != case.code:
        bad.append(f"exit {r.code}, expected {case.code}")
    if case.within is not None and r.seconds > case.within:
        bad.append(f"took {r.seconds:.1f} s, more than {case.within:g} s")
    if "Traceback" in r.output:
        bad.append("a traceback reached the user")
    if case.words not in r.message:
        bad.append(f"message lacks {case.words!r}")
    if case.code in (2, 3) and ("Hint:" not in r.message or
                                sum(ln.startswith("fulldisk: error:")
                                    for ln in r.output.splitlines()) != 1):
        bad.append("not one error line with a Hint")
    return bad


def main() -> int:
    """Run every case and write the markdown table; exit 1 if any case misbehaved."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="-", help="markdown file (default: stdout)")
    ap.add_argument("--no-docker", action="store_true", help="skip cases that need Docker")
    opts = ap.parse_args()
    rows = ["| # | kind | input | exit | message (first 300 characters) | report | left |",
            "|---|---|---|---|---|---|---|"]
    failed = 0
    for i, case in enumerate(cases(), 1):
        if case.docker and opts.no_docker:
            continue
        with tempfile.TemporaryDirectory(prefix="fd-input-") as tmp:
            r = run_case(case, Path(tmp))
            left = leftovers(case, Path(tmp))
            bad = problems(case, r, left)
        failed += bool(bad)
        msg = r.message.replace("|", "\\|")[:300]
        note = f" **MISMATCH: {'; '.join(bad)}**" if bad else ""
        status = "none" if r.report is None else \
            f"{r.report.get('status')}/{r.report.get('exit')}"
        rows.append(f"| {i} | {case.kind} | {case.what} (`fulldisk {' '.join(case.args)}`) | "
                    f"{r.code} | {msg}{note} | {status} | {left} |")
        print(f"{i:3} {case.kind:9} {r.code:3} {r.seconds:5.1f}s {case.what}"
              f"{' MISMATCH ' + json.dumps(bad) if bad else ''}", file=sys.stderr)
    text = "\n".join(rows) + "\n"
    if opts.out == "-":
        sys.stdout.write(text)
    else:
        Path(opts.out).write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
