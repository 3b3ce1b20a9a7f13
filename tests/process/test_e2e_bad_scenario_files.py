"""Bad scenario files: `serve` exits non-zero before binding and `check` exits 1, both with a message
that names the file, the line of the mistake and how to fix it. Good files pass `check`.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
EXIT_TIMEOUT = 15.0


@dataclass(frozen=True)
class Bad:
    text: str
    line: int  # the line a reader has to change
    mentions: tuple[str, ...]  # what the message must say: the culprit and the fix


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
        "rules:\n"
        "  - name: twice\n"
        "    applies_to: charge\n"
        "    when: {amount: 5000}\n"
        "    then: {status: 200}\n"
        "  - name: twice\n"
        "    applies_to: charge\n"
        "    when: {amount: 5001}\n"
        "    then: {status: 200}\n",
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
}

# The five kinds of mistake the scenarios issue names, and the crashes of the hardening issue;
# `serve` is run once for each.
SERVE_CASES = ["yaml_syntax", "unknown_key", "duplicate_names", "overlapping_ranges", "unknown_rule_kind"]
SERVE_CASES += ["nested_lists", "nested_mappings", "header_not_latin1", "key_not_text", "settle_never"]
SERVE_CASES += ["number_too_long"]
LINE_CASES = list(BAD_FILES)


@pytest.fixture(scope="module")
def bad_file(request, tmp_path_factory) -> tuple[Path, Bad]:
    bad = BAD_FILES[request.param]
    path = tmp_path_factory.mktemp("bad") / f"{request.param}.yaml"
    path.write_text(bad.text)
    return path, bad


@pytest.fixture(scope="module")
def checked(cli, bad_file) -> subprocess.CompletedProcess[str]:
    """`payments-sandbox check` of the bad file, run once per file."""
    return cli("check", str(bad_file[0]))


def message_about(output: str, path: Path) -> str:
    """The error message about `path`: from the path to the end of its line."""
    assert str(path) in output, output
    return output[output.index(str(path)) :].splitlines()[0]


@pytest.mark.parametrize("bad_file", BAD_FILES, indirect=True)
def test_check_rejects_a_bad_file_naming_it_and_the_fix(checked, bad_file):
    path, bad = bad_file

    assert checked.returncode == 1
    assert "Traceback" not in checked.stderr
    message = message_about(checked.stderr, path)
    for needed in bad.mentions:
        assert needed in message, message


@pytest.mark.parametrize("bad_file", LINE_CASES, indirect=True)
def test_check_names_the_line_of_the_mistake(checked, bad_file):
    path, bad = bad_file

    assert message_about(checked.stderr, path).startswith(f"{path}:{bad.line}:")


@pytest.mark.parametrize("bad_file", SERVE_CASES, indirect=True)
def test_serve_exits_before_binding_with_the_same_message_as_check(spawn, answers, checked, bad_file):
    path, _ = bad_file

    server = spawn("--scenarios", str(path), ready=False)
    answered = False
    deadline = time.monotonic() + EXIT_TIMEOUT
    while server.proc.poll() is None and time.monotonic() < deadline:
        answered = answered or answers(server.base_url) is not None
        time.sleep(0.05)
    code = server.stop()

    assert code == 2
    assert not answered, "the health endpoint answered: the server bound its port"
    assert answers(server.base_url) is None
    output = server.stderr()
    assert "Uvicorn running" not in output
    assert "Traceback" not in output
    assert message_about(output, path) == message_about(checked.stderr, path)


def test_check_accepts_good_files(cli):
    result = cli("check", str(DATA / "custom.yaml"), str(DATA / "override.yaml"))

    assert result.returncode == 0, result.stderr
    assert "custom.yaml" in result.stdout
    assert "override.yaml" in result.stdout


def test_check_accepts_a_folder_of_good_files(cli):
    result = cli("check", str(DATA))

    assert result.returncode == 0, result.stderr


def test_check_fails_when_any_file_is_bad(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_FILES["duplicate_names"].text)

    result = cli("check", str(DATA / "custom.yaml"), str(bad))

    assert result.returncode == 1
    assert str(bad) in result.stderr


def test_check_rejects_a_missing_file(cli, tmp_path):
    missing = tmp_path / "missing.yaml"

    result = cli("check", str(missing))

    assert result.returncode == 1
    assert str(missing) in result.stderr
