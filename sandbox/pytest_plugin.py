"""The pytest plugin (entry point `pytest11`): one real sandbox per session, one tenant per test.

pytest imports this module in every run of every project that installs the package, so it imports
no server code, httpx or xprocess at module level, and does nothing unless a test asks for
`payments_sandbox`. The server runs as its own process (pytest-xprocess) and is reached over HTTP
only, exactly as the application under test reaches it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx

MARKER = "payments_sandbox"
_START_TIMEOUT = 30


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("payments-sandbox", "payments-sandbox fixtures")
    group.addoption(
        "--payments-sandbox-url",
        default=None,
        metavar="URL",
        help="use the sandbox already running at URL (e.g. http://127.0.0.1:8080) instead of starting one",
    )
    group.addoption(
        "--payments-sandbox-scenarios",
        action="append",
        default=None,
        metavar="PATH",
        help="scenario file or folder for every test (repeatable)",
    )
    group.addoption(
        "--payments-sandbox-store",
        default=None,
        metavar="URL",
        help="the --store of the sandbox the plugin starts: memory (default), sqlite:///path or redis://host:port/db",
    )
    group.addoption(
        "--payments-sandbox-control-token",
        default=None,
        metavar="TOKEN",
        help="the --control-token of the sandbox at --payments-sandbox-url",
    )
    parser.addini("payments_sandbox_url", "URL of an already-running sandbox to use", default="")
    parser.addini("payments_sandbox_scenarios", "scenario files or folders for every test", type="paths", default=[])
    parser.addini("payments_sandbox_store", "the --store of the sandbox the plugin starts", default="")
    parser.addini("payments_sandbox_control_token", "control token of the sandbox at payments_sandbox_url", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(scenarios=[...]): scenario files (relative to the test file) active for this test's tenant only",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    sandbox = getattr(item, "funcargs", {}).get(MARKER)
    if report.when == "call" and report.failed and isinstance(sandbox, PaymentsSandbox):
        try:
            entries = sandbox.requests()
        except Exception as exc:  # the report must not fail because the sandbox is gone
            text = f"(could not read the journal: {exc})"
        else:
            text = "\n".join(
                f"{e['method']} {e['path']}{'?' + e['query'] if e['query'] else ''} -> {e['status']}"
                f"{' [' + e['scenario'] + ']' if e.get('scenario') else ''}"
                f"  {json.dumps(e.get('response_body'))[:300]}"
                for e in entries
            )
        report.sections.append(("payments-sandbox requests", text or "(no API calls)"))
    return report


class SandboxServer:
    """A running sandbox, reached over HTTP."""

    def __init__(self, url: str, control_token: str | None = None, *, external: bool = False) -> None:
        self.url = url.rstrip("/")
        self.control_token = control_token
        self.external = external
        self.api_path = "/v1/payments"
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            import httpx

            headers = {"Sandbox-Control-Token": self.control_token} if self.control_token else {}
            self._client = httpx.Client(base_url=self.url + "/__sandbox", headers=headers, timeout=30)
        return self._client

    def health(self) -> dict[str, Any]:
        response = self.client.get("/health")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        self.api_path = body.get("api", self.api_path)
        return body

    def control(
        self, method: str, path: str, token: str | None = None, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
        response = self.client.request(method, path, headers=headers, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"payments-sandbox {method} /__sandbox{path} -> {response.status_code}: {response.text}")
        return response.json()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class PaymentsSandbox:
    """What a test gets: its own tenant on the session's sandbox.

    Point the code under test at `base_url` with `headers` (or `token`); inspect and steer the
    tenant with the methods below. Nothing here is shared with any other test.
    """

    def __init__(self, server: SandboxServer, token: str) -> None:
        self.server = server
        self.token = token
        self.url = server.url
        self.base_url = server.url + server.api_path
        self.headers = {"Authorization": f"Bearer {token}"}

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client already pointed at this tenant's API."""
        import httpx

        return httpx.Client(base_url=self.base_url, headers=self.headers, **kwargs)

    def requests(
        self, method: str | None = None, path: str | None = None, status: int | None = None
    ) -> list[dict[str, Any]]:
        """This tenant's API calls, oldest first; filter by method, exact path or status."""
        params = {k: v for k, v in {"method": method, "path": path, "status": status}.items() if v is not None}
        entries: list[dict[str, Any]] = self.server.control("GET", "/requests", self.token, params=params)["requests"]
        return entries

    def reset(self) -> None:
        """Forget this tenant's charges, refunds, idempotency keys, journal, clock and scenarios."""
        self.server.control("POST", "/reset", self.token)

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move this tenant's clock: pending charges settle, idempotency keys expire."""
        result: dict[str, Any] = self.server.control("POST", "/clock/advance", self.token, json={"seconds": seconds})
        return result

    def seed(self, count: int = 20, seed: int = 0) -> list[str]:
        """Create `count` realistic fake charges; returns their ids."""
        ids: list[str] = self.server.control("POST", "/seed", self.token, json={"count": count, "seed": seed})["ids"]
        return ids

    def load_scenarios(self, source: str | Path) -> list[dict[str, Any]]:
        """Add scenario rules (a file or folder path, or YAML/JSON text) for this tenant only."""
        path = Path(source) if isinstance(source, Path) or "\n" not in source else None
        if path is not None and path.is_dir():
            return [rule for file in sorted(path.glob("*.y*ml")) for rule in self.load_scenarios(file)]
        text = path.read_bytes() if path is not None else str(source).encode()
        yaml = {"Content-Type": "application/yaml"}  # JSON is YAML too
        rules: list[dict[str, Any]] = self.server.control("POST", "/scenarios", self.token, content=text, headers=yaml)[
            "rules"
        ]
        return rules


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _scenario_paths(config: pytest.Config) -> list[Path]:
    given = config.getoption("payments_sandbox_scenarios") or []
    return [Path(p).resolve() for p in given] or [Path(p) for p in config.getini("payments_sandbox_scenarios")]


