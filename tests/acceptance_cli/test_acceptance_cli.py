"""The acceptance checks (tests/acceptance.py) against a real `payments-sandbox serve` process, the
way a CI job runs it beside an app: the same checks run against the container image in
tests/container, so the two ways of shipping the sandbox cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from acceptance import CHECKS

from sandbox.launcher import start


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with start(["--log-level", "warning"], log_dir=tmp_path_factory.mktemp("acceptance-cli")) as server:
        yield server.base_url


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_acceptance(base_url: str, check: Callable[[str], None]) -> None:
    check(base_url)
