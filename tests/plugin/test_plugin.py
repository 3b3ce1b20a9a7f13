"""The pytest plugin, tested the way users meet it: inner pytest runs in subprocesses (pytester)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.launcher import start

USES_FIXTURE = """
import json, os
import httpx

def test_charge_is_recorded(payments_sandbox):
    r = httpx.post(payments_sandbox.base_url + "/charge",
                   json={"amount": 1500, "currency": "USD"}, headers=payments_sandbox.headers)
    assert r.status_code == 200
    [entry] = payments_sandbox.requests()
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/v1/payments/charge", 200)
    with open(os.environ["URL_LOG"], "a") as log:
        log.write(payments_sandbox.url + "\\n")

def test_each_test_has_its_own_tenant(payments_sandbox):
    with payments_sandbox.client() as client:
        assert client.get("/charges").json()["total"] == 0
"""


def _is_serving(url: str) -> bool:
    # urllib, not httpx: pytester restores sys.modules after each test, and an httpx re-imported
    # mid-session no longer recognises httpcore's exceptions.
    try:
        with urllib.request.urlopen(url + "/__sandbox/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def url_log(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = pytester.path / "urls.txt"
    monkeypatch.setenv("URL_LOG", str(path))
    return path


def _urls(url_log: Path) -> set[str]:
    return set(url_log.read_text().split())


def test_serial_run_starts_one_sandbox_and_stops_it(pytester: pytest.Pytester, url_log: Path) -> None:
    pytester.makepyfile(test_client=USES_FIXTURE)
    result = pytester.runpytest_subprocess("-W", "error")
    result.assert_outcomes(passed=2)
    [url] = _urls(url_log)
    assert not _is_serving(url), "the session's sandbox must be gone when the session ends"


def test_xdist_gives_each_worker_its_own_sandbox(pytester: pytest.Pytester, url_log: Path) -> None:
    pytester.makepyfile(test_a=USES_FIXTURE, test_b=USES_FIXTURE)
    result = pytester.runpytest_subprocess("-n", "2", "-W", "error")
    result.assert_outcomes(passed=4)
    urls = _urls(url_log)
    assert len(urls) == 2
    assert not any(_is_serving(url) for url in urls)


def test_failing_test_shows_its_journal_and_the_sandbox_still_stops(pytester: pytest.Pytester, url_log: Path) -> None:
    pytester.makepyfile(
        """
        import os, httpx

        def test_declined(payments_sandbox):
            with open(os.environ["URL_LOG"], "a") as log:
                log.write(payments_sandbox.url + "\\n")
            with payments_sandbox.client() as client:
                client.post("/charge", json={"amount": 100005, "currency": "USD"})
            assert False, "the client should have handled the decline"
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*payments-sandbox requests*", "POST /v1/payments/charge -> 400 [[]generic_decline[]]*"]
    )
    [url] = _urls(url_log)
    assert not _is_serving(url)


