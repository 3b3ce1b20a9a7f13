"""`@pytest.mark.payments_sandbox(chaos="flaky-network")` and `--payments-sandbox-chaos-seed N`, as a
user's test run meets them (inner pytest runs): the profile's rules for that test's tenant only, a
name that is no profile failing the test's setup, and the same answers for the same seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sandbox.chaos import profile_path

CHARGES = """
import json, os
import httpx
import pytest

@pytest.mark.payments_sandbox(chaos="flaky-network")
def test_under_chaos(payments_sandbox):
    outcomes = []
    with payments_sandbox.client() as client:
        for n in range(150):
            try:
                r = client.post("/charge", json={"amount": 1000 + n, "currency": "USD"})
            except httpx.TransportError as exc:
                outcomes.append(type(exc).__name__)
            else:
                outcomes.append(r.headers.get("Sandbox-Scenario") or r.status_code)
    with open(os.environ["OUTCOMES"], "a") as log:
        log.write(json.dumps(outcomes) + "\\n")
"""


def _rule_names(path: Path) -> list[str]:
    return [rule["name"] for rule in yaml.safe_load(path.read_text())["rules"]]


def test_the_marker_loads_the_profile_for_that_test_only_after_every_other_rule(pytester: pytest.Pytester) -> None:
    expected = _rule_names(profile_path("bad-day"))
    pytester.makefile(
        ".yaml",
        teapot="rules:\n  - {name: teapot, applies_to: charge, when: {amount: 4180}, then: {status: 402, "
        "error: {code: card_declined, message: I am a teapot.}}}\n",
    )
    pytester.makepyfile(
        f"""
        import pytest

        def rule_names(payments_sandbox):
            rules = payments_sandbox.control.call("GET", "/scenarios", payments_sandbox.token)["rules"]
            return [rule["name"] for rule in rules]

        @pytest.mark.payments_sandbox(chaos="bad-day", scenarios=["teapot.yaml"])
        def test_with_chaos(payments_sandbox):
            names = rule_names(payments_sandbox)
            assert set({expected!r}) <= set(names)
            assert names.index("teapot") < min(names.index(name) for name in {expected!r})
            with payments_sandbox.client() as client:  # about 1 in 4 charges would meet bad-day's chaos
                answers = [client.post("/charge", json={{"amount": 4180, "currency": "USD"}}) for _ in range(30)]
            assert {{r.headers["Sandbox-Scenario"] for r in answers}} == {{"teapot"}}
            with payments_sandbox.client() as client:  # after the built-in pack too: magic amounts hold
                declines = [client.post("/charge", json={{"amount": 100005, "currency": "USD"}}) for _ in range(30)]
            assert {{r.headers["Sandbox-Scenario"] for r in declines}} == {{"generic_decline"}}
            assert names.index("generic_decline") < min(names.index(name) for name in {expected!r})

        def test_without(payments_sandbox):
            assert not [name for name in rule_names(payments_sandbox) if name.startswith("chaos_")]
        """
    )
    pytester.runpytest_subprocess("-W", "error").assert_outcomes(passed=2)


def test_a_name_that_is_no_profile_fails_the_setup_with_the_list(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.payments_sandbox(chaos="flakey-network")
        def test_typo(payments_sandbox):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-W", "error")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*payments_sandbox(chaos='flakey-network'): profile must be one of bad-day, flaky-network."]
    )


def test_the_same_seed_gives_the_same_answers_and_another_seed_others(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_chaos=CHARGES)
    log = pytester.path / "outcomes.txt"
    monkeypatch.setenv("OUTCOMES", str(log))
    for seed in ("1", "1", "2"):
        result = pytester.runpytest_subprocess("-W", "error", "--payments-sandbox-chaos-seed", seed)
        result.assert_outcomes(passed=1)
    first, again, other = (json.loads(line) for line in log.read_text().splitlines())
    assert first == again
    assert first != other
    assert [o for o in first if o != 200], "some charges met the chaos"


def test_the_seed_in_the_ini_and_a_bad_one(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_chaos=CHARGES)
    log = pytester.path / "outcomes.txt"
    monkeypatch.setenv("OUTCOMES", str(log))
    pytester.runpytest_subprocess("-W", "error", "--payments-sandbox-chaos-seed", "2").assert_outcomes(passed=1)
    pytester.makeini("[pytest]\npayments_sandbox_chaos_seed = 2\n")
    pytester.runpytest_subprocess("-W", "error").assert_outcomes(passed=1)
    by_option, by_ini = (json.loads(line) for line in log.read_text().splitlines())
    assert by_option == by_ini

    result = pytester.runpytest_subprocess("--payments-sandbox-chaos-seed", "two")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--payments-sandbox-chaos-seed: 'two' is not a whole number from 0 to 2**63-1"])


def test_a_seed_is_refused_with_an_external_sandbox(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(payments_sandbox):\n    pass\n")
    result = pytester.runpytest_subprocess(
        "--payments-sandbox-url", "http://127.0.0.1:9", "--payments-sandbox-chaos-seed", "1"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--payments-sandbox-chaos-seed is for the sandbox the plugin starts*"])
