"""The rules of ``fulldisk init``: folders merged to the one a team mounts, logs told from a
database's files, sizes with a floor, the fix for a service that exited, exec stubs."""

from __future__ import annotations

import tomllib

from harness.initrules import (
    FLOOR,
    exit_hint,
    is_data_file,
    is_log,
    is_scratch,
    merge,
    owned_data,
    reads_as_log,
    server_stubs,
    size_for,
)
from harness.inittoml import FolderUse, Form, Seen, ServiceSpec, render
from harness.target import target_from_dict

AOF = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$5\r\nprobe\r\n$3\r\nabc\r\n" * 20
REDIS_LOG = (b"7:M 07 Dec 2026 22:30:01.123 * Ready to accept connections tcp\n"
             b"7:M 07 Dec 2026 22:30:02.456 * DB saved on disk\n") * 10


def test_siblings_merge_into_the_folder_a_team_mounts() -> None:
    var = ["/srv/app/var/cache", "/srv/app/var/log", "/srv/app/var/sessions"]
    listing = {"/srv/app/var": var}
    assert merge(var, listing) == ["/srv/app/var"]
    # a parent that holds more than the written folders (code, links) stays unmerged
    wiki = ["/var/lib/mediawiki/images", "/var/lib/mediawiki/cache"]
    assert merge(wiki, {"/var/lib/mediawiki": [*wiki, "/var/lib/mediawiki/index.php"]}) == \
        sorted(wiki)
    # shared folders are never the merge: /var/lib holds every package's data
    libs = ["/var/lib/redis", "/var/lib/mysql"]
    assert merge(libs, {"/var/lib": libs}) == sorted(libs)
    # unknown listing: no merge; nested folders fold into the outermost
    assert merge(var, {}) == sorted(var)
    assert merge(["/srv/a", "/srv/a/b"], {}) == ["/srv/a"]


def test_owned_folders_proposed_unless_a_tree_of_code() -> None:
    html = ["/var/www/html"] + [f"/var/www/html/wp-includes/d{i}" for i in range(60)]
    owned = ["/var/lib/mediawiki/images", "/var/lib/mediawiki/images/thumb", "/run/apache2",
             "/var/log/mediawiki", *html]
    keep, big = owned_data(owned)
    assert keep == ["/var/lib/mediawiki/images"] and big == ["/var/www/html"]


def test_a_databases_append_only_file_is_data_not_a_log() -> None:
    aof = "/var/lib/redis/appendonlydir/appendonly.aof.1.incr.aof"
    assert is_data_file(aof) and not is_log(aof, appended=True, sample=AOF)
    for path in ("/var/lib/mysql/ib_logfile0", "/var/lib/mysql/aria_log.00000001",
                 "/var/lib/postgresql/15/main/pg_wal/000000010000000000000001",
                 "/srv/app/db.sqlite-wal", "/srv/app/db.sqlite-journal"):
        assert is_data_file(path) and not is_log(path, appended=True, sample=REDIS_LOG), path
    # logs: named *.log, in /var/log, or appended to and reading as records
    assert is_log("/var/log/redis/redis-server.log", appended=False, sample=None)
    assert is_log("/srv/app/var/out", appended=True, sample=REDIS_LOG)
    assert not is_log("/srv/app/var/out", appended=False, sample=REDIS_LOG)
    # named like a log but binary (MariaDB's ddl_recovery.log): data
    assert not is_log("/var/lib/mysql/ddl_recovery.log", appended=False, sample=b"")
    assert not is_log("/srv/x/state.log", appended=False, sample=b"\x00\x01\x02 bin" * 9)
    assert is_log("/srv/x/app.log", appended=False, sample=b"")  # empty: by its name
    assert not reads_as_log(AOF) and not reads_as_log(b"\0\1\2" * 100)
    assert reads_as_log(REDIS_LOG)


def test_scratch_folders_and_sizes() -> None:
    assert is_scratch("/run/mysqld") and is_scratch("/tmp") and not is_scratch("/srv/tmpl")
    size, why = size_for(8192, "data")
    assert size == FLOOR["data"] == 4 * 1024 * 1024 and "floor" in why
    size, why = size_for(3 * 1024 * 1024, "data")
    assert size == 7 * 1024 * 1024 and "twice" in why
    assert size_for(0, "logs")[0] == 1024 * 1024


def test_the_hint_of_a_service_that_exited_names_the_path() -> None:
    pg = ('initdb: error: could not create directory "/var/lib/postgresql/data/pg_wal": '
          "Permission denied\nchild process exited with exit code 1")
    hint = exit_hint(pg, "db")
    assert "/var/lib/postgresql/data/pg_wal" in hint and "owner" in hint
    missing = exit_hint("FATAL: could not open /etc/app/app.conf: No such file or directory",
                        "web")
    assert "/etc/app/app.conf is missing" in missing
    assert "--command web=" in exit_hint("Segmentation fault", "web")


