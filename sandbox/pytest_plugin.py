"""The pytest plugin (entry point `pytest11`): one real sandbox per session, one tenant per test.

pytest imports this module in every run of every project that installs the package, so it imports
no server code and no httpx at module level, adds no autouse fixture, writes no file, and does
nothing unless a test asks for `payments_sandbox`. The server is a `Sandbox` (local.py): its own
process, reached over HTTP only, exactly as the application under test reaches it; each test gets a
`PaymentsSandbox`, a `Tenant` (remote.py) of it, so the helpers are the ones `Sandbox` has.

At each test's teardown, before its tenant is reset, the plugin reads what the sandbox found wrong
with the client and what it met (pytest_report.py); the session's summary prints them, and
`--payments-sandbox-strict` / `--payments-sandbox-require` fail the session on them. Under xdist
each worker hands its part to the controller (`workeroutput`), which alone prints, writes and fails.

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
from typing import TYPE_CHECKING, Any

import pytest

from sandbox.control_client import ControlClient, ControlError
from sandbox.pytest_report import SessionReport
from sandbox.remote import JournalEntry, Tenant, describe, describe_finding

if TYPE_CHECKING:
    from sandbox.receiver import Receiver

__all__ = ["JournalEntry", "PaymentsSandbox"]

MARKER = "payments_sandbox"
_REPORT = pytest.StashKey[SessionReport]()
_WORKER_KEY = "payments_sandbox"  # a worker's report in its workeroutput


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
    group.addoption(
        "--payments-sandbox-report",
        default=None,
        metavar="PATH",
        help="write the session's findings (each with its test) and coverage to PATH as JSON",
    )
    group.addoption(
        "--payments-sandbox-strict",
        action="store_true",
        default=None,
        help="fail the session when the sandbox found anything wrong with the client",
    )
    group.addoption(
        "--payments-sandbox-require",
        action="append",
        default=None,
        metavar="SCENARIO,...",
        help="fail the session unless some test met each of these scenario rules (repeatable)",
    )
    group.addoption(
        "--payments-sandbox-chaos-seed",
        default=None,
        metavar="N",
        help="the --chaos-seed of the sandbox the plugin starts: chaos rules answer the same for the same requests",
    )
    parser.addini("payments_sandbox_url", "URL of an already-running sandbox to use", default="")
    parser.addini("payments_sandbox_scenarios", "scenario files or folders for every test", type="paths", default=[])
    parser.addini("payments_sandbox_store", "the --store of the sandbox the plugin starts", default="")
    parser.addini("payments_sandbox_control_token", "control token of the sandbox at payments_sandbox_url", default="")
    parser.addini("payments_sandbox_report", "write the findings and coverage to this JSON file", default="")
    parser.addini("payments_sandbox_strict", "fail the session on findings", type="bool", default=False)
    parser.addini("payments_sandbox_require", "scenario rules some test must meet", type="args", default=[])
    parser.addini("payments_sandbox_chaos_seed", "the --chaos-seed of the sandbox the plugin starts", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(scenarios=[...], chaos=PROFILE): scenario files (relative to the test file) and a built-in "
        "chaos profile (flaky-network, bad-day) active for this test's tenant only",
    )
    if _chaos_seed(config) is not None and _external_url(config):
        raise pytest.UsageError(
            "--payments-sandbox-chaos-seed is for the sandbox the plugin starts; "
            "start the one at --payments-sandbox-url with --chaos-seed instead"
        )
    config.stash[_REPORT] = SessionReport()


def _chaos_seed(config: pytest.Config) -> int | None:
    given = config.getoption("payments_sandbox_chaos_seed") or config.getini("payments_sandbox_chaos_seed")
    if not given:
        return None
    seed = int(given) if given.isdigit() and given.isascii() else -1  # what the server takes, no "+1" or "1_0"
    if not 0 <= seed < 2**63:
        raise pytest.UsageError(f"--payments-sandbox-chaos-seed: {given!r} is not a whole number from 0 to 2**63-1")
    return seed


def _required(config: pytest.Config) -> list[str]:
    """The scenario names of --payments-sandbox-require (or the ini's), commas or spaces between."""
    given = config.getoption("payments_sandbox_require") or config.getini("payments_sandbox_require")
    names = (name.strip() for value in given for name in value.split(","))
    return list(dict.fromkeys(name for name in names if name))


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker hands its report to the controller; the controller (or a run without xdist) writes
    the JSON report and fails a passing session on what strict/require say."""
    config = session.config
    report = config.stash.get(_REPORT, None)
    if report is None:
        return
    if _is_worker(config):
        config.workeroutput[_WORKER_KEY] = report.data()  # type: ignore[attr-defined]
        return
    path = config.getoption("payments_sandbox_report") or config.getini("payments_sandbox_report")
    if path:
        report.write(config.invocation_params.dir / path)
    if config.getoption("collectonly"):
        return
    strict = bool(config.getoption("payments_sandbox_strict") or config.getini("payments_sandbox_strict"))
    report.reasons = report.failures(strict=strict, required=_required(config))
    if report.reasons and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist's controller: a worker is done; take its report (none if it crashed before the end)."""
    data = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
    if data is not None:
        node.config.stash[_REPORT].merge(data)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    report = config.stash.get(_REPORT, None)
    if report is None or _is_worker(config):
        return
    lines = report.lines()
    if not lines and not report.reasons:
        return
    terminalreporter.write_sep("=", "payments-sandbox")
    for line in lines:
        terminalreporter.write_line(line)
    for reason in report.reasons:
        terminalreporter.write_line(f"payments-sandbox: failing the session: {reason}", red=True, bold=True)


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
        with contextlib.suppress(Exception):  # as above; the requests' section says what went wrong
            if found := sandbox.findings():
                report.sections.append(("payments-sandbox findings", "\n".join(map(describe_finding, found))))
    return report


class PaymentsSandbox(Tenant):
    """What a test gets from the `payments_sandbox` fixture: a tenant of its own on the session's
    sandbox, reset, and its clients closed, when the test ends.

    Point the code under test at `base_url` with `headers` (or `token`), or use `client()` /
    `async_client()`; inspect and steer the tenant with `requests()`, `assert_called()`, `findings()`,
    `assert_no_findings()`, `coverage()`, `reset()`, `advance_clock()`, `seed()` and `load_scenarios()`.
    Nothing here is shared with any other test.
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
    seed = _chaos_seed(config)
    with Sandbox(scenarios=_scenario_paths(config), store=store, chaos_seed=seed, log_dir=_log_dir(request)) as sandbox:
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
    marker = request.node.get_closest_marker(MARKER)
    kwargs = marker.kwargs if marker is not None else {}
    if kwargs.get("chaos") is not None:  # after every other rule: magic amounts keep their meaning
        _load_chaos(sandbox, kwargs["chaos"])
    if _external_url(request.config):  # the plugin's own server loaded them at its start
        for path in _scenario_paths(request.config):
            sandbox.load_scenarios(path)
    for source in kwargs.get("scenarios", []):
        path = Path(source)
        sandbox.load_scenarios(path if path.is_absolute() else request.path.parent / path)
    yield sandbox
    sandbox.close()
    _read_tenant(request.config.stash[_REPORT], request.node.nodeid, sandbox)
    # Frees the tenant's memory on a long-lived (external) sandbox; the session's own sandbox may be
    # gone already when the run was interrupted.
    with contextlib.suppress(OSError, ControlError):
        sandbox.reset()


@pytest.fixture
def payments_webhooks(payments_sandbox: PaymentsSandbox) -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 registered for the test's tenant (receiver.py): it checks
    each delivery's signature; `wait_for("charge.succeeded")`, `events`, `forged`, `deliveries`,
    `fail_next(n)`. Closed when the test ends."""
    receiver = payments_sandbox.webhook_receiver()
    yield receiver
    receiver.close()


def _load_chaos(sandbox: Tenant, name: object) -> None:
    """Load the built-in chaos profile `name` for the test's tenant; fails the test's setup for another name."""
    if not isinstance(name, str):
        pytest.fail(
            f"{MARKER}(chaos={name!r}): name a built-in chaos profile, e.g. chaos='flaky-network'", pytrace=False
        )
    try:
        sandbox.load_chaos(name)
    except ControlError as exc:  # the server knows its profiles: "profile must be one of ..."
        pytest.fail(f"{MARKER}(chaos={name!r}): {exc.reason}", pytrace=False)


def _read_tenant(report: SessionReport, nodeid: str, tenant: Tenant) -> None:
    """Add what the test's tenant showed to the session's report, before the reset forgets it."""
    try:
        findings, coverage = tenant.findings(), tenant.coverage()
    except (OSError, ControlError) as exc:  # an interrupted run, an external sandbox of an older version
        report.add_unread(nodeid, exc)
    else:
        report.add(nodeid, findings, coverage)
