"""Compose files as the source of a target's services (no Docker): the mapping of each
supported key, Compose's interpolation, validation against the Compose Specification's
schema, and the refusals that name the key fulldisk cannot honour."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness.compose import duration, interpolate, map_compose
from harness.errors import ConfigError
from harness.target import Target, load_target

FULL = """
name: shop
services:
  web:
    build:
      context: ./app
      dockerfile: Dockerfile.web
      args: { PHP_VERSION: "8.2", DEBUG: "false" }
    command: ["gunicorn", "-b", "0.0.0.0:8000", "app:app"]
    entrypoint: /entry.sh
    environment:
      DB_HOST: db
      MODE: ${MODE:-hardened}
      EMPTY:
    env_file: web.env
    ports: ["127.0.0.1:8080:8000", "9000-9001"]
    user: "33:33"
    depends_on:
      db: { condition: service_healthy }
    healthcheck:
      test: ["CMD", "curl", "-fsS", "http://localhost:8000/health"]
      interval: 5s
      retries: 5
      start_period: 1m
    cap_add: [CHOWN]
    cap_drop: [NET_RAW]
    tmpfs: ["/run:size=8m,mode=1777", /var/cache/scratch]
    volumes:
      - uploads:/srv/uploads
      - type: volume
        source: sessions
        target: /var/lib/php/sessions/
    restart: unless-stopped
    container_name: shop-web
    networks: [front]
  db:
    image: postgres:16
    environment: ["POSTGRES_PASSWORD=${DB_PASSWORD:?set the password}", PGDATA]
    volumes: [pgdata:/var/lib/postgresql/data]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U postgres"]
  tools:
    image: busybox
    profiles: [debug]
volumes:
  uploads:
  sessions:
  pgdata:
networks:
  front:
"""

TOML = """
name = "shop"
compose = "docker-compose.yml"

[services.db]
ready = { log = "ready to accept connections" }

[volumes.uploads]
size = "1MiB"
owner = "33:33"
role = "bulk"

[volumes.sessions]
size = "256KiB"
owner = "33:33"

