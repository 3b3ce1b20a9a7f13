"""Fixtures that run a real `payments-sandbox serve` subprocess and talk to it over HTTP.

One server per test session (per xdist worker: each worker is its own session) serves most tests;
every test gets its own tenant (a fresh bearer token), so tests never see each other's charges,
idempotency keys or clock. Tests that need special flags start their own server with `start_server`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from uuid import uuid4

import httpx
import pytest

DATA = Path(__file__).resolve().parent / "data"
API = "/v1/payments"
HEALTH = "/__sandbox/health"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
PORT_TRIES = 3  # a free port can be taken by another process before the server binds it


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it; we release it for the server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command() -> list[str]:
    """The installed console script, or the module when the script is not on PATH."""
    script = shutil.which("payments-sandbox")
    if script is None:
        venv_script = Path(sys.executable).parent / "payments-sandbox"
        script = str(venv_script) if venv_script.exists() else None
    return [script] if script else [sys.executable, "-m", "sandbox"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run `payments-sandbox ARGS...` to completion and capture its output."""
    return subprocess.run(
        [*command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@dataclass
class Server:
    """A running `payments-sandbox serve` process."""

    proc: subprocess.Popen[bytes]
    port: int
    stderr_path: Path
    stderr_file: IO[bytes]
    returncode: int | None = field(default=None)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        if not self.stderr_file.closed:
            self.stderr_file.flush()
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig`, wait for the process to end, and return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the sandbox did not stop within {STOP_TIMEOUT} s of signal {sig}:\n{self.stderr()}")
        finally:
            self.stderr_file.close()
        return self.returncode


def launch(
    args: Sequence[str],
    log_dir: Path,
    *,
    port: int | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Server:
    """Start `payments-sandbox serve ARGS...` without waiting for it (see `wait_ready`).

    With `port` None a free port is picked and passed as `--port`; pass a port to leave `--port`
    out of the command line (the caller then sets it some other way, e.g. the environment).
    """
    argv = [*command(), "serve", *args]
    if port is None:
        port = free_port()
        argv += ["--port", str(port)]
    stderr_path = log_dir / f"sandbox-{port}-{uuid4().hex[:8]}.log"
    stderr_file = stderr_path.open("wb")
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=stderr_file,
        stderr=stderr_file,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    return Server(proc, port, stderr_path, stderr_file)


# Plain HTTP only: a client without TLS set-up starts in microseconds rather than ~100 ms.
_PLAIN = {"verify": False, "trust_env": False}


def health(base_url: str) -> httpx.Response | None:
    """GET the health endpoint; None while nothing answers on the port."""
    try:
        return httpx.get(base_url + HEALTH, timeout=1.0, **_PLAIN)
    except httpx.TransportError:
        return None


class PortTaken(Exception):
    """Another process took the free port between our check and the server's bind."""


def wait_ready(server: Server) -> Server:
    """Poll the health endpoint until it answers 200; fail with the server's output otherwise."""
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(timeout=1.0, **_PLAIN) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                code = server.stop()
                output = server.stderr()
                if "address already in use" in output.lower():
                    raise PortTaken(output)
                pytest.fail(f"the sandbox exited with code {code} before it was ready:\n{output}")
            try:
                ok = client.get(server.base_url + HEALTH).status_code == 200
            except httpx.TransportError:
                ok = False  # not listening yet
            if ok and server.proc.poll() is None:
                return server
            time.sleep(0.05)
    server.stop(signal.SIGKILL)
    pytest.fail(f"the sandbox did not answer {HEALTH} within {START_TIMEOUT} s:\n{server.stderr()}")


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
        for attempt in range(PORT_TRIES):
            server = launch(args, self.log_dir, port=port, env=env, cwd=cwd)
            self.servers.append(server)
            if not ready:
                return server
            try:
                return wait_ready(server)
            except PortTaken as exc:
                if port is not None or attempt == PORT_TRIES - 1:
                    pytest.fail(f"port {server.port} is taken:\n{exc}")
        raise AssertionError("unreachable")

    def close(self) -> None:
        failures = []
        for server in self.servers:
            if server.returncode is None and server.proc.poll() is None:
                code = server.stop()
                if code != 0:
                    failures.append(f"port {server.port}: exit code {code} on SIGTERM\n{server.stderr()}")
            elif server.returncode is None:
                server.stop()  # exited by itself: reap it and close its log
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
