"""What the sandbox found wrong with the client, as a pytest run reports it: the summary section, the
JSON report, `--payments-sandbox-strict` and `--payments-sandbox-require` (inner pytest runs), and
`findings()` / `coverage()` / `assert_no_findings()` on a tenant (the fixture's, in this run).

The finding the inner tests provoke: a charge answered 500 (amount 100096, the built-in
`processing_error`) sent again with the same body and no Idempotency-Key.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from sandbox import Tenant

CLIENT_TESTS = """
import os

def retry_without_a_key(payments_sandbox):
    with payments_sandbox.client() as client:
        for _ in range(2):
            assert client.post("/charge", json={"amount": 100096, "currency": "USD"}).status_code == 500
    with open(os.environ["IDS_LOG"], "a") as log:
        ids = " ".join(e["id"] for e in payments_sandbox.requests())
        log.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')} {ids}\\n")

def test_retries_without_a_key(payments_sandbox):
    retry_without_a_key(payments_sandbox)

def test_handles_a_decline(payments_sandbox):
    with payments_sandbox.client() as client:
        assert client.post("/charge", json={"amount": 100005, "currency": "USD"}).status_code == 400

def test_plain():
    assert 1 + 1 == 2
"""

CLEAN_TESTS = """
def test_charges_once(payments_sandbox):
    with payments_sandbox.client() as client:
        assert client.post("/charge", json={"amount": 1500, "currency": "USD"}).status_code == 200
        assert client.post("/charge", json={"amount": 100005, "currency": "USD"}).status_code == 400
"""

FINDING_LINE = "test_client.py::test_retries_without_a_key: retry_without_idempotency_key: * (requests req_*, req_*)"


@pytest.fixture
def ids_log(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the inner tests write the journal ids of their retries, one line per test."""
    path = pytester.path / "ids.txt"
    monkeypatch.setenv("IDS_LOG", str(path))
    return path


def _logged(ids_log: Path) -> list[tuple[str, list[str]]]:
    return [(line.split()[0], line.split()[1:]) for line in ids_log.read_text().splitlines()]


def test_summary_and_json_report_list_each_finding_with_its_test_and_the_coverage(
    pytester: pytest.Pytester, ids_log: Path
) -> None:
    pytester.makepyfile(test_client=CLIENT_TESTS)
    result = pytester.runpytest_subprocess("-W", "error", "--payments-sandbox-report", "out/report.json")
    result.assert_outcomes(passed=3)
    assert result.ret == 0, "findings alone do not fail a run"
    [(_, ids)] = _logged(ids_log)
    result.stdout.fnmatch_lines(
        [
            "*= payments-sandbox =*",
            f"test_client.py::test_retries_without_a_key: retry_without_idempotency_key: * (requests {', '.join(ids)})",
            "payments-sandbox: scenarios met 2/*: missing *",
            "payments-sandbox: error codes met */*",
        ]
    )
    assert "failing the session" not in result.stdout.str()

    report = json.loads((pytester.path / "out" / "report.json").read_text())
    [finding] = report["findings"]
    assert finding["test"] == "test_client.py::test_retries_without_a_key"
    assert (finding["code"], finding["requests"]) == ("retry_without_idempotency_key", ids)
    assert set(finding) == {"code", "tenant", "at", "requests", "advice", "test"}
    assert "," not in finding["advice"]
    assert finding["advice"]
    scenarios = report["coverage"]["scenarios"]
    assert scenarios["met"] == ["generic_decline", "processing_error"], "the union of both tests' tenants"
    assert "refund_failed" in scenarios["missing"]
    assert not set(scenarios["met"]) & set(scenarios["missing"])
    assert {"card_declined", "processing_error"} <= set(report["coverage"]["error_codes"]["met"])
    assert set(report["coverage"]) == {"scenarios", "error_codes", "faults"}


def test_a_session_that_never_used_the_fixture_reports_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("-W", "error", "--payments-sandbox-strict")
    assert result.ret == 0
    result.stdout.no_fnmatch_line("*= payments-sandbox =*")
    result.stdout.no_fnmatch_line("*payments-sandbox: *")


@pytest.mark.parametrize("given", ["option", "ini"])
def test_strict_fails_a_passing_session_on_a_finding(pytester: pytest.Pytester, ids_log: Path, given: str) -> None:
    pytester.makepyfile(test_client=CLIENT_TESTS)
    if given == "ini":
        pytester.makeini("[pytest]\npayments_sandbox_strict = true\n")
    result = pytester.runpytest_subprocess("-W", "error", *(["--payments-sandbox-strict"] if given == "option" else []))
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            FINDING_LINE,
            "payments-sandbox: failing the session: --payments-sandbox-strict: the client got 1 finding in 1 test",
        ]
    )


def test_strict_passes_a_clean_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_clean=CLEAN_TESTS)
    result = pytester.runpytest_subprocess("-W", "error", "--payments-sandbox-strict")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["payments-sandbox: no findings in 1 test", "payments-sandbox: scenarios met 1/*"])


def test_require_passes_when_every_named_scenario_was_met(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_clean=CLEAN_TESTS)
    pytester.makeini("[pytest]\npayments_sandbox_require = generic_decline\n")
    result = pytester.runpytest_subprocess("-W", "error")
    assert result.ret == 0
    assert "failing the session" not in result.stdout.str()


