"""Target config: the reference target loads, and every bad config names file, key and fix."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from bad_inputs import CONFIG_CASES, GOOD
from hypothesis import given, settings
from hypothesis import strategies as st
from pyfakefs.fake_filesystem import FakeFilesystem

from harness.errors import ConfigError, HarnessError
from harness.target import (
    DEFAULT_CAUSE_PATTERNS,
    load_target,
    reference_target,
    target_from_dict,
)


def write(fs: FakeFilesystem, text: str, name: str = "fulldisk.toml") -> str:
    path = f"/cfg/{name}"
    fs.create_file(path, contents=text)
    return path


def test_reference_target_is_valid() -> None:
    t = reference_target()
    assert t.name == "datahub"
    assert {"sessions", "downloads", "applogs"} <= set(t.volumes)
    assert t.volumes["downloads"].role == "bulk"
    assert "login" in t.core_probes


def test_good_config_loads_from_fulldisk_toml_and_pyproject(fs: FakeFilesystem) -> None:
    t = load_target(write(fs, GOOD))
    assert t.volumes["uploads"].size == 1024 * 1024 and t.path == "/cfg/fulldisk.toml"
    text = GOOD.replace('name = "shop"', 'name = "shop2"')
    for table in ("services", "volumes", "probes"):
        text = text.replace(f"[{table}", f"[tool.fulldisk.{table}")
    py = write(fs, "[tool.fulldisk]\n" + text, "pyproject.toml")
    assert load_target(py).name == "shop2"


def test_env_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAHUB_DEFECTS", "silent_sessions")
    assert reference_target().services["app"].env["DATAHUB_DEFECTS"] == "silent_sessions"
    monkeypatch.delenv("DATAHUB_DEFECTS")
    assert reference_target().services["app"].env["DATAHUB_DEFECTS"] == ""


BAD: list[tuple[str, str, str, str]] = [
    # (what, edit: old -> new, key expected in message, words expected)
    ("missing name", 'name = "shop"\n', "name", "add this key"),
    ("bad size", 'size = "1MiB"', "volumes.uploads.size", "not a size"),
    ("unknown key", 'core = true', "probes.home.cor", "unknown keys are refused"),
    ("wrong type", 'ports = [8080]', "services.web.ports", "right type"),
    ("unknown service in mount", 'service = "web", path', "volumes.uploads.mounts",
     "unknown service 'nope'"),
    ("relative mount path", 'path = "/srv/uploads"', "volumes.uploads.mounts[0].path",
     "absolute"),
    ("probe to another host", 'path = "/" }', "probes.home.steps[0].path", "127.0.0.1"),
    ("bad owner", 'owner = "1000:1000"', "volumes.uploads.owner", "uid:gid"),
    ("port not published", 'core = true', "probes.home", "port 9999"),
    ("bad name", '[volumes.uploads]', "volumes", "lowercase"),
    ("bad regex capture", 'path = "/" }', "probes.home.steps[0].capture", "regex"),
    ("readback before write", 'path = "/" }', "probes.home", "readback"),
    ("no steps", 'steps = [{ path = "/" }]', "probes.home", "at least one"),
]
EDITS = {
    "missing name": ('name = "shop"\n', ""),
    "bad size": ('size = "1MiB"', 'size = "12XB"'),
    "unknown key": ("core = true", "cor = true"),
    "wrong type": ("ports = [8080]", 'ports = "eighty"'),
    "unknown service in mount": ('service = "web", path', 'service = "nope", path'),
    "relative mount path": ('path = "/srv/uploads"', 'path = "srv/uploads"'),
    "probe to another host": ('path = "/" }', 'path = "http://10.0.0.1/" }'),
    "bad owner": ('owner = "1000:1000"', 'owner = "www-data"'),
    "port not published": ("core = true", "core = true\nport = 9999"),
    "bad name": ("[volumes.uploads]", "[volumes.Uploads]"),
    "bad regex capture": ('path = "/" }', 'path = "/", capture = { x = "(" } }'),
    "readback before write": ('path = "/" }', 'path = "/", readback = true }'),
    "no steps": ('steps = [{ path = "/" }]', "steps = []"),
}


@pytest.mark.parametrize(("what", "old", "key", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_config_names_file_key_and_fix(fs: FakeFilesystem, what: str, old: str, key: str,
                                           words: str) -> None:
    src, dst = EDITS[what]
    assert src in GOOD
    path = write(fs, GOOD.replace(src, dst, 1))
    with pytest.raises(ConfigError) as e:
        load_target(path)
    msg = e.value.one_line()
    assert msg.startswith("/cfg/fulldisk.toml:"), msg
    assert key in msg, msg
    assert words in msg, msg
    assert "Hint:" in msg


def test_not_toml_and_missing_file(fs: FakeFilesystem) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_target(write(fs, "name = \n"))
    with pytest.raises(ConfigError, match="no such file"):
        load_target("/cfg/none.toml")
    with pytest.raises(ConfigError, match=r"tool\.fulldisk"):
        load_target(write(fs, "[tool.other]\n", "pyproject.toml"))


def test_duplicate_mount_is_refused() -> None:
    data: dict[str, Any] = {
        "name": "x", "services": {"a": {"image": "i"}},
        "volumes": {"v1": {"size": 4096, "mounts": [{"service": "a", "path": "/d"}]},
                    "v2": {"size": 4096, "mounts": [{"service": "a", "path": "/d"}]}}}
    with pytest.raises(ConfigError, match="already mounted"):
        target_from_dict(data, file="t.toml")


def test_shared_variant_puts_every_path_on_one_volume() -> None:
    t = reference_target().shared()
    (name, vol), = t.volumes.items()
    assert name == "shared"
    assert {m.subdir for m in vol.mounts} == set(reference_target().volumes)
    assert vol.size == sum(v.size for v in reference_target().volumes.values())
    assert all(log.volume in (None, "shared") for log in t.logs)


def test_redaction_removes_passwords() -> None:
    t = reference_target()
    assert "wonderland" not in t.redact("user=alice&password=wonderland")


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.floats(),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20)
keys = st.sampled_from(["name", "services", "volumes", "probes", "logs", "health", "counters",
                        "downloads", "cleanup", "bounds"])


@given(st.dictionaries(keys, junk, max_size=6))
@settings(max_examples=300)  # a wide space of junk documents
def test_generated_junk_only_raises_our_errors(data: dict[str, Any]) -> None:
    try:
        target_from_dict(data, file="junk.toml")
    except HarnessError as e:
        assert "junk.toml" in str(e)


def test_path_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "fulldisk.toml").write_text(GOOD)
    assert load_target(tmp_path).name == "shop"


# --- keys for real images: capabilities, exec writes, log files in services, nonce bodies --

def _with(extra: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(GOOD + textwrap.dedent(extra))


def test_capability_keys_normalise_and_refuse_junk() -> None:
    t = target_from_dict(_with("""
        [services.db]
        image = "db:1"
        cap_drop = ["ALL"]
        cap_add = ["cap_chown", "SETUID"]
    """))
    assert t.services["db"].cap_drop == ["ALL"]
    assert t.services["db"].cap_add == ["CHOWN", "SETUID"]
    with pytest.raises(ConfigError, match=r"services\.db\.cap_add.*not a capability"):
        target_from_dict(_with('[services.db]\nimage = "db:1"\ncap_add = ["chown everything"]\n'))


EXEC = """
    [services.db]
    image = "db:1"
    [probes.insert]
    kind = "exec"
    service = "db"
    write = true
    command = ["sh", "-c", "echo {nonce} >> /data/t"]
    readback = ["grep", "{nonce}", "/data/t"]
    readback_expect = "{nonce}"
    timeout = 20
    body_size = "16KiB"
