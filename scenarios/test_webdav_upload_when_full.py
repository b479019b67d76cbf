"""A corpus target (examples/webdav: stock Debian lighttpd + mod_webdav): an upload to a
full share is refused (507, fast, whole body), never stored half, and the share takes
uploads again once space is back. The module points the fixtures at that target."""

from pathlib import Path

import pytest

from harness import load_target


@pytest.fixture(scope="module")
def fulldisk_target():
    root = Path(__file__).resolve().parents[1]
    return load_target(root / "examples" / "webdav" / "fulldisk.toml")


@pytest.mark.chaos
@pytest.mark.docker
def test_upload_refused_when_the_share_is_full(fulldisk_stack):
    with fulldisk_stack.full("dav"):
        fulldisk_stack.probe("put")              # PUT 64 KiB of fresh content, GET it back
    fulldisk_stack.judge("graceful_refusal", "no_silent_write_loss", "recovery")
