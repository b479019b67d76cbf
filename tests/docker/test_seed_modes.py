"""Seeding keeps the image's folders as the image made them: the folder the service sees
has the image's mode (sticky, setgid), owner and group, its files too, by either agent;
a target's explicit ``owner``/``mode`` apply to that folder instead.

The image is built here from the local base image (no registry): a 1733 folder as Debian's
PHP session folder, a setgid folder of group staff, and a folder owned by a user the image
creates.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import Stack, Target
from harness.target import target_from_dict

pytestmark = pytest.mark.docker

IMAGE = "fulldisk-test/seed-modes:1"
DOCKERFILE = """\
ARG BASE=fulldisk/base:bookworm
FROM ${BASE}
RUN useradd --system --uid 990 --user-group --no-create-home svc \\
 && mkdir -p /srv/sess /srv/group /srv/own /srv/given \\
 && chmod 1733 /srv/sess \\
 && chgrp staff /srv/group && chmod 2775 /srv/group && touch /srv/group/keep \\
 && echo hi > /srv/own/f && chown -R svc:svc /srv/own && chmod 0750 /srv/own \\
 && chmod 0640 /srv/own/f && chmod 1777 /srv/given
"""


def modes_target() -> Target:
    def vol(path: str, **extra: str) -> dict[str, object]:
        return {"size": "256KiB", "inodes": 64,
                "mounts": [{"service": "one", "path": path}], **extra}

    return target_from_dict({
        "name": "seedmodes",
        "services": {"one": {"image": IMAGE, "command": ["sleep", "infinity"]}},
        "volumes": {"sess": vol("/srv/sess"), "group": vol("/srv/group"),
                    "own": vol("/srv/own"),
                    "given": vol("/srv/given", owner="990:990", mode="0700")},
    }, file="<seedmodes>")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test image, built once from the local base image."""
    from harness import engine

    ctx: Path = tmp_path_factory.mktemp("seedmodes")
    (ctx / "Dockerfile").write_text(DOCKERFILE, encoding="utf-8")
    engine.build_image(str(ctx), IMAGE, buildargs={"BASE": engine.BASE_IMAGE})
    return IMAGE


@pytest.mark.parametrize("agent", ["host", "container"])
def test_the_folder_the_service_sees_keeps_the_images_mode_and_owner(
        image: str, agent: str, fulldisk_make_stack: Callable[..., Stack]) -> None:
    from harness import hostfs

    if agent == "host" and hostfs.unavailable("auto") is not None and not os.environ.get("CI"):
        pytest.skip(f"volumes cannot be mounted here: {hostfs.unavailable('auto')}")
    stack = fulldisk_make_stack(modes_target(), agent=agent)
    code, out = stack.service("one").exec(
        ["stat", "-c", "%n %a %U:%G", "/srv/sess", "/srv/group", "/srv/group/keep",
         "/srv/own", "/srv/own/f", "/srv/given"])
    assert code == 0, out
    got = dict(line.split(" ", 1) for line in out.strip().splitlines())
    assert got == {
        "/srv/sess": "1733 root:root",  # sticky and world-writable, as PHP needs it
        "/srv/group": "2775 root:staff",  # setgid: new files take the folder's group
        "/srv/group/keep": "644 root:staff",
        "/srv/own": "750 svc:svc",  # a user the image made
        "/srv/own/f": "640 svc:svc",
        "/srv/given": "700 svc:svc",  # the target's owner and mode, on the folder it sees
    }, got
    # and the service can use it as the image meant: any user may create a file in 1733
    code, out = stack.service("one").exec(["sh", "-c", "echo s > /srv/sess/sess_1"],
                                          user="33:33")
    assert code == 0, out