"""


def test_exec_write_with_readback() -> None:
    p = target_from_dict(_with(EXEC)).probes["insert"]
    assert p.write and p.readback == ["grep", "{nonce}", "/data/t"]
    assert p.timeout == 20 and p.body_size == 16384


@pytest.mark.parametrize(("edit", "words"), [
    (("write = true\n", ""), "readback' needs write = true"),
    (('readback = ["grep", "{nonce}", "/data/t"]\n', ""), "'readback_expect' needs"),
    (("timeout = 20", "timeout = 0"), "greater than 0"),
    (("timeout = 20", "timeout = 9999"), "less than or equal"),
])
def test_exec_write_keys_refuse_nonsense(edit: tuple[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        target_from_dict(_with(EXEC.replace(*edit)))


def test_http_probe_write_comes_from_its_steps() -> None:
    t = target_from_dict(_with("""
        [probes.put]
        service = "web"
        [[probes.put.steps]]
        method = "PUT"
        path = "/f/{nonce}"
        body_size = "16KiB"
        write = true
        [[probes.put.steps]]
        path = "/f/{nonce}"
        expect_bytes = "16KiB"
        expect_sha256 = "{body_sha256}"
        readback = true
    """))
    assert t.probes["put"].write and not t.probes["home"].write
    assert t.probes["put"].steps[0].raw_body and t.probes["put"].steps[1].expect_bytes == 16384
    with pytest.raises(ConfigError, match="mark the step that writes"):
        target_from_dict(_with('[probes.x]\nservice = "web"\nwrite = true\n'
                               'steps = [{ path = "/" }]\n'))
    with pytest.raises(ConfigError, match="only for exec probes"):
        target_from_dict(_with('[probes.x]\nservice = "web"\nreadback = ["true"]\n'
                               'steps = [{ path = "/" }]\n'))


@pytest.mark.parametrize(("step", "words"), [
    ('{ path = "/", expect_sha256 = "abc" }', "64 hex digits"),
    ('{ path = "/", body_size = "4KiB" }', "body_size on a GET"),
    ('{ method = "POST", path = "/", form = { a = "b" }, body_size = "4KiB" }', "{body}"),
    ('{ method = "HEAD", path = "/", expect_bytes = 10 }', "HEAD answer has no body"),
    ('{ path = "/", capture = { nonce = "(x)" } }', "built-in variable"),
    ('{ path = "/", expect_bytes = "lots" }', "not a size"),
])
def test_body_keys_refuse_nonsense(step: str, words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        target_from_dict(_with(f'[probes.x]\nservice = "web"\nsteps = [{step}]\n'))


def test_form_may_carry_the_generated_body() -> None:
    t = target_from_dict(_with("""
        [probes.edit]
        service = "web"
        [[probes.edit.steps]]
        method = "POST"
        path = "/edit"
        form = { text = "{body}" }
        body_size = "16KiB"
        write = true
    """))
    assert not t.probes["edit"].steps[0].raw_body


def test_file_logs_in_a_volume_or_in_a_service() -> None:
    t = target_from_dict(_with("""
        [[logs]]
        kind = "file"
        service = "web"
        path = "/var/log/apache2/error.log"
        [[logs]]
        kind = "file"
        volume = "uploads"
        path = "app.log"
    """))
    assert [log.label for log in t.logs] == ["file:web:/var/log/apache2/error.log",
                                              "file:uploads/app.log", "web:stdout+stderr"]
    for bad, words in [('service = "web"\npath = "var/log/x.log"', "must be absolute"),
                       ('volume = "uploads"\npath = "/x.log"', "give the path inside"),
                       ('service = "web"\nvolume = "uploads"\npath = "x.log"', "one of"),
                       ('service = "nope"\npath = "/x.log"', "unknown service 'nope'"),
                       ('service = "web"\npath = "/var/../x.log"', "'..'")]:
        with pytest.raises(ConfigError, match=re.escape(words)):
            target_from_dict(_with(f'[[logs]]\nkind = "file"\n{bad}\n'))
# Issue 17: every check that can be made from the config is made when it is loaded.
LOAD_TIME = CONFIG_CASES


@pytest.mark.parametrize(("what", "old", "new", "key", "words"), LOAD_TIME,
                         ids=[c[0] for c in LOAD_TIME])
def test_load_time_checks(tmp_path: Path, what: str, old: str, new: str, key: str,
                          words: str) -> None:
    assert old in GOOD
    cfg = tmp_path / "fulldisk.toml"
    cfg.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as e:
        load_target(cfg)
    msg = e.value.one_line()
    assert msg.startswith(f"{cfg}:"), msg
    assert key in msg and words in msg and "Hint:" in msg, msg


def test_depends_on_cycle_is_named(tmp_path: Path) -> None:
    text = GOOD + ('[services.a]\nimage = "i"\ndepends_on = ["b"]\n'
                   '[services.b]\nimage = "i"\ndepends_on = ["c"]\n'
                   '[services.c]\nimage = "i"\ndepends_on = ["a"]\n')
    with pytest.raises(ConfigError, match=r"cycle \((a|b|c) -> (a|b|c) -> (a|b|c) -> \1\)"):
        target_from_dict(__import__("tomllib").loads(text), file="t.toml")


def test_download_sizes_are_parsed_once_into_bytes() -> None:
    text = GOOD + ('[downloads]\nprobe = "home"\nvolume = "uploads"\n'
                   'sizes = ["64KiB", 1000, "1MiB"]\n')
    t = target_from_dict(__import__("tomllib").loads(text), file="t.toml")
    assert t.downloads is not None and t.downloads.sizes == [65536, 1000, 1024 * 1024]
    shared = t.shared().downloads
    assert shared is not None and shared.sizes == t.downloads.sizes
    assert target_from_dict(__import__("tomllib").loads(GOOD + (
        '[downloads]\nprobe = "home"\nvolume = "uploads"\n'))).downloads.sizes == [65536]


def test_path_and_root_come_from_the_loader_only(tmp_path: Path) -> None:
    cfg = tmp_path / "fulldisk.toml"
    cfg.write_text(GOOD)
    t = load_target(cfg)
    assert (t.path, t.root) == (str(cfg), str(tmp_path.resolve()))
    # copies keep them, the config shown in reports names the file, a dump holds no such key
    for copy in (t.model_copy(update={"description": "x"}), t.shared()):
        assert (copy.path, copy.root) == (t.path, t.root)
    assert t.redacted_config()["path"] == str(cfg)
    assert "path" not in t.model_dump() and "root" not in t.model_dump()
    with pytest.raises(ConfigError, match=r"(?s)t.toml:root: unknown key 'root'; accepted "
                       r"here: name, description, services.*unknown keys"):
        target_from_dict({**__import__("tomllib").loads(GOOD), "root": "/"}, file="t.toml")


def test_a_name_asked_for_at_run_time_is_not_a_config_error() -> None:
    from harness.errors import UnknownName, UsageError
    from harness.stack import Stack

    stack = Stack(reference_target())
    for lookup, name in ((stack.volume, "nope"), (stack.service, "nobody")):
        with pytest.raises(UnknownName, match=f"unknown .* '{name}'") as e:
            lookup(name)
        assert isinstance(e.value, UsageError) and not isinstance(e.value, ConfigError)
        assert e.value.hint and "declares" in e.value.hint


def test_tmpfs_sum_is_checked_against_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.target as target_mod

    data = __import__("tomllib").loads(GOOD.replace('size = "1MiB"', 'size = "2GiB"'))
    monkeypatch.setattr(target_mod, "available_memory", lambda: 4 * 1024**3)
    with pytest.raises(ConfigError) as e:
        target_from_dict(data, file="t.toml")
    msg = e.value.one_line()
    assert "2 GiB" in msg and "4 GiB available" in msg and "smaller" in msg, msg
    monkeypatch.setattr(target_mod, "available_memory", lambda: 64 * 1024**3)
    assert target_from_dict(data, file="t.toml").volumes["uploads"].size == 2 * 1024**3


def test_bom_is_accepted_and_paths_are_normalised(tmp_path: Path) -> None:
    cfg = tmp_path / "fulldisk.toml"
    cfg.write_bytes(b"\xef\xbb\xbf" + GOOD.replace('"/srv/uploads"', '"/srv//uploads/"').encode())
    t = load_target(cfg)
    assert t.volumes["uploads"].mounts[0].path == "/srv/uploads"


def test_download_placeholders_are_known_only_to_the_download_probe() -> None:
    data = __import__("tomllib").loads(GOOD.replace('steps = [{ path = "/" }]',
                                                    'steps = [{ path = "/d/{seq}?s={size}" }]'))
    with pytest.raises(ConfigError, match="never captured"):
        target_from_dict(data, file="t.toml")
    data["downloads"] = {"probe": "home", "volume": "uploads"}
    assert target_from_dict(data, file="t.toml").downloads is not None
    data["probes"]["home"]["steps"] = [
        {"path": "/", "capture": {"tok": "t=(\\w+)"}}, {"path": "/x/{tok}/{seq}"}]
    assert target_from_dict(data, file="t.toml").probes["home"].steps[1].path == "/x/{tok}/{seq}"


def test_nonce_is_always_known_body_only_after_body_size() -> None:
    t = target_from_dict(_with('[probes.x]\nservice = "web"\n'
                               'steps = [{ path = "/p/{nonce}", '
                               'headers = { X-Id = "{nonce}" } }]\n'))
    assert t.probes["x"].steps[0].path == "/p/{nonce}"
    with pytest.raises(ConfigError, match=r"\{body\} is never captured"):
        target_from_dict(_with('[probes.x]\nservice = "web"\n'
                               'steps = [{ method = "POST", path = "/", '
                               'form = { a = "{body}" } }]\n'))


@pytest.mark.parametrize("line", [
    '172.17.0.1 127.0.0.1:8080 - [28/Nov/2026:07:00:00 +0000] "PUT /dav/a.bin HTTP/1.1" 507 0',
    "[ERROR] InnoDB: preallocating 180224 bytes for file ./probe/t.ibd failed with error 28",
    "[FATAL] InnoDB: Error (Out of disk space) in rollback",
    "write failed: Out of space",
])
def test_default_cause_patterns_name_what_real_servers_write(line: str) -> None:
    """lighttpd/Apache's 507 line and InnoDB's error 28 name the full disk as the cause."""
    assert any(re.search(p, line) for p in DEFAULT_CAUSE_PATTERNS), line


def test_default_cause_patterns_leave_other_statuses_and_numbers_alone() -> None:
    for line in ('"GET / HTTP/1.1" 500 12', "error 280 in module", "served 507 requests"):
        assert not any(re.search(p, line) for p in DEFAULT_CAUSE_PATTERNS), line


def test_a_log_flood_goes_only_where_a_log_of_the_app_lives() -> None:
    """While a volume is full the battery floods the logs (more than a page) only where a
    log of the app is written to that volume; elsewhere a few marks show logging goes on."""
    from harness.battery import FLOOD, MARKS, flood

    ref = reference_target()
    assert [v for v in ref.volumes if ref.holds_logs(v)] == ["applogs", "weblogs"]
    assert flood(ref, "applogs") == FLOOD and flood(ref, "downloads") == MARKS
    bench = load_target(str(Path(__file__).parents[2] / "bench" / "fulldisk.toml"))
    assert not bench.holds_logs("www") and flood(bench, "www") == MARKS  # container log
    data = bench.model_dump(mode="json", exclude_none=True,
                            exclude={"path", "root", "derived"})
    as_file = {**data, "logs": [{"kind": "file", "service": "web", "path": "/srv/www/a.log"}]}
    assert target_from_dict(as_file).holds_logs("www")  # a declared file log inside it
    marked = {**data, "volumes": {"www": {**data["volumes"]["www"], "mounts": [
        {"service": "web", "path": "/srv/www", "logs": True}]}}}
    assert target_from_dict(marked).holds_logs("www")  # a mount that holds open logs


def test_container_output_is_a_log_source_unless_a_service_opts_out() -> None:
    """Every service's container output is read as a log source without a [[logs]] entry;
    ``log_output = false`` leaves it out, and declaring it anyway is refused."""
    base = {"name": "t", "volumes": {"v": {"size": "1MiB", "mounts": [
        {"service": "web", "path": "/v"}]}}}
    t = target_from_dict({**base, "services": {"web": {"image": "x"}, "db": {"image": "y"}}},
                         file="<t>")
    assert [(s.kind, s.service) for s in t.logs] == [("container", "web"),
                                                     ("container", "db")]
    t = target_from_dict({**base, "services": {"web": {"image": "x"}},
                          "logs": [{"kind": "container", "service": "web"}]}, file="<t>")
    assert len(t.logs) == 1  # declared once, not added again
    t = target_from_dict({**base, "services": {"web": {"image": "x", "log_output": False}}},
                         file="<t>")
    assert t.logs == []
    with pytest.raises(ConfigError, match="log_output = false"):
        target_from_dict({**base, "services": {"web": {"image": "x", "log_output": False}},
                          "logs": [{"kind": "container", "service": "web"}]}, file="<t>")