def test_stubs_for_the_servers_found() -> None:
    stubs = server_stubs({"redis-server"}, {"redis-cli"}, [])
    assert [s.server for s in stubs] == ["Redis"] and stubs[0].expect_output == "OK"
    assert server_stubs({"redis-server"}, set(), []) == []  # no client, no stub
    (db,) = server_stubs({"mariadbd"}, {"mariadb"}, [])
    assert db.command[0] == "mariadb" and "{nonce}" in db.command[-1]
    assert "{body}" in db.command[-1] and db.readback_expect == "{body_sha256}"
    (lite,) = server_stubs(set(), {"php", "setpriv"}, [("/var/lib/db/wiki.sqlite", "33:33")])
    assert lite.command[:4] == ["setpriv", "--reuid=33", "--regid=33", "--clear-groups"]
    assert lite.command[4] == "php" and "/var/lib/db/wiki.sqlite" in lite.command[6]
    (own,) = server_stubs(set(), {"sqlite3", "setpriv"}, [("/d/x.db", "33:33")],
                          exec_user="1000:1000")  # execs that cannot change user: as they are
    assert own.command[0] == "sqlite3"
    (pg,) = server_stubs({"postgres"}, {"psql"}, [])
    assert pg.timeout >= 10 and "${" not in " ".join(pg.command)  # no ${VAR} to expand


def test_render_roles_stubs_and_login() -> None:
    (redis,) = server_stubs({"redis-server"}, {"redis-cli"}, [])
    (db,) = server_stubs({"mariadbd"}, {"mariadb"}, [])
    sv = Seen(ServiceSpec("app", "app:1"), "", (8000,), ports={8000: 200},
              folders=[FolderUse("/var/lib/redis", 8192, 5, "100:101", "0750", "written",
                                 ("/var/lib/redis/appendonlydir/appendonly.aof.1.incr.aof",)),
                       FolderUse("/var/log/redis", 4096, 2, "100:4", "2750"),
                       FolderUse("/srv/dav", 0, 1, "33:33", "0755", "owned by uid 33")],
              logs=["/var/log/redis/redis-server.log"], scratch=["/run/redis"],
              forms=[Form("/login", "/login", "POST", ("user", "pass"), ("csrf_token",),
                          "pass")],
              stubs=[(redis, None), (db, "the write answered exit 1: Access denied")])
    text = render([sv], name="app", warmup=None, seconds=2)
    t = target_from_dict(tomllib.loads(text))
    by_path = {m.path: v for v in t.volumes.values() for m in v.mounts}
    assert by_path["/var/lib/redis"].role != "logs"  # its AOF is data
    assert by_path["/var/log/redis"].role == "logs"
    assert by_path["/srv/dav"].owner == "33:33" and "not written during the warm-up" in text
    assert all(v.size >= 1024 * 1024 for v in t.volumes.values())
    assert by_path["/var/lib/redis"].size >= 4 * 1024 * 1024
    assert "/run" not in " ".join(by_path) and "(pid files, sockets" in text
    execs = [p for p in t.probes.values() if p.kind == "exec"]
    assert len(execs) == 1 and execs[0].expect_output == "OK"  # the failed one is commented
    assert "FAILED (the write answered exit 1: Access denied)" in text
    assert '# [probes.app-login]' in text and 'capture = { csrf = ' in text
    assert 'csrf_token = "{csrf}"' in text
    assert 'pass = "{password}"' in text
    # the commented login stub is valid once uncommented
    flow = "\n".join(ln[2:] for ln in text.splitlines()
                     if ln.startswith("# ") and not ln.startswith("# A")
                     and (ln.startswith("# [probes.app-login]") or ln[2:].startswith(
                         ("service", "port", "core", "steps", "  {", "]"))))
    login = tomllib.loads(flow)["probes"]["app-login"]
    assert [s["name"] for s in login["steps"]] == ["form", "login", "check"]


def test_the_crawl_reads_forms_as_steps_take_them() -> None:
    from harness.starter import _Links

    page = _Links("/account/")
    page.feed('<form method="post" action="login?next=/"><input type="hidden" '
              'name="csrfmiddlewaretoken" value="abc"><input name="username">'
              '<input type="password" name="password"><button type="submit">Go</button>'
              '</form><form action="/search"><input name="q"></form>')
    login, search = page.forms
    assert (login.action, login.method, login.password) == ("/account/login?next=/", "POST",
                                                             "password")
    assert login.fields == ("username", "password") and login.hidden == ("csrfmiddlewaretoken",)
    assert (search.action, search.method, search.password) == ("/search", "GET", None)
