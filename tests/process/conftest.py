"""Fixtures that run a real `payments-sandbox serve` subprocess and talk to it over HTTP.

One server per test session (per xdist worker: each worker is its own session) serves most tests;
every test gets its own tenant (a fresh bearer token), so tests never see each other's charges,
idempotency keys or clock. Tests that need special flags start their own server with `start_server`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from sandbox.launcher import HEALTH, ServerProcess, free_port, run_cli

API = "/v1/payments"


class Server(ServerProcess):
    """A running `payments-sandbox serve` process (sandbox.launcher), whose output the tests read
    as `stderr()`."""

    def stderr(self) -> str:
        return self.log()


# Plain HTTP only: a client without TLS set-up starts in microseconds rather than ~100 ms.
_PLAIN = {"verify": False, "trust_env": False}


def health(base_url: str) -> httpx.Response | None:
    """GET the health endpoint; None while nothing answers on the port."""
    try:
        return httpx.get(base_url + HEALTH, timeout=1.0, **_PLAIN)
    except httpx.TransportError:
        return None


class Tenant:
    """One tenant of a running sandbox: an HTTP client carrying its own bearer token."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.token = token or f"t-{uuid4()}"
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30.0, **_PLAIN
        )

    def close(self) -> None:
        self.http.close()

    def charge(self, amount: int, currency: str = "USD", *, key: str | None = None, **fields: Any) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key is not None else {}
        return self.http.post(f"{API}/charge", json={"amount": amount, "currency": currency, **fields}, headers=headers)

    def refund(self, charge_id: str, *, key: str | None = None, **fields: Any) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key is not None else {}
        return self.http.post(f"{API}/refund", json={"charge_id": charge_id, **fields}, headers=headers)

    def get(self, charge_id: str) -> dict[str, Any]:
        response = self.http.get(f"{API}/charge/{charge_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def charges(self, status: str | None = None) -> dict[str, Any]:
        params = {"status": status} if status else {}
        response = self.http.get(f"{API}/charges", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def ids(self, status: str | None = None) -> list[str]:
        return [charge["id"] for charge in self.charges(status)["data"]]

    def advance(self, seconds: float) -> httpx.Response:
        response = self.http.post("/__sandbox/clock/advance", json={"seconds": seconds})
        assert response.status_code == 200, response.text
        return response

    def scenarios(self) -> list[dict[str, Any]]:
        response = self.http.get("/__sandbox/scenarios")
        assert response.status_code == 200, response.text
        rules: list[dict[str, Any]] = response.json()["rules"]
        return rules


class Launcher:
    """Starts sandbox servers and, on `close`, stops the ones still running (each must exit 0)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.servers: list[Server] = []

    def __call__(
        self,
        *args: str,
        ready: bool = True,
        port: int | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Server:
        """`payments-sandbox serve ARGS...`; see `ServerProcess.start` for `ready`, `port`, `env`."""
        server = Server.start(args, ready=ready, port=port, env=env, cwd=cwd, log_dir=self.log_dir)
        self.servers.append(server)
        return server

    def close(self) -> None:
        failures = []
        for server in self.servers:
            if server.proc.poll() is None:  # one that exited by itself is the test's business
                code = server.stop()
                if code != 0:
                    failures.append(f"port {server.port}: exit code {code} on SIGTERM\n{server.stderr()}")
        assert not failures, "\n".join(failures)


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    """`start_server(*args, env=..., cwd=...)` -> a ready Server that lives until the session ends.

    For module-scoped servers with their own flags.
    """
    launcher = Launcher(tmp_path_factory.mktemp("sandbox-logs"))
    yield launcher
    launcher.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Launcher]:
    """Like `start_server`, for one test: `spawn(*args, ready=False)` does not wait for health."""
    launcher = Launcher(tmp_path)
    yield launcher
    launcher.close()


@pytest.fixture(scope="session", params=["memory", "sqlite", "redis"])
def sandbox_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of this session's sandbox, started with the built-in scenario pack only, once
    per store: memory in one process; SQLite and Redis with two worker processes sharing the store,
    so that every test also shows any worker answering any request the same way.

    Teardown sends SIGTERM and asserts exit code 0.
    """
    folder = tmp_path_factory.mktemp("sandbox-session")
    flags: tuple[str, ...] = ()
    if request.param == "sqlite":
        flags = ("--store", f"sqlite:///{folder / 'sandbox.db'}", "--workers", "2")
    elif request.param == "redis":
        flags = ("--store", str(request.getfixturevalue("redis_url")) + "/3", "--workers", "2")
    launcher = Launcher(folder)
    yield launcher(*flags).base_url
    launcher.close()


@pytest.fixture
def tenants() -> Iterator[Any]:
    """`tenants(base_url)` -> a fresh Tenant of that server; closed after the test."""
    made: list[Tenant] = []

    def make(base_url: str) -> Tenant:
        made.append(Tenant(base_url))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def tenant(sandbox_url: str, tenants: Any) -> Tenant:
    """A fresh tenant of the session sandbox."""
    client: Tenant = tenants(sandbox_url)
    return client


@pytest.fixture
def other_tenant(sandbox_url: str, tenants: Any) -> Tenant:
    """A second fresh tenant of the session sandbox, for isolation tests."""
    client: Tenant = tenants(sandbox_url)
    return client


@pytest.fixture(scope="session")
def cli() -> Any:
    """`cli(*args, env=...)` -> the CompletedProcess of `payments-sandbox ARGS...`."""
    return run_cli


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture
def answers() -> Any:
    """`answers(base_url)` -> the health Response, or None while nothing listens there."""
    return health