def test_interrupted_run_stops_the_sandbox(pytester: pytest.Pytester, url_log: Path) -> None:
    pytester.makepyfile(
        """
        import os

        def test_interrupted(payments_sandbox):
            with open(os.environ["URL_LOG"], "a") as log:
                log.write(payments_sandbox.url + "\\n")
            raise KeyboardInterrupt
        """
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    [url] = _urls(url_log)
    assert not _is_serving(url)


def test_marker_loads_scenarios_for_that_test_only(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml",
        teapot="""
        rules:
          - name: teapot
            applies_to: charge
            when: {amount: 4180}
            then: {status: 402, error: {code: card_declined, decline_code: teapot, message: I am a teapot.}}
        """,
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.payments_sandbox(scenarios=["teapot.yaml"])
        def test_with_marker(payments_sandbox):
            with payments_sandbox.client() as client:
                r = client.post("/charge", json={"amount": 4180, "currency": "EUR"})
            assert r.status_code == 402
            assert r.json()["error"]["decline_code"] == "teapot"
            assert r.headers["Sandbox-Scenario"] == "teapot"

        def test_without_marker(payments_sandbox):
            with payments_sandbox.client() as client:
                assert client.post("/charge", json={"amount": 4180, "currency": "EUR"}).status_code == 200
        """
    )
    pytester.runpytest_subprocess("-W", "error").assert_outcomes(passed=2)


def test_scenarios_option_applies_to_every_test(pytester: pytest.Pytester) -> None:
    scenarios = pytester.makefile(
        ".yaml",
        house="""
        rules:
          - name: house_decline
            applies_to: charge
            when: {amount: {min: 9000, max: 9099}}
            then: {status: 402, error: {code: card_declined, message: House rule.}, charge: failed}
        """,
    )
    pytester.makepyfile(
        """
        def test_house_rule(payments_sandbox):
            with payments_sandbox.client() as client:
                r = client.post("/charge", json={"amount": 9050, "currency": "USD"})
            assert r.status_code == 402
            assert r.json()["error"]["charge"].startswith("ch_")
        """
    )
    pytester.runpytest_subprocess("--payments-sandbox-scenarios", str(scenarios)).assert_outcomes(passed=1)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, pytester: pytest.Pytester) -> str:
    """A --store URL of each engine, for a sandbox of the test's own."""
    if request.param == "sqlite":
        return f"sqlite:///{pytester.path / 'sandbox.db'}"
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url")) + "/5"
    return "memory"


def test_clock_seed_and_reset_helpers(pytester: pytest.Pytester, store: str) -> None:
    pytester.makepyfile(
        """
        def test_helpers(payments_sandbox):
            with payments_sandbox.client() as client:
                charge = client.post("/charge", json={"amount": 100202, "currency": "USD"}).json()
                assert charge["status"] == "pending"
                payments_sandbox.advance_clock(61)
                assert client.get(f"/charge/{charge['id']}").json()["status"] == "succeeded"
                ids = payments_sandbox.seed(count=5, seed=7)
                assert client.get("/charges").json()["total"] == 6
                assert client.get(f"/charge/{ids[0]}").status_code == 200
                payments_sandbox.reset()
                assert payments_sandbox.requests() == []
                assert client.get("/charges").json()["total"] == 0
        """
    )
    pytester.runpytest_subprocess("-W", "error", "--payments-sandbox-store", store).assert_outcomes(passed=1)


@pytest.fixture
def external_sandbox(store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A sandbox a team runs for everyone: with a shared store, two worker processes."""
    workers = ["--store", store, "--workers", "2"] if store != "memory" else []
    with start(["--control-token", "ctl", *workers], log_dir=tmp_path_factory.mktemp("external")) as server:
        yield server.base_url
        assert server.stop() == 0, server.log()


def test_external_sandbox_is_used_and_left_running(pytester: pytest.Pytester, external_sandbox: str) -> None:
    pytester.makepyfile(
        """
        def test_against_external(payments_sandbox):
            assert payments_sandbox.base_url.startswith(EXTERNAL_URL)
            with payments_sandbox.client() as client:
                assert client.post("/charge", json={"amount": 777, "currency": "USD"}).status_code == 200
            assert [e["status"] for e in payments_sandbox.requests()] == [200]
        """.replace("EXTERNAL_URL", repr(external_sandbox))
    )
    result = pytester.runpytest_subprocess(
        "-W", "error", "--payments-sandbox-url", external_sandbox, "--payments-sandbox-control-token", "ctl"
    )
    result.assert_outcomes(passed=1)
    assert _is_serving(external_sandbox), "an external sandbox belongs to whoever started it"


def test_unreachable_external_sandbox_stops_the_run_with_a_message(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(payments_sandbox):\n    pass\n")
    result = pytester.runpytest_subprocess("--payments-sandbox-url", "http://127.0.0.1:9")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*no sandbox answers at http://127.0.0.1:9*"])


def test_runs_that_do_not_use_the_fixture_start_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    pytester.runpytest_subprocess("-W", "error").assert_outcomes(passed=1)
    assert not list(pytester.path.rglob("xprocess.log"))


def test_plugin_module_imports_no_server_code() -> None:
    probe = (
        "import sys, sandbox.pytest_plugin; "
        "heavy = ('sandbox.app', 'sandbox.api', 'starlette', 'uvicorn', 'httpx', 'xprocess', 'faker'); "
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", "import json; " + probe], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_server_that_fails_to_start_is_reported(pytester: pytest.Pytester) -> None:
    bad = pytester.makefile(".yaml", bad="rules:\n  - name: x\n    applies_to: payout\n    then: {}\n")
    pytester.makepyfile("def test_x(payments_sandbox):\n    pass\n")
    result = pytester.runpytest_subprocess("--payments-sandbox-scenarios", str(bad))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(['*bad.yaml:3*unknown rule kind "payout"*'])
