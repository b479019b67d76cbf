"""`fulldisk init`: a starter target from images. Unit tests of the parts, and the real
thing on the reference images: its volumes must cover every path the reference target
declares, within its time bound, leaving nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import pytest

from harness import UsageError, load_target, reference_target
from harness.inittoml import FolderUse, Seen, ServiceSpec, render
from harness.starter import parse_services
from harness.target import target_from_dict
from harness.writes import under

ROOT = Path(__file__).resolve().parents[2]
FD = [sys.executable, "-c", "from harness.cli import main; main()"]


def test_service_arguments() -> None:
    specs = parse_services(["shop:latest", "worker=shop:latest"], ["worker=python -m jobs"])
    assert specs == [ServiceSpec("shop", "shop:latest"),
                     ServiceSpec("worker", "shop:latest", ("python", "-m", "jobs"))]
    for images, commands, fix in ((["a=x", "a=y"], [], "name them apart"),
                                  (["Bad=x"], [], "NAME=IMAGE"),
                                  (["x"], ["nosuch=ls"], "NAME=COMMAND"),
                                  ([], [], "fulldisk init IMAGE")):
        with pytest.raises(UsageError, match=fix):
            parse_services(images, commands)


def test_render_is_a_valid_commented_target() -> None:
    app = Seen(ServiceSpec("app", "shop:1", ("serve",)), "1000:1000", (8000, 9000),
               ports={8000: 200},
               folders=[FolderUse("/var/log/shop", 8192, 3, "1000:1000", "0755"),
                        FolderUse("/var/cache/shop", 3 * 1024 * 1024, 40, "1000:1000", "0750")],
               logs=["/var/log/shop/app.log"], unmountable=["/etc"])
    worker = Seen(ServiceSpec("worker", "shop:1"), "", (),
                  folders=[FolderUse("/var/log/shop", 4096, 2, "1000:1000", "0755")])
    text = render([app, worker], name="shop", warmup=None, seconds=2)
    t = target_from_dict(tomllib.loads(text))
    assert set(t.volumes) == {"log-shop", "cache-shop"}  # same last name: two components
    logs = t.volumes["log-shop"]
    assert logs.role == "logs" and {m.service for m in logs.mounts} == {"app", "worker"}
    assert all(m.logs for m in logs.mounts)
    assert t.volumes["cache-shop"].size >= 2 * 3 * 1024 * 1024  # what it used, with margin
    assert t.volumes["cache-shop"].owner == "1000:1000" and t.volumes["cache-shop"].mode == "0750"
    assert t.services["app"].ports == [8000] and t.services["worker"].ports == []
    assert [(p.service, p.port) for p in t.probes.values()] == [("app", 8000)]
    assert [(lg.kind, lg.volume, lg.path) for lg in t.logs] == [
        ("container", None, None), ("container", None, None), ("file", "log-shop", "app.log")]
    for hint in ("CHECK BY HAND", "exposes [9000] but nothing answered", "a stub",
                 'role = "bulk"', "wrote into /etc, a system folder"):
        assert hint in text


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    (tmp_path / "fulldisk.toml").write_text("keep me")
    p = subprocess.run([*FD, "init", "shop:latest"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "exists" in p.stderr and "Hint: pass --force" in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert (tmp_path / "fulldisk.toml").read_text() == "keep me"
    p = subprocess.run([*FD, "init"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Missing argument" in p.stderr


WARMUP = '''
import os, urllib.error, urllib.parse, urllib.request
base = os.environ["FULLDISK_URL_WEB"]
class Keep(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None
op = urllib.request.build_opener(Keep)
try:  # a login leaves a session file; its 302 is not followed
    op.open(base + "/login", data=urllib.parse.urlencode(
        {"user": "alice", "password": "wonderland"}).encode(), timeout=5)
except urllib.error.HTTPError:
    pass
for path in ("/datasets/earthquakes", "/datasets/earthquakes/download?format=csv&size=2048"):
    op.open(base + path, timeout=5).read()
'''


@pytest.mark.docker
def test_init_on_the_reference_images_covers_every_declared_path(tmp_path: Path) -> None:
    from harness import engine

    ref = reference_target()
    image = ref.services["app"].image
    (tmp_path / "warm.py").write_text(WARMUP)
    run_id = f"fd-init-{uuid.uuid4().hex[:8]}"
    args = [f"{n}={image}" for n in ref.services]
    args += [f"--command={n}={s.command[0]}" for n, s in ref.services.items()
             if isinstance(s.command, list)]
    t0 = time.monotonic()
    p = subprocess.run([*FD, "init", *args, "--warmup", f"{sys.executable} warm.py",
                        "--timeout", "120", "--name", "datahub"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=200,
                       env={**os.environ, "FULLDISK_RUN_ID": run_id})
    took = time.monotonic() - t0
    assert p.returncode == 0, p.stderr[-3000:]
    assert took < 120 + 30
    assert engine.count_labelled(run_id).total == 0  # its containers and network are gone
    made = load_target(tmp_path / "fulldisk.toml")
    paths = {m.path for v in made.volumes.values() for m in v.mounts}
    declared = {m.path for v in ref.volumes.values() for m in v.mounts}
    uncovered = [d for d in declared if not any(under(d, p) for p in paths)]
    assert not uncovered, (uncovered, paths)
    # owners from the files the app wrote, logs found as open files
    assert {v.owner for v in made.volumes.values()} == {"1000:1000"}
    files = {(lg.volume, lg.path) for lg in made.logs if lg.kind == "file"}
    assert {"app.log", "access.log", "error.log"} <= {f for _, f in files}
    assert {p.port for p in made.probes.values() if p.kind == "http"} == {8000, 8080}
    # the second time it refuses, and --force overwrites
    again = subprocess.run([*FD, "init", *args, "--name", "datahub"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "--force" in again.stderr


WEBDAV = "fulldisk/corpus-webdav:bookworm"  # built by the corpus (examples/webdav, i9c)
PUT = '''
import os, urllib.request
base = os.environ["FULLDISK_URL_DAV"]
req = urllib.request.Request(base + "/hello.txt", data=b"x" * 20000, method="PUT")
urllib.request.urlopen(req, timeout=5).read()
print("PUT /hello.txt: 20000 bytes")
'''


@pytest.mark.docker
def test_init_on_a_root_started_corpus_image(tmp_path: Path) -> None:
    """lighttpd starts as root and drops to www-data: init runs it as it is meant to run,
    finds the share it PUT into (owned by www-data) and its log files by name (a server
    that changed user hides its open files even from root)."""
    from harness import engine

    if not engine.image_exists(WEBDAV):
        pytest.skip(f"corpus image {WEBDAV} is not built on this machine")
    (tmp_path / "put.py").write_text(PUT)
    p = subprocess.run([*FD, "init", f"dav={WEBDAV}", "--warmup", f"{sys.executable} put.py",
                        "--timeout", "60"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    said = " ".join(p.stderr.split())  # the console wraps long lines
    assert "ended; its output: PUT /hello.txt: 20000 bytes" in said  # shown on success too
    made = load_target(tmp_path / "fulldisk.toml")
    by_path = {m.path: v for v in made.volumes.values() for m in v.mounts}
    assert "/srv/dav" in by_path and by_path["/srv/dav"].owner == "33:33"
    declared = ROOT / "examples" / "webdav" / "fulldisk.toml"
    if declared.exists():  # the corpus target, once it is on main
        for v in load_target(declared).volumes.values():
            for m in v.mounts:
                assert any(under(m.path, p) for p in by_path), m.path
    assert {lg.path for lg in made.logs if lg.kind == "file"} >= {"access.log", "error.log"}


CORPUS = ("redis", "mariadb", "webdav", "mediawiki")
NOT_VOLUMES = ("/tmp", "/var/tmp", "/run", "/var/run")
EXEC_STUB = {"redis": "Redis", "mariadb": "MariaDB/MySQL", "mediawiki": "SQLite"}


@pytest.mark.docker
@pytest.mark.parametrize("example", CORPUS)
def test_init_proposes_what_the_corpus_target_mounts(example: str, tmp_path: Path) -> None:
    """On each corpus image, with no warm-up script: the data folders the corpus target
    mounts are proposed as data volumes with the corpus owner, nothing under /tmp or /run
    is, no log folder is proposed as data nor a data folder as logs, the server found
    gets an exec probe that init ran once, and nothing of the run is left."""
    from harness import engine

    declared = load_target(ROOT / "examples" / example / "fulldisk.toml")
    image = next(iter(declared.services.values())).image
    if not engine.image_exists(image):
        pytest.skip(f"corpus image {image} is not built: fulldisk build --target "
                    f"examples/{example}/fulldisk.toml")
    run_id = f"fd-init-{uuid.uuid4().hex[:8]}"
    p = subprocess.run([*FD, "init", f"svc={image}", "--timeout", "120", "--ready-timeout",
                        "20"], cwd=tmp_path, capture_output=True, text=True, timeout=240,
                       env={**os.environ, "FULLDISK_RUN_ID": run_id})
    assert p.returncode == 0, p.stderr[-3000:]
    assert engine.count_labelled(run_id).total == 0
    assert "warm-up: " in p.stderr and not p.stderr.rstrip().endswith("crawled")
    made = load_target(tmp_path / "fulldisk.toml")
    by_path = {m.path: v for v in made.volumes.values() for m in v.mounts}
    for v in declared.volumes.values():
        for m in v.mounts:
            assert m.path in by_path, (m.path, sorted(by_path))
            got = by_path[m.path]
            assert got.owner == v.owner, (m.path, got.owner, v.owner)
            assert got.role != "logs", m.path  # a data folder, whatever its files are named
            assert got.size >= v.size or got.size >= 4 * 1024 * 1024, (m.path, got.size)
    for path, v in by_path.items():
        assert not any(under(path, n) for n in NOT_VOLUMES), path
        assert (v.role == "logs") == under(path, "/var/log"), (path, v.role)
    execs = [pr for pr in made.probes.values() if pr.kind == "exec"]
    if example in EXEC_STUB:
        assert len(execs) == 1 and execs[0].write and execs[0].readback, p.stderr
        said = " ".join(p.stderr.split())  # the console wraps long lines
        assert f"{EXEC_STUB[example]} found; its write+readback probe worked" in said
    else:
        assert execs == []


@pytest.mark.docker
def test_init_names_the_path_of_a_service_that_died(tmp_path: Path) -> None:
    """A service that exits during the warm-up: exit 3, its last log lines, a hint that
    names the path and the owner to set, and no fulldisk.toml."""
    from harness import engine

    run_id = f"fd-init-{uuid.uuid4().hex[:8]}"
    die = ("db=sh -c 'echo \"initdb: error: could not create directory \\\"/var/lib/app/"
           "data\\\": Permission denied\" >&2; exit 1'")
    p = subprocess.run([*FD, "init", "db=fulldisk/base:bookworm", "--command", die,
                        "--timeout", "30"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=90,
                       env={**os.environ, "FULLDISK_RUN_ID": run_id})
    assert p.returncode == 3, p.stderr
    assert "db (fulldisk/base:bookworm) exited during the warm-up (exit code 1)" in p.stderr
    assert 'could not create directory "/var/lib/app/data": Permission denied' in p.stderr
    assert "Hint: /var/lib/app/data is not writable" in p.stderr and "owner" in p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "fulldisk.toml").exists()
    assert engine.count_labelled(run_id).total == 0


APP_SH = ('echo c > /srv/app/var/cache/c; echo s > /srv/app/var/sessions/s1; '
          'echo "$(date) app started, listening on nothing" >> /srv/app/var/log/app.log; '
          'head -c 20000 /dev/zero > /srv/data/blob; echo t > /tmp/pid; exec sleep 600')


@pytest.mark.docker
def test_init_merges_var_and_proposes_the_image_volume(tmp_path: Path) -> None:
    """An image whose app writes /srv/app/var/{cache,log,sessions} (folders of the image,
    nothing else in var/) and declares VOLUME /srv/data: one data volume for /srv/app/var
    (its log file a log source inside it), one for /srv/data, none for /tmp; the engine's
    anonymous volume for /srv/data is removed with the container."""
    import docker

    client = docker.from_env()
    tag = f"fulldisk/init-test-{uuid.uuid4().hex[:8]}:t"
    c = client.containers.run("fulldisk/base:bookworm", ["mkdir", "-p", "/srv/app/var/cache",
                              "/srv/app/var/log", "/srv/app/var/sessions"], detach=True,
                              labels={"fulldisk.dev": "init-test"})
    try:
        c.wait(timeout=60)
        c.commit(*tag.split(":"), changes=['VOLUME ["/srv/data"]',
                                          f'CMD ["sh", "-c", {json.dumps(APP_SH)}]'])
    finally:
        c.remove(force=True)
    run_id = f"fd-init-{uuid.uuid4().hex[:8]}"
    before = {v.name for v in client.volumes.list()}
    try:
        p = subprocess.run([*FD, "init", f"app={tag}", "--timeout", "60"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "FULLDISK_RUN_ID": run_id})
        assert p.returncode == 0, p.stderr[-3000:]
        made = load_target(tmp_path / "fulldisk.toml")
        by_path = {m.path: v for v in made.volumes.values() for m in v.mounts}
        assert sorted(by_path) == ["/srv/app/var", "/srv/data"], p.stderr
        assert by_path["/srv/app/var"].role != "logs" and by_path["/srv/data"].role != "logs"
        logs = {(lg.volume, lg.path) for lg in made.logs if lg.kind == "file"}
        var = next(n for n, v in made.volumes.items() if v is by_path["/srv/app/var"])
        assert logs == {(var, "log/app.log")}
        assert "the image declares it a VOLUME" in (tmp_path / "fulldisk.toml").read_text()
        said = " ".join(p.stderr.split())  # the console wraps long lines
        assert "declares VOLUME ['/srv/data']" in said and "(scratch): /tmp" in said
        assert engine_leftovers(run_id) == 0
        anonymous = [v.name for v in client.volumes.list() if v.name not in before and not any(
            k.startswith("fulldisk") for k in (v.attrs.get("Labels") or {}))]
        assert anonymous == []  # the engine's volume for /srv/data went with the container
    finally:
        client.images.remove(tag, force=True)


def engine_leftovers(run_id: str) -> int:
    """Containers, networks and volumes of a run still on the engine."""
    from harness import engine

    return engine.count_labelled(run_id).total
