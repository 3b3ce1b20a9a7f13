"""`payments_sandbox.load_scenarios(source)`: a `Path` is a file or a folder, a `str` is YAML text, and
a one-line str that names a file is refused with a TypeError that says how to pass it."""

from __future__ import annotations

import pytest

TEAPOT = """rules:
  - {name: teapot, applies_to: charge, when: {amount: 4180}, then: {status: 402, error: {code: card_declined,
     message: I am a teapot.}}}
"""

USES_LOAD_SCENARIOS = """
import json
from pathlib import Path

import pytest

HERE = Path(__file__).parent
TEAPOT = (HERE / "rules" / "teapot.yaml").read_text()


def teapot_answer(payments_sandbox):
    with payments_sandbox.client() as client:
        return client.post("/charge", json={"amount": 4180, "currency": "EUR"})


def test_a_path_to_a_file(payments_sandbox):
    [rule] = payments_sandbox.load_scenarios(HERE / "rules" / "teapot.yaml")
    assert rule["name"] == "teapot"
    assert teapot_answer(payments_sandbox).status_code == 402


def test_a_path_to_a_folder(payments_sandbox):
    assert [r["name"] for r in payments_sandbox.load_scenarios(HERE / "rules")] == ["teapot"]
    assert teapot_answer(payments_sandbox).status_code == 402


def test_a_str_of_yaml(payments_sandbox):
    assert [r["name"] for r in payments_sandbox.load_scenarios(TEAPOT)] == ["teapot"]
    assert teapot_answer(payments_sandbox).status_code == 402


def test_a_str_of_json_on_one_line_longer_than_a_file_name(payments_sandbox):
    error = {"code": "card_declined", "message": "I am a teapot. " * 20}
    rule = {"name": "teapot", "applies_to": "charge", "when": {"amount": 4180}, "then": {"status": 402, "error": error}}
    text = json.dumps({"rules": [rule]})
    assert len(text) > 255  # Path(text).is_file() would raise: "File name too long"
    assert [r["name"] for r in payments_sandbox.load_scenarios(text)] == ["teapot"]
    assert teapot_answer(payments_sandbox).status_code == 402


def test_a_str_naming_a_file_is_refused(payments_sandbox):
    name = str(HERE / "rules" / "teapot.yaml")
    with pytest.raises(TypeError, match=r"pass Path\\(.*teapot\\.yaml'\\)"):
        payments_sandbox.load_scenarios(name)
    assert teapot_answer(payments_sandbox).status_code == 200, "nothing was loaded"
"""


def test_load_scenarios_takes_a_path_or_yaml_text(pytester: pytest.Pytester) -> None:
    (pytester.path / "rules").mkdir()
    (pytester.path / "rules" / "teapot.yaml").write_text(TEAPOT)
    pytester.makepyfile(test_load=USES_LOAD_SCENARIOS)
    pytester.runpytest_subprocess("-W", "error").assert_outcomes(passed=5)