@pytest.fixture(scope="session")
def payments_sandbox_server(request: pytest.FixtureRequest) -> Iterator[SandboxServer]:
    """The session's sandbox: started once (per xdist worker), or the one at --payments-sandbox-url."""
    config = request.config
    url = config.getoption("payments_sandbox_url") or config.getini("payments_sandbox_url")
    token = config.getoption("payments_sandbox_control_token") or config.getini("payments_sandbox_control_token")
    if url:
        server = SandboxServer(url, token or None, external=True)
        try:
            server.health()
        except Exception as exc:
            pytest.exit(f"payments-sandbox: no sandbox answers at {url}/__sandbox/health ({exc})", returncode=3)
        yield server
        server.close()
        return
    store = config.getoption("payments_sandbox_store") or config.getini("payments_sandbox_store") or None
    yield from _started_server(request, _scenario_paths(config), store)


def _started_server(
    request: pytest.FixtureRequest, scenarios: list[Path], store: str | None
) -> Iterator[SandboxServer]:
    import httpx
    from xprocess import ProcessStarter  # type: ignore[import-untyped]

    xprocess = request.getfixturevalue("xprocess")
    port = _free_port()
    name = f"payments-sandbox-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    args = [sys.executable, "-m", "sandbox", "serve", "--port", str(port), "--log-level", "warning"]
    for path in scenarios:
        args += ["--scenarios", str(path)]
    if store:
        args += ["--store", store]
    health_url = f"http://127.0.0.1:{port}/__sandbox/health"

    class Starter(ProcessStarter):  # type: ignore[misc]
        timeout = _START_TIMEOUT
        terminate_on_interrupt = True

        @property
        def args(self) -> list[str]:
            return args

        def startup_check(self) -> bool:
            try:
                return httpx.get(health_url, timeout=1).status_code == 200
            except httpx.TransportError:
                popen = self.process.resources[-1].popen
                if popen is not None and popen.poll() is not None:
                    log = Path(self.control_dir, "xprocess.log").read_text(errors="replace")
                    raise RuntimeError(
                        f"payments-sandbox exited with code {popen.returncode}:\n{log[-2000:]}"
                    ) from None
                return False

    # restart=True: never reuse a sandbox left running by an earlier, interrupted session.
    try:
        xprocess.ensure(name, Starter, restart=True)
    except BaseException:
        xprocess.getinfo(name).terminate()  # it may have started and never become healthy
        raise
    server = SandboxServer(f"http://127.0.0.1:{port}")
    try:
        server.health()
        yield server
    finally:
        server.close()
        xprocess.getinfo(name).terminate()


@pytest.fixture
def payments_sandbox(
    request: pytest.FixtureRequest, payments_sandbox_server: SandboxServer
) -> Iterator[PaymentsSandbox]:
    """A tenant of its own on the session's sandbox, reset when the test ends."""
    server = payments_sandbox_server
    sandbox = PaymentsSandbox(server, f"pytest-{uuid.uuid4().hex}")
    if server.external:
        for path in _scenario_paths(request.config):
            sandbox.load_scenarios(path)
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        for source in marker.kwargs.get("scenarios", []):
            path = Path(source)
            sandbox.load_scenarios(path if path.is_absolute() else request.path.parent / path)
    yield sandbox
    import httpx

    # Frees the tenant's memory on a long-lived (external) sandbox. The session's own sandbox may
    # already be gone: an interrupted run stops it before fixtures are torn down.
    with contextlib.suppress(httpx.TransportError):
        sandbox.reset()
