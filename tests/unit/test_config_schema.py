"""The JSON Schema of a target config: made from the models, committed as
fulldisk.schema.json (stale when it differs), and true to every target the repository
ships (each validates against it) and to the loader (a typo and a bad size are refused)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.config_schema import SCHEMA_FILE, schema_text, target_schema

ROOT = Path(__file__).resolve().parents[2]
TARGETS = sorted([*ROOT.glob("examples/*/*.toml"), ROOT / "harness/targets/datahub.toml",
                  ROOT / "bench/fulldisk.toml"])


def test_the_committed_schema_is_the_models_schema() -> None:
    committed = (ROOT / SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == schema_text(), (
        f"{SCHEMA_FILE} is stale: run `.venv/bin/fulldisk schema > {SCHEMA_FILE}`")


def test_fulldisk_schema_prints_it() -> None:
    res = CliRunner().invoke(cli, ["schema"])
    assert res.exit_code == 0 and json.loads(res.output) == target_schema()


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = target_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", TARGETS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_target_follows_the_schema(path: Path, validator: Any) -> None:
    assert len(TARGETS) >= 8
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(data)]
    assert errors == []


@pytest.mark.parametrize(("change", "where"), [
    ({"volumes": {"v": {"size": "lots", "mounts": [{"service": "web", "path": "/v"}]}}},
     "volumes.v.size"),
    ({"volumes": {"v": {"size": "1MiB", "sise": 1, "mounts": [{"service": "web",
                                                               "path": "/v"}]}}}, "volumes.v"),
    ({"probes": {"p": {"service": "web", "steps": [{"path": "/", "multipart": {}}]}}},
     "probes.p.steps.0"),
])
def test_the_schema_refuses_what_the_loader_refuses(change: dict[str, Any], where: str,
                                                    validator: Any) -> None:
    data = {"name": "x", "services": {"web": {"image": "x", "ports": [80]}},
            "volumes": {"v": {"size": "64KiB", "mounts": [{"service": "web", "path": "/v"}]}},
            **change}
    errors = list(validator.iter_errors(data))
    assert [".".join(map(str, e.absolute_path)) for e in errors] == [where]


def test_with_compose_services_and_mounts_come_from_the_compose_file(validator: Any) -> None:
    partial = {"name": "x", "compose": "docker-compose.yml",
               "services": {"db": {"ready": {"log": "ready"}}},
               "volumes": {"data": {"size": "4MiB"}}}
    assert list(validator.iter_errors(partial)) == []
    by_hand = {k: v for k, v in partial.items() if k != "compose"}
    where = sorted(".".join(map(str, e.absolute_path)) for e in validator.iter_errors(by_hand))
    assert where == ["services.db", "volumes.data"]  # image and mounts are required there
