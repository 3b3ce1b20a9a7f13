"""Fixtures for the suites that need a real server (robustness, security): a sandbox process per
test module, and a factory for tests that need their own.

Each server is `payments-sandbox serve` on a free port of 127.0.0.1 (tests/sandbox_server.py, on
`sandbox.launcher`), ready once its health check answers. At teardown it gets SIGTERM and must exit
0 with no traceback in its log: every module here also proves that the server survived what the
module threw at it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from redis_server import start_redis
from sandbox_server import SandboxProcess, start_sandbox

from sandbox.launcher import free_port, stop_process


def stop_cleanly(server: SandboxProcess, *, check_log: bool = True) -> None:
    code = server.stop()
    log = server.log()
    assert code == 0, f"the sandbox exited with {code} after SIGTERM:\n{log}"
    if check_log:
        assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """One server with default settings for the whole module."""
    server = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    try:
        yield server
    finally:
        stop_cleanly(server)


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., SandboxProcess]]:
    """`start_server(*flags)` starts a server of the test's own, stopped and checked after the test.

    `check_log=False` leaves the log to the test (it must still exit 0 on SIGTERM); `env` adds
    environment variables.
    """
    servers: list[tuple[SandboxProcess, bool]] = []

    def start(*flags: str, check_log: bool = True, env: dict[str, str] | None = None) -> SandboxProcess:
        servers.append((start_sandbox(tmp_path_factory.mktemp("sandbox"), *flags, env=env), check_log))
        return servers[-1][0]

    yield start
    failures = []
    for server, check_log in servers:  # every one is stopped, even when an earlier one fails its check
        try:
            stop_cleanly(server, check_log=check_log)
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n\n".join(failures)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `redis-server` (Debian's package) on a free port of 127.0.0.1 for this test session
    (each xdist worker has its own), without persistence; `redis://127.0.0.1:PORT`."""
    port = free_port()
    proc = start_redis(port, tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop_process(proc, timeout=10)
