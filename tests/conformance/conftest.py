"""Fixtures: one real sandbox process per configuration and module (tests/sandbox_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conformance_support import JWT_SECRET, stop
from sandbox_server import SandboxProcess, start_sandbox


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """A sandbox with no scenario pack and a JWT secret: see test_schemathesis.py for why."""
    server = start_sandbox(tmp_path_factory.mktemp("strict"), "--no-default-scenarios", "--jwt-secret", JWT_SECRET)
    yield server
    stop(server)


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """A sandbox as a user starts it: the built-in scenario pack, any bearer token is a tenant."""
    server = start_sandbox(tmp_path_factory.mktemp("default"))
    yield server
    stop(server)
