"""Fixtures for the container image's tests: the image, built once per session from this checkout
(container_support.py says how), and running containers of it, removed after their tests.

Without docker these tests skip, saying why, unless PAYMENTS_SANDBOX_REQUIRE_DOCKER is set (CI sets
it): then they fail, so that a CI machine that lost docker cannot pass by skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from container_support import (
    Container,
    Docker,
    RunImage,
    Unavailable,
    find_docker,
    prepare_image,
    running,
)

LABEL = f"payments-sandbox-test={uuid.uuid4().hex}"  # this session's containers, for the clean-up check


def _docker_required() -> bool:
    return os.environ.get("PAYMENTS_SANDBOX_REQUIRE_DOCKER", "") not in ("", "0")


def _unavailable(reason: Unavailable) -> None:
    if _docker_required():
        pytest.fail(f"PAYMENTS_SANDBOX_REQUIRE_DOCKER is set, but {reason}", pytrace=False)
    pytest.skip(f"{reason} (set PAYMENTS_SANDBOX_REQUIRE_DOCKER=1 to fail instead)")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist (`--dist loadgroup`) these tests are meant to run on one worker; when they do not
    (xdist 3.8 on pytest 9 drops the groups), prepare_image's lock still builds the image once. The
    first test to ask for the image waits for a base and a build: 1.5 to 3 min from nothing."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("container"))
            item.add_marker(pytest.mark.timeout(900))


@pytest.fixture(scope="session")
def docker() -> Iterator[Docker]:
    try:
        found = find_docker()
    except Unavailable as exc:
        _unavailable(exc)
        raise AssertionError("unreachable: skipped or failed") from exc
    yield found
    left = found.run("ps", "--all", "--quiet", "--filter", f"label={LABEL}").stdout.split()
    if left:
        found.run("rm", "--force", *left, check=False)
        pytest.fail(f"containers outlived their tests and were removed now: {left}")


@pytest.fixture(scope="session")
def image(docker: Docker) -> str:
    try:
        return prepare_image(docker)
    except Unavailable as exc:
        _unavailable(exc)
        raise AssertionError("unreachable: skipped or failed") from exc


@pytest.fixture(scope="session")
def run_image(docker: Docker, image: str) -> RunImage:
    """`with run_image(env={...}, volumes=[...]) as container:` a container of the image, serving."""

    def run(env: Mapping[str, str] | None = None, volumes: Sequence[str] = ()) -> AbstractContextManager[Container]:
        return running(docker, image, label=LABEL, env=env, volumes=volumes)

    return run


@pytest.fixture(scope="session")
def container(run_image: RunImage) -> Iterator[Container]:
    """One container with the image's defaults (nothing mounted at /scenarios), shared by the tests
    that only read from it; each acceptance check works as a tenant of its own."""
    with run_image() as started:
        yield started
