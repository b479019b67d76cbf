"""An image with a ``VOLUME`` makes the engine create an anonymous volume for each
container; nothing the run created may outlive it, so teardown removes those too (named
fulldisk volumes mounted at such a path replace them and are removed as before)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Stack, engine
from harness.target import target_from_dict

pytestmark = pytest.mark.docker

IMAGE = "fulldisk-test/anon-volume:1"
DOCKERFILE = """\
ARG BASE=fulldisk/base:bookworm
FROM ${BASE}
RUN mkdir -p /srv/data /var/cache/app
VOLUME ["/srv/data", "/var/cache/app"]
"""


def _anonymous() -> set[str]:
    """Every volume the engine holds that no one named (64 hex digits)."""
    return {str(v.name) for v in engine.client().volumes.list()
            if len(str(v.name)) == 64 and all(c in "0123456789abcdef" for c in str(v.name))}


def test_teardown_removes_the_volumes_the_engine_made_for_the_image(
        tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE, encoding="utf-8")
    engine.build_image(str(tmp_path), IMAGE, buildargs={"BASE": engine.BASE_IMAGE})
    target = target_from_dict({
        "name": "anon",
        "services": {"one": {"image": IMAGE, "command": ["sleep", "infinity"]}},
        # /srv/data is a fulldisk volume; /var/cache/app stays the engine's anonymous one
        "volumes": {"data": {"size": "256KiB", "mounts": [
            {"service": "one", "path": "/srv/data"}]}},
    }, file="<anon>")
    with Stack(target) as stack:
        [handle] = stack.services.values()
        mounts = engine.client().api.inspect_container(handle.id)["Mounts"]
        made = {m["Name"] for m in mounts if m.get("Type") == "volume"
                and m.get("Destination") == "/var/cache/app"}
        assert len(made) == 1 and made <= _anonymous()  # the engine made one for the image
    assert not made & _anonymous(), "the image's anonymous volume outlived the run"
