"""What installing payments-sandbox costs a project, used or not: no file in the project but pytest's
own cache, `-p no:cacheprovider` works, no autouse fixture, no other pytest plugin among its
dependencies, and light imports; and the public API it exports.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import sandbox
from sandbox import pytest_plugin
from sandbox.local import Sandbox
from sandbox.remote import Tenant
from sandbox.seed import fake_charges

USES_THE_FIXTURE = """
import pytest

@pytest.mark.payments_sandbox(scenarios=["teapot.yaml"])
def test_uses_the_sandbox(payments_sandbox):
    with payments_sandbox.client() as client:
        assert client.post("/charge", json={"amount": 4180, "currency": "EUR"}).status_code == 402
"""

TEAPOT = "rules:\n  - {name: teapot, applies_to: charge, when: {amount: 4180}, then: {status: 402, error: {code: card_declined, message: Tea.}}}\n"  # noqa: E501


def _files(root: Path) -> set[Path]:
    return {path.relative_to(root) for path in root.rglob("*") if "__pycache__" not in path.parts}


@pytest.mark.parametrize(("options", "allowed"), [(["-p", "no:cacheprovider"], set()), ([], {".pytest_cache"})])
def test_a_run_leaves_no_file_in_the_project(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory, options: list[str], allowed: set[str]
) -> None:
    """Run as a user runs it (a plain subprocess in the project folder); pytest's temporary folder,
    where the server's log goes, is elsewhere, as it is by default."""
    pytester.makepyfile(test_shop=USES_THE_FIXTURE)
    (pytester.path / "teapot.yaml").write_text(TEAPOT)
    before = _files(pytester.path)
    basetemp = tmp_path_factory.mktemp("basetemp")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-W", "error", f"--basetemp={basetemp}", *options],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert {path.parts[0] for path in _files(pytester.path) - before} == allowed
    assert list(basetemp.rglob("sandbox-*.log")), "the server's log is under pytest's temporary folder"


def test_the_plugin_adds_no_autouse_fixture(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our plugin alone (autoloading off): a test that asks for nothing uses no fixture, where an
    autouse one (here a conftest's, to show that the check sees them) would be listed."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile("def test_plain():\n    pass\n")
    ours = pytester.runpytest_subprocess("-p", "sandbox.pytest_plugin", "--fixtures-per-test", "-v")
    ours.stdout.no_fnmatch_line("*fixtures used by test_plain*")
    pytester.makeconftest("import pytest\n\n@pytest.fixture(autouse=True)\ndef _everywhere():\n    pass\n")
    control = pytester.runpytest_subprocess("-p", "sandbox.pytest_plugin", "--fixtures-per-test", "-v")
    control.stdout.fnmatch_lines(["*fixtures used by test_plain*", "_everywhere -- *"])


def _requirement_closure(name: str) -> dict[str, list[str]]:
    """Every installed distribution that installing `name` brings (the extras it asks for included,
    its own optional extras not), with the pytest11 entry points of each."""
    found: dict[str, list[str]] = {}
    todo = [(name, frozenset[str]())]
    while todo:
        wanted, extras = todo.pop()
        key = canonicalize_name(wanted)
        if key in found:
            continue
        try:
            dist = distribution(wanted)
        except PackageNotFoundError:
            continue  # only needed on other platforms or Pythons
        found[key] = [ep.name for ep in dist.entry_points if ep.group == "pytest11"]
        for line in dist.requires or []:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in {"", *extras}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return found


def test_no_other_pytest_plugin_comes_with_it() -> None:
    """pytest loads every installed pytest11 plugin in every run: Faker's (an autouse session fixture
    and ~0.25 s of imports) and pytest-xprocess's came with us once. anyio's stays: httpx and
    Starlette need anyio, and its plugin has no autouse fixture."""
    closure = _requirement_closure("payments-sandbox")
    assert {"starlette", "uvicorn", "httpx"} <= set(closure), "the closure is walked"
    plugins = {name: eps for name, eps in closure.items() if eps}
    assert plugins == {"payments-sandbox": ["payments_sandbox"], "anyio": ["anyio"]}
    assert "pytest" not in closure, "a server install does not bring pytest"


def _imported_after(code: str) -> list[str]:
    heavy = (
        "starlette",
        "uvicorn",
        "httpx",
        "sandbox.app",
        "sandbox.api",
        "pytest",
        "xprocess",
        "faker",
        "http.client",
    )
    probe = f"import json, sys; {code}; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    found: list[str] = json.loads(out.stdout)
    return found


def test_importing_sandbox_and_its_test_api_stays_light() -> None:
    assert _imported_after("import sandbox") == []
    assert _imported_after("import sandbox.pytest_plugin") == ["pytest"]
    assert _imported_after("from sandbox import Sandbox, Tenant, JournalEntry") == ["http.client"]
    assert set(_imported_after("from sandbox import create_app")) >= {"starlette", "sandbox.app"}


def test_the_public_api() -> None:
    assert sorted(sandbox.__all__) == sorted(
        ["JournalEntry", "PaymentsSandbox", "Sandbox", "Settings", "Tenant", "__version__", "create_app"]
    )
    for name in sandbox.__all__:
        assert getattr(sandbox, name) is not None
        assert name in dir(sandbox)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = sandbox.Nope  # type: ignore[attr-defined]
    assert pytest_plugin.__all__ == ["JournalEntry", "PaymentsSandbox"]
    # One implementation of the helpers, shared by the fixture's object and Sandbox.
    assert issubclass(pytest_plugin.PaymentsSandbox, Tenant)
    assert issubclass(Sandbox, Tenant)
    helpers = (
        "reset",
        "requests",
        "assert_called",
        "advance_clock",
        "seed",
        "load_scenarios",
        "client",
        "async_client",
    )
    for helper in helpers:
        assert getattr(pytest_plugin.PaymentsSandbox, helper) is getattr(Tenant, helper)
        assert getattr(Sandbox, helper) is getattr(Tenant, helper)
    assert (Path(sandbox.__file__).parent / "py.typed").exists()


def test_the_seed_feature_needs_no_faker() -> None:
    seed = "from sandbox.seed import fake_charges; print(len(fake_charges(9, 7, 2e9)))"
    probe = f"import sys; sys.modules['faker'] = None; {seed}"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "9"
    made, again = fake_charges(30, 7, 2e9), fake_charges(30, 7, 2e9)
    assert [(c.description, c.metadata) for c, _ in made] == [(c.description, c.metadata) for c, _ in again]
    charge = made[0][0]
    assert re.fullmatch(r"Order #\d{4,5}: \S+ \S+ .+", charge.description or "")
    assert re.fullmatch(r"[a-z]+\.[a-z]+\d+@[a-z.]+", charge.metadata["customer_email"])
