"""Fixtures of the tests that need the Docker engine."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def inspect_container() -> Any:
    """The engine's own record of a container by name, read with docker-py: a witness
    independent of the harness (which keeps docker-py objects inside harness/engine.py)."""
    import docker

    client = docker.from_env()

    def inspect(name: str) -> dict[str, Any]:
        return dict(client.api.inspect_container(name))

    return inspect
