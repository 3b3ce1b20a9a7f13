"""Scenario files as `payments-sandbox check` and `serve` read them (`scenarios.load_rules`): a bad
file is refused with one message that names the file, the line a reader has to change and how to
fix it; good files and folders load, and `check` says which files passed.

`check` prints the message after `error: ` and `serve` after `payments-sandbox: error: `; that real
processes do so and exit 1 and 2 is tested in tests/process/test_e2e_bad_scenario_files.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import DUPLICATE_NAMES

from sandbox.app import create_app
from sandbox.cli import main
from sandbox.errors import ConfigError
from sandbox.scenarios import load_rules
from sandbox.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data" / "scenarios"


@dataclass(frozen=True)
class Bad:
    text: str
    line: int  # the line a reader has to change
    mentions: tuple[str, ...]  # what the message must say: the culprit and the fix


RULE_HEAD = "rules:\n  - name: cut\n    applies_to: charge\n    when: {amount: 5000}\n    then:\n"
BAD_FILES = {
    "yaml_syntax": Bad(
        "rules:\n  - name: broken\n    applies_to: charge\n    when: {amount: [1, 2}\n    then: {status: 200}\n",
        line=4,
        mentions=("YAML syntax", "fix"),
    ),
    "unknown_key": Bad(
        "rules:\n"
        "  - name: colourful\n"
        "    applies_to: charge\n"
        "    when: {amount: 5000}\n"
        "    then:\n"
        "      status: 200\n"
        "      colour: red\n",
        line=7,
        mentions=("colour", "allowed keys", "delay_ms"),
    ),
    "value_out_of_range": Bad(
        "rules:\n  - name: teapot\n    applies_to: charge\n    when: {amount: 5000}\n    then:\n      status: 700\n",
        line=6,
        mentions=("700", "fix"),
    ),
    "duplicate_names": Bad(
        DUPLICATE_NAMES,
        line=6,
        mentions=("twice", "line 2", "own name"),
    ),
    "overlapping_ranges": Bad(
        "rules:\n"
        "  - name: low\n"
        "    applies_to: charge\n"
        "    when: {amount: {min: 1000, max: 2000}}\n"
        "    then: {status: 200}\n"
        "  - name: high\n"
        "    applies_to: charge\n"
        "    when: {amount: {min: 1500, max: 2500}}\n"
        "    then: {status: 200}\n",
        line=6,
        mentions=("low", "high", "1500..2000", "disjoint"),
    ),
    "unknown_rule_kind": Bad(
        "rules:\n  - name: payout_rule\n    applies_to: payout\n    when: {amount: 5000}\n    then: {status: 200}\n",
        line=3,
        mentions=("payout", "applies_to: charge", "applies_to: refund"),
    ),
    # From the hardening issue: input that used to crash `check` and `serve` with a traceback, or
    # that they took and the server then failed on.
    "nested_lists": Bad("rules: " + "[" * 500 + "]" * 500 + "\n", line=1, mentions=("nested deeper", "flatten")),
    "nested_mappings": Bad(
        "rules:\n" + "".join("  " * level + f"k{level}:\n" for level in range(1, 501)),
        line=17,
        mentions=("nested deeper", "flatten"),
    ),
    "header_not_latin1": Bad(
        "rules:\n"
        "  - name: noted\n"
        "    applies_to: charge\n"
        "    when: {amount: 5000}\n"
        "    then:\n"
        "      headers:\n"
        '        X-Note: "café €"\n',
        line=7,
        mentions=("X-Note", "U+20AC", "Latin-1"),
    ),
    "key_not_text": Bad(
        "rules:\n  - name: numbered\n    applies_to: charge\n    when: {amount: 5000}\n    then:\n"
        "      headers: {1: x}\n",
        line=6,
        mentions=("key 1", "quote the key"),
    ),
    "settle_never": Bad(
        "rules:\n"
        "  - name: never\n"
        "    applies_to: charge\n"
        "    when: {amount: 5000}\n"
        "    then:\n"
        "      charge: pending\n"
        "      settle: {after_seconds: .nan, to: succeeded}\n",
        line=7,
        mentions=("after_seconds", "NaN", "ten years"),
    ),
    "number_too_long": Bad(
        "rules:\n  - name: long\n    applies_to: charge\n    when: {amount: " + "9" * 5000 + "}\n    then: {}\n",
        line=4,
        mentions=("too many digits",),
    ),
    "json_not_python": Bad(
        "rules:\n  - name: truthy\n    applies_to: charge\n    when: {amount: 5000}\n    then: {status: true}\n",
        line=5,
        mentions=('true is not of type "integer"',),
    ),
    "fault_unknown_kind": Bad(
        RULE_HEAD + "      fault: {kind: connection_refused, commit: true}\n",
        line=6,
        mentions=("connection_refused", "connection_reset", "slow_body"),
    ),
    "fault_without_commit": Bad(
        RULE_HEAD + "      fault: {kind: connection_reset}\n",
        line=6,
        mentions=('"commit" is missing',),
    ),
    "fault_before_commit_storing": Bad(
        RULE_HEAD + "      charge: succeeded\n      fault: {kind: connection_reset, commit: false}\n",
        line=7,
        mentions=("commit: false stores nothing", "charge: succeeded", "commit: true"),
    ),
    "fault_after_commit_storing_nothing": Bad(
        RULE_HEAD + "      status: 500\n      error: {code: processing_error, message: No.}\n"
        "      fault: {kind: truncated_body, commit: true}\n",
        line=8,
        mentions=("commit: true stores the charge", "charge: succeeded", "commit: false"),
    ),
    "fault_rate_not_slow": Bad(
        RULE_HEAD + "      fault: {kind: truncated_body, commit: true, bytes_per_second: 10}\n",
        line=6,
        mentions=("only a slow_body", "remove it"),
    ),
    "probability_over_one": Bad(
        "rules:\n  - name: often\n    applies_to: charge\n    when: {amount: 5000}\n    probability: 1.5\n"
        "    then: {delay_ms: 10}\n",
        line=5,
        mentions=("1.5", "from 0 to 1"),
    ),
    "webhooks_on_a_charge_storing_nothing": Bad(
        RULE_HEAD + "      status: 402\n      error: {code: card_declined, message: No.}\n"
        "      webhooks: {duplicate: 2}\n",
        line=8,
        mentions=("stores no charge", "remove `webhooks`", "charge: failed"),
    ),
    "webhooks_duplicate_over_ten": Bad(
        RULE_HEAD + "      webhooks: {duplicate: 11}\n",
        line=6,
        mentions=("11", "10"),
    ),
    "webhooks_unknown_key": Bad(
        RULE_HEAD + "      webhooks: {reorder: true}\n",
        line=6,
        mentions=("reorder",),
    ),
}


def refusal(load: Callable[[], object]) -> str:
    """The first line of the message `load()` refuses the file with."""
    with pytest.raises(ConfigError) as caught:
        load()
    return str(caught.value).splitlines()[0]


@pytest.mark.parametrize("name", BAD_FILES)
def test_a_bad_file_is_refused_naming_it_the_line_and_the_fix(tmp_path, name):
    bad = BAD_FILES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(bad.text)

    message = refusal(lambda: load_rules((path,)))  # what `check` prints

    assert message.startswith(f"{path}:{bad.line}:"), message
    for needed in bad.mentions:
        assert needed in message, message
    assert refusal(lambda: create_app(Settings(scenarios=(path,)))) == message  # what `serve` prints


def test_check_accepts_good_files(capsys):
    assert main(["check", str(DATA / "custom.yaml"), str(DATA / "override.yaml")]) == 0

    out = capsys.readouterr().out
    assert "custom.yaml" in out
    assert "override.yaml" in out


def test_check_accepts_a_folder_of_good_files(capsys):
    assert main(["check", str(DATA)]) == 0, capsys.readouterr().err


def test_check_fails_when_any_file_is_bad(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_FILES["duplicate_names"].text)

    assert main(["check", str(DATA / "custom.yaml"), str(bad)]) == 1
    assert str(bad) in capsys.readouterr().err


def test_check_rejects_a_missing_file(tmp_path, capsys):
    missing = tmp_path / "missing.yaml"

    assert main(["check", str(missing)]) == 1
    assert str(missing) in capsys.readouterr().err