[volumes.pgdata]
size = "4MiB"
owner = "999:999"
"""


def project(tmp_path: Path, compose: str = FULL, toml: str = TOML,
            env: str = "DB_PASSWORD=s3cret\n") -> Path:
    (tmp_path / "app").mkdir(exist_ok=True)
    (tmp_path / "app" / "Dockerfile.web").write_text("FROM scratch\n")
    (tmp_path / "web.env").write_text("FROM_FILE=1\nDB_HOST=overridden-by-environment\n")
    (tmp_path / ".env").write_text(env)
    (tmp_path / "docker-compose.yml").write_text(textwrap.dedent(compose))
    (tmp_path / "fulldisk.toml").write_text(textwrap.dedent(toml))
    return tmp_path / "fulldisk.toml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MODE", "DB_PASSWORD", "PGDATA"):
        monkeypatch.delenv(var, raising=False)


def test_a_compose_file_becomes_the_targets_services(tmp_path: Path) -> None:
    t = load_target(project(tmp_path))
    assert isinstance(t, Target) and set(t.services) == {"web", "db"}  # profiles: left out
    web = t.services["web"]
    assert web.build == "app" and web.dockerfile == "Dockerfile.web"
    assert web.image == "fulldisk-compose/shop-web:latest"
    assert web.build_args == {"PHP_VERSION": "8.2", "DEBUG": "false"}
    assert web.command == ["gunicorn", "-b", "0.0.0.0:8000", "app:app"]
    assert web.entrypoint == "/entry.sh"
    assert web.env == {"FROM_FILE": "1", "DB_HOST": "db", "MODE": "hardened"}
    assert web.ports == [8000, 9000, 9001]
    assert web.user == "33:33" and web.depends_on == ["db"]
    assert web.cap_add == ["CHOWN"] and web.cap_drop == ["NET_RAW"]
    assert web.tmpfs == {"/run": "size=8m,mode=1777", "/var/cache/scratch": ""}
    assert web.ready is not None and web.ready.http == "/health" and web.ready.port == 8000
    assert web.ready.timeout == 85  # start_period 60 s + 5 retries of 5 s
    db = t.services["db"]
    assert db.image == "postgres:16" and db.env == {"POSTGRES_PASSWORD": "s3cret"}
    assert db.ready is not None and db.ready.log == "ready to accept connections"  # the toml's
    mounts = {n: [(m.service, m.path) for m in v.mounts] for n, v in t.volumes.items()}
    assert mounts == {"uploads": [("web", "/srv/uploads")],
                      "sessions": [("web", "/var/lib/php/sessions")],
                      "pgdata": [("db", "/var/lib/postgresql/data")]}
    assert t.volumes["uploads"].role == "bulk" and t.volumes["pgdata"].owner == "999:999"


def test_compose_services_picks_some(tmp_path: Path) -> None:
    toml = TOML.replace('compose = "docker-compose.yml"',
                        'compose = "docker-compose.yml"\ncompose_services = ["db"]')
    toml = toml.split("[volumes.uploads]")[0] + '[volumes.pgdata]\nsize = "4MiB"\n'
    t = load_target(project(tmp_path, toml=toml))
    assert set(t.services) == {"db"} and set(t.volumes) == {"pgdata"}


def test_a_picked_service_needs_what_it_depends_on(tmp_path: Path) -> None:
    toml = TOML.replace('compose = "docker-compose.yml"',
                        'compose = "docker-compose.yml"\ncompose_services = ["web"]')
    with pytest.raises(ConfigError) as e:
        load_target(project(tmp_path, toml=toml))
    assert e.value.key == "services.web.depends_on"
    assert "add 'db' to compose_services" in str(e.value)


def test_the_shared_disk_variant_of_a_compose_target_keeps_its_services(tmp_path: Path) -> None:
    t = load_target(project(tmp_path))
    shared = t.shared()
    assert set(shared.services) == {"web", "db"} and set(shared.volumes) == {"shared"}


ENV = {"SET": "v", "EMPTY": ""}


@pytest.mark.parametrize(("text", "want"), [
    ("$SET/${SET}", "v/v"),
    ("${UNSET}", ""),
    ("${UNSET:-d}|${EMPTY:-d}|${SET:-d}", "d|d|v"),
    ("${UNSET-d}|${EMPTY-d}|${SET-d}", "d||v"),
    ("${UNSET:+a}|${EMPTY:+a}|${SET:+a}", "||a"),
    ("${UNSET+a}|${EMPTY+a}|${SET+a}", "|a|a"),
    ("${UNSET:-${SET}-x}", "v-x"),
    ("$$SET and $${SET} cost $$5", "$SET and ${SET} cost $5"),
    ("${SET:?must be set}", "v"),
])
def test_interpolation_as_compose_does_it(text: str, want: str) -> None:
    assert interpolate(text, ENV) == want


@pytest.mark.parametrize(("text", "said"), [
    ("${UNSET:?the password}", "required variable UNSET is unset: the password"),
    ("${EMPTY:?}", "required variable EMPTY is empty"),
    ("${UNSET?}", "required variable UNSET is unset"),
    ("${SET", "without its '}'"),
    ("cost $5", "'$' is followed by neither"),
    ("${SET!x}", "invalid variable"),
])
def test_interpolation_errors_name_the_key(text: str, said: str) -> None:
    with pytest.raises(ConfigError) as e:
        interpolate(text, ENV, "services.web.environment.X")
    assert said in e.value.message and e.value.key == "services.web.environment.X"
    assert e.value.hint


def test_a_required_variable_unset_is_refused_with_its_message(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_target(project(tmp_path, env=""))
    assert "required variable DB_PASSWORD is unset: set the password" in str(e.value)
    assert e.value.key == "services.db.environment[0]"


def test_the_environment_wins_over_the_dot_env(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", "from-env")
    monkeypatch.setenv("PGDATA", "/var/lib/postgresql/data/pg")
    t = load_target(project(tmp_path))
    assert t.services["db"].env == {"POSTGRES_PASSWORD": "from-env",
                                    "PGDATA": "/var/lib/postgresql/data/pg"}


def _refused(tmp_path: Path, service: dict[str, Any] | str, toml: str | None = None) -> ConfigError:
    body = service if isinstance(service, str) else "\n".join(
        f"    {k}: {v}" for k, v in service.items())
    compose = f"services:\n  web:\n    image: nginx\n{body}\nvolumes:\n  data:\n"
    toml = toml or 'name = "x"\ncompose = "docker-compose.yml"\n[volumes.data]\nsize = "1MiB"\n'
    with pytest.raises(ConfigError) as e:
        load_target(project(tmp_path, compose=compose, toml=toml))
    return e.value


@pytest.mark.parametrize(("service", "key", "said"), [
    ({"network_mode": "host"}, "services.web.network_mode", "network_mode 'host'"),
    ({"volumes": "['./conf:/etc/nginx/conf.d:ro']"}, "services.web.volumes[0]", "bind mount"),
    ({"volumes": "['data:/srv/data', '/var/lib/x']"}, "services.web.volumes[1]", "anonymous"),
    ({"volumes": "['data:/srv/data:ro']"}, "services.web.volumes[0]", "read-only"),
    ({"volumes": "['other:/srv/data']"}, "services.web.volumes", "not declared"),
    ({"working_dir": "/srv"}, "services.web.working_dir", "cannot honour 'working_dir'"),
    ({"read_only": "true"}, "services.web.read_only", "cannot honour 'read_only'"),
    ({"ports": "['53:53/udp']"}, "services.web.ports[0]", "udp"),
    ({"healthcheck": "{test: [CMD, nginx, -t]}"}, "services.web.healthcheck", "not an HTTP"),
    ({"build": "{context: ., dockerfile_inline: 'FROM x'}"}, "services.web.build.dockerfile_inline",
     "cannot honour"),
])
def test_what_fulldisk_cannot_honour_is_refused_naming_the_key(
        tmp_path: Path, service: dict[str, Any], key: str, said: str) -> None:
    err = _refused(tmp_path, service)
    assert err.key == key, err
    assert said in err.message and err.hint
    assert err.file is not None and err.file.endswith("docker-compose.yml")


def test_a_named_volume_without_a_size_is_refused(tmp_path: Path) -> None:
    err = _refused(tmp_path, {"volumes": "['data:/srv/data']"},
                   toml='name = "x"\ncompose = "docker-compose.yml"\n')
    assert err.key == "volumes.data" and "has no size" in err.message
    assert err.file is not None and err.file.endswith("fulldisk.toml")


def test_the_schema_refuses_what_compose_refuses(tmp_path: Path) -> None:
    err = _refused(tmp_path, {"restart": "{bad: 1}"})
    assert "Compose Specification" in err.message and err.key == "services.web.restart"
    err = _refused(tmp_path, {"not_a_compose_key": "1"})
    assert "Compose Specification" in err.message and "not_a_compose_key" in err.message


def test_an_unsupported_healthcheck_is_fine_when_the_toml_gives_ready(tmp_path: Path) -> None:
    compose = ("services:\n  web:\n    image: nginx\n    ports: ['80']\n    healthcheck:\n"
               "      test: [CMD, nginx, -t]\n")
    toml = ('name = "x"\ncompose = "docker-compose.yml"\n[services.web]\nready = { http = "/" }\n'
            '[volumes.v]\nsize = "1MiB"\nmounts = [{ service = "web", path = "/v" }]\n')
    t = load_target(project(tmp_path, compose=compose, toml=toml))
    assert t.services["web"].ready is not None and t.services["web"].ready.http == "/"


def test_a_tmpfs_over_a_filled_path_is_refused(tmp_path: Path) -> None:
    compose = "services:\n  web:\n    image: nginx\n    tmpfs: [/srv/data]\n"
    toml = ('name = "x"\ncompose = "docker-compose.yml"\n[volumes.v]\nsize = "1MiB"\n'
            'mounts = [{ service = "web", path = "/srv/data" }]\n')
    with pytest.raises(ConfigError) as e:
        load_target(project(tmp_path, compose=compose, toml=toml))
    assert e.value.key == "services.web.tmpfs" and "must fill" in e.value.message


def test_compose_services_without_compose_is_refused(tmp_path: Path) -> None:
    toml = ('name = "x"\ncompose_services = ["web"]\n[services.web]\nimage = "x"\n'
            '[volumes.v]\nsize = "1MiB"\nmounts = [{ service = "web", path = "/v" }]\n')
    with pytest.raises(ConfigError) as e:
        load_target(project(tmp_path, toml=toml))
    assert "compose_services" in str(e.value)


def test_a_missing_compose_file_is_named(tmp_path: Path) -> None:
    toml = 'name = "x"\ncompose = "nope.yml"\n'
    with pytest.raises(ConfigError) as e:
        load_target(project(tmp_path, toml=toml))
    assert "no such compose file" in str(e.value) and "nope.yml" in str(e.value)


def test_map_compose_reads_all_services_and_their_mounts(tmp_path: Path) -> None:
    project(tmp_path)
    m = map_compose(tmp_path / "docker-compose.yml", tmp_path, env={"DB_PASSWORD": "x"},
                    own_ready=frozenset({"db"}))
    assert m.project == "shop" and set(m.services) == {"web", "db"}
    assert m.mounts["pgdata"] == [("db", "/var/lib/postgresql/data")]


@pytest.mark.parametrize(("text", "secs"), [("10s", 10), ("1m30s", 90), ("500ms", 0.5),
                                            ("1h", 3600)])
def test_durations(text: str, secs: float) -> None:
    assert duration(text) == secs


def test_a_bad_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        duration("soon")


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["mediawiki", "webdav", "mariadb", "redis"])
def test_each_corpus_compose_target_is_its_hand_written_target(name: str) -> None:
    """examples/<name>/compose.toml, its services read from docker-compose.yml, loads into
    the same services, volumes and probes as the hand-written fulldisk.toml."""
    by_hand = load_target(EXAMPLES / name / "fulldisk.toml")
    composed = load_target(EXAMPLES / name / "compose.toml")
    assert composed.compose == "docker-compose.yml"
    assert composed.model_dump(exclude={"compose"}) == by_hand.model_dump(exclude={"compose"})