def test_require_fails_on_a_scenario_never_met_and_on_a_name_that_is_no_rule(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_clean=CLEAN_TESTS)
    result = pytester.runpytest_subprocess(
        "-W",
        "error",
        "--payments-sandbox-require",
        "generic_decline,refund_failed",
        "--payments-sandbox-require",
        "teapot",
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "payments-sandbox: failing the session: --payments-sandbox-require: scenario never met: refund_failed",
            "payments-sandbox: failing the session: --payments-sandbox-require: "
            "not a scenario rule of this sandbox: teapot (the rules are *generic_decline*refund_failed*)",
        ]
    )


def test_require_fails_a_session_that_never_used_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("--payments-sandbox-require", "refund_failed")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*--payments-sandbox-require: scenario never met (no test used the payments_sandbox fixture): refund_failed"]
    )


def test_xdist_workers_report_to_the_controller(pytester: pytest.Pytester, ids_log: Path) -> None:
    pytester.makepyfile(test_a=CLIENT_TESTS, test_b=CLIENT_TESTS.replace("100005", "100051"))
    result = pytester.runpytest_subprocess(
        "-n", "2", "-W", "error", "--payments-sandbox-strict", "--payments-sandbox-report", "report.json"
    )
    result.assert_outcomes(passed=6)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    logged = _logged(ids_log)
    assert {worker for worker, _ in logged} == {"gw0", "gw1"}, "both workers ran a test that found something"
    report = json.loads((pytester.path / "report.json").read_text())
    found = {finding["test"]: finding["requests"] for finding in report["findings"]}
    assert found == {
        "test_a.py::test_retries_without_a_key": found["test_a.py::test_retries_without_a_key"],
        "test_b.py::test_retries_without_a_key": found["test_b.py::test_retries_without_a_key"],
    }
    assert sorted(found.values()) == sorted(ids for _, ids in logged)
    assert report["coverage"]["scenarios"]["met"] == ["generic_decline", "insufficient_funds", "processing_error"]
    result.stdout.fnmatch_lines_random(
        [
            "test_a.py::test_retries_without_a_key: retry_without_idempotency_key: *",
            "test_b.py::test_retries_without_a_key: retry_without_idempotency_key: *",
            "payments-sandbox: scenarios met 3/*",
            "*--payments-sandbox-strict: the client got 2 findings in 2 tests",
        ]
    )
    assert result.stdout.str().count("= payments-sandbox =") == 1, "the controller alone prints"


def test_assert_no_findings_fails_at_the_tests_line_and_a_failed_test_shows_its_findings(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def test_clean(payments_sandbox):
            with payments_sandbox.client() as client:
                client.post("/charge", json={"amount": 1500, "currency": "USD"})
            payments_sandbox.assert_no_findings()

        def test_retries(payments_sandbox):
            with payments_sandbox.client() as client:
                client.post("/charge", json={"amount": 100096, "currency": "USD"})
                client.post("/charge", json={"amount": 100096, "currency": "USD"})
            payments_sandbox.assert_no_findings()  # the line shown
        """
    )
    result = pytester.runpytest_subprocess("-W", "error")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            ">       payments_sandbox.assert_no_findings()  # the line shown",
            "E       AssertionError: the sandbox found what the client got wrong:",
            "E       retry_without_idempotency_key: * (requests req_*, req_*)",
            "*- payments-sandbox requests -*",
            "POST /v1/payments/charge -> 500 [[]processing_error[]]*",
            "POST /v1/payments/charge -> 500 [[]processing_error[]]*",
            "*- payments-sandbox findings -*",
            "retry_without_idempotency_key: * (requests req_*, req_*)",
        ]
    )
    result.stdout.no_fnmatch_line("*remote.py*")


def _retry_without_a_key(client: httpx.Client) -> list[str]:
    answers = [client.post("/charge", json={"amount": 100096, "currency": "USD"}) for _ in range(2)]
    assert [a.status_code for a in answers] == [500, 500]
    return [a.headers["Request-Id"] for a in answers]


def test_a_tenants_findings_and_coverage(payments_sandbox: Tenant) -> None:
    tenant, other = payments_sandbox, Tenant(payments_sandbox.control, f"test-{uuid.uuid4().hex}")
    with tenant.client() as client, other.client() as other_client:
        assert tenant.findings() == []
        tenant.assert_no_findings()
        ids = _retry_without_a_key(client)
        assert other_client.post("/charge", json={"amount": 100005, "currency": "USD"}).status_code == 400

    [finding] = tenant.findings()
    assert (finding["code"], finding["requests"]) == ("retry_without_idempotency_key", ids)
    assert tenant.findings(code="retry_without_idempotency_key") == [finding]
    assert tenant.findings(code="hammering") == []
    assert other.findings() == [], "one tenant's findings are its own"

    coverage = tenant.coverage()
    assert coverage["scenarios"]["met"] == ["processing_error"]
    assert "generic_decline" in coverage["scenarios"]["missing"]
    assert other.coverage()["scenarios"]["met"] == ["generic_decline"]

    with pytest.raises(AssertionError) as failure:
        tenant.assert_no_findings()
    assert str(failure.value) == (
        "the sandbox found what the client got wrong:\n"
        f"retry_without_idempotency_key: {finding['advice']} (requests {', '.join(ids)})"
    )
    tenant.reset()
    assert tenant.findings() == []
    other.reset()
