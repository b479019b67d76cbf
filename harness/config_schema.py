"""The JSON Schema of a target config, made from the models that validate it.

``fulldisk schema`` prints it; the repository commits it as ``fulldisk.schema.json`` so a
TOML editor (``#:schema ./fulldisk.schema.json`` at the top of a fulldisk.toml) completes
and checks keys. The models stay the one source: a test fails when the file is stale.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from .target import Target

SCHEMA_FILE = "fulldisk.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


# With ``compose``, a service table only adds to the compose file's service (no image of
# its own) and a volume's mounts come from the compose file's named volume.
COMPOSE_LOOSENS = {"services": ("Service", "image"), "volumes": ("VolumeSpec", "mounts")}


def target_schema() -> dict[str, Any]:
    """The target config's JSON Schema (keys as they are written in the TOML)."""
    schema = Target.model_json_schema(by_alias=True, mode="validation")
    defs, props = schema["$defs"], schema["properties"]
    strict, loose = {}, {}
    for key, (model, key_from_compose) in COMPOSE_LOOSENS.items():
        relaxed = copy.deepcopy(defs[model])
        relaxed["required"] = [r for r in relaxed.get("required", []) if r != key_from_compose]
        relaxed["description"] += (f" With 'compose', '{key_from_compose}' comes from the "
                                   "compose file.")
        defs[f"Compose{model}"] = relaxed
        strict[key] = props[key]
        loose[key] = {**props[key], "additionalProperties": {"$ref": f"#/$defs/Compose{model}"}}
        props[key] = {"title": props[key]["title"], "type": "object"}
    schema["required"] = [r for r in schema["required"] if r not in COMPOSE_LOOSENS]
    schema["if"] = {"required": ["compose"]}
    schema["then"] = {"properties": loose}
    schema["else"] = {"properties": strict, "required": list(COMPOSE_LOOSENS)}
    return {"$schema": DIALECT, "title": "fulldisk target (fulldisk.toml or [tool.fulldisk])",
            **{k: v for k, v in schema.items() if k != "title"}}


def schema_text() -> str:
    """The schema as the committed file holds it: sorted keys, two-space indent, newline."""
    return json.dumps(target_schema(), indent=2, sort_keys=True) + "\n"
