"""The pytest plugin (entry point `pytest11`): one real sandbox per session, one tenant per test.

pytest imports this module in every run of every project that installs the package, so it imports
no server code and no httpx at module level, adds no autouse fixture, writes no file, and does
nothing unless a test asks for `payments_sandbox`. The server is a `Sandbox` (local.py): its own
process, reached over HTTP only, exactly as the application under test reaches it; each test gets a
`PaymentsSandbox`, a `Tenant` (remote.py) of it, so the helpers are the ones `Sandbox` has.

Why no pytest-xprocess: it keeps its state in pytest's cache (so `-p no:cacheprovider` broke every
test) and its server outlived a pytest ended by SIGTERM. `Sandbox` starts the server with Linux's
parent-death signal instead (launcher.py), which stops it however pytest ends, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from sandbox.control_client import ControlClient, ControlError
from sandbox.remote import JournalEntry, Tenant, describe

__all__ = ["JournalEntry", "PaymentsSandbox"]

MARKER = "payments_sandbox"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("payments-sandbox", "payments-sandbox fixtures")
    group.addoption(
        "--payments-sandbox-url",
        default=None,
        metavar="URL",
        help="use the sandbox already running at URL (its root, http://127.0.0.1:8080, or its API, "
        "http://127.0.0.1:8080/v1/payments) instead of starting one",
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
            text = "\n".join(f"{describe(e)}  {json.dumps(e.get('response_body'))[:300]}" for e in entries)
        report.sections.append(("payments-sandbox requests", text or "(no API calls)"))
    return report


class PaymentsSandbox(Tenant):
    """What a test gets from the `payments_sandbox` fixture: a tenant of its own on the session's
    sandbox, reset, and its clients closed, when the test ends.

    Point the code under test at `base_url` with `headers` (or `token`), or use `client()` /
    `async_client()`; inspect and steer the tenant with `requests()`, `assert_called()`, `reset()`,
    `advance_clock()`, `seed()` and `load_scenarios()`. Nothing here is shared with any other test.
    """


def _external_url(config: pytest.Config) -> str:
    url: str = config.getoption("payments_sandbox_url") or config.getini("payments_sandbox_url")
    return url


def _scenario_paths(config: pytest.Config) -> list[Path]:
    given = config.getoption("payments_sandbox_scenarios") or []
    return [Path(p).resolve() for p in given] or [Path(p) for p in config.getini("payments_sandbox_scenarios")]


@pytest.fixture(scope="session")
def payments_sandbox_server(request: pytest.FixtureRequest) -> Iterator[ControlClient]:
    """The session's sandbox: started once (per xdist worker), or the one at --payments-sandbox-url."""
    config = request.config
    url = _external_url(config)
    token = config.getoption("payments_sandbox_control_token") or config.getini("payments_sandbox_control_token")
    if url:
        try:
            control = ControlClient.find(url, token or None)
        except (OSError, ControlError, ValueError) as exc:
            pytest.exit(f"payments-sandbox: no sandbox answers at {url} ({exc})", returncode=3)
        yield control
        return
    from sandbox.local import Sandbox

    store = config.getoption("payments_sandbox_store") or config.getini("payments_sandbox_store") or None
    with Sandbox(scenarios=_scenario_paths(config), store=store, log_dir=_log_dir(request)) as sandbox:
        yield sandbox.control


def _log_dir(request: pytest.FixtureRequest) -> Path | None:
    """A folder under pytest's temporary directory (which pytest prunes) for the server's log; the
    system's temp folder if the tmp_path plugin is off. Never the user's project."""
    try:
        factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
    except pytest.FixtureLookupError:
        return None
    return factory.mktemp(f"payments-sandbox-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}")


@pytest.fixture
def payments_sandbox(
    request: pytest.FixtureRequest, payments_sandbox_server: ControlClient
) -> Iterator[PaymentsSandbox]:
    """A tenant of its own on the session's sandbox, reset when the test ends."""
    sandbox = PaymentsSandbox(payments_sandbox_server, f"pytest-{uuid.uuid4().hex}")
    if _external_url(request.config):  # the plugin's own server loaded them at its start
        for path in _scenario_paths(request.config):
            sandbox.load_scenarios(path)
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        for source in marker.kwargs.get("scenarios", []):
            path = Path(source)
            sandbox.load_scenarios(path if path.is_absolute() else request.path.parent / path)
    yield sandbox
    sandbox.close()
    # Frees the tenant's memory on a long-lived (external) sandbox; the session's own sandbox may be
    # gone already when the run was interrupted.
    with contextlib.suppress(OSError, ControlError):
        sandbox.reset()
