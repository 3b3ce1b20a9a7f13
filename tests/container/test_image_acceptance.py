"""The acceptance checks (tests/acceptance.py) against the image, as the CLI passes them in
tests/acceptance_cli: a container is the same sandbox, reached over the host's network."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from acceptance import CHECKS
from container_support import Container


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_acceptance(container: Container, check: Callable[[str], None]) -> None:
    check(container.base_url)
