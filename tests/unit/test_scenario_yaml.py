"""scenario_yaml.load: the data PyYAML's safe_load gives, built from libyaml's events, with every
limit checked as the events come (aliases, depth, keys) and the line of every value kept.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.errors import ConfigError
from sandbox.scenario_yaml import MAX_DEPTH, load

# Plain scalars that YAML 1.1 reads as something other than text, and some that stay text.
PLAIN = [
    "yes", "No", "on", "OFF", "y", "true", "~", "null", "", "1", "-1", "+1", "0x1F", "0o17", "017", "1_000",
    "1:30", "1.5", "1e3", "1.0e+3", ".inf", "-.Inf", ".nan", "2024-01-01", "2024-01-01 10:00:00", "a b", "USD",
    "café", "1.2.3",
]  # fmt: skip


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and a bool never equal to an int."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("text", PLAIN)
def test_a_plain_scalar_means_what_it_means_to_safe_load(text: str) -> None:
    document = f"value: {text}\nlisted: [{text}]\n"

    assert same(load(document, "f").data, yaml.safe_load(document))


@pytest.mark.parametrize(
    "text",
    [
        *["a: !!str 1\n", "a: !!int '7'\n", "a: !!float 1\n", "a: !!bool yes\n", "a: !!null ''\n", "a: ! 5\n"],
        *["a: '1'\n", 'a: "yes"\n', "a: |\n  two\n  lines\n", "a: >\n  folded\n", "a: !!map {b: 1}\n"],
        *["a: !!seq [1]\n", "%YAML 1.1\n---\na: 1\n", "--- {a: 1}\n...\n", "&anchor a: &x 1\n"],
    ],
)
def test_tagged_quoted_and_block_scalars_mean_what_they_mean_to_safe_load(text: str) -> None:
    assert same(load(text, "f").data, yaml.safe_load(text))


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=8) | st.sampled_from(PLAIN)
DATA = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=10,
)


def test_merge_and_value_keys_are_plain_text() -> None:
    # safe_load cannot construct `=` or a `<<` outside a merge; a scenario file means the text.
    assert load("a: =\nb: <<\n<<: {c: 1}\n", "f").data == {"a": "=", "b": "<<", "<<": {"c": 1}}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DATA, st.sampled_from([None, True, False]))
def test_dumped_data_loads_back_as_safe_load_reads_it(data: Any, flow: bool | None) -> None:
    text = yaml.safe_dump({"rules": data}, default_flow_style=flow, allow_unicode=True)

    assert same(load(text, "f").data, yaml.safe_load(text))


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        ("a: &x [1]\nb: *x\n", "f:2:4", "aliases (*x) are not allowed"),
        ("a: &x 1\nb: [*x]\n", "f:2:5", "aliases"),
        ("a: 1\n---\nb: 2\n", "f:2", "a second YAML document"),
        ("a: !!python/object:os.system x\n", "f:1:4", "the tag !!python/object:os.system is not allowed"),
        ("a: !!binary aGk=\n", "f:1:4", "!!binary"),
        ("a: !!set {x}\n", "f:1:4", "!!set"),
        ("a: !custom x\n", "f:1:4", "!custom"),
        ("a: !!int abc\n", "f:1:4", 'the value "abc" cannot be read as !!int'),
        ("a: 1\na: 2\n", "f:2:1", 'key "a" appears twice in this mapping (first at line 1)'),
        ("{1: a}\n", "f:1:2", 'the key 1 is read by YAML as a number, not text; quote the key: "1":'),
        ("? [a]\n: 1\n", "f:1:3", "a key must be text"),
        ("? \n: 1\n", "f:1:2", 'quote the key: "":'),
        ("a: [1, }\n", "f:1:8", "YAML syntax error"),
        ("a: 1\nb: x\x07y\n", "f:2", "character U+0007 is not allowed"),
        ("é: 1\nb: x\x07y\n", "f:2", "U+0007"),
    ],
)
def test_what_is_refused_and_where(text: str, where: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(text, "f")

    assert str(raised.value).startswith(where + ":"), str(raised.value)
    assert says in str(raised.value)


def nested_sequences(depth: int) -> str:
    return "rules: " + "[" * depth + "]" * depth + "\n"


def nested_mappings(depth: int) -> str:
    return "rules:\n" + "".join("  " * level + f"k{level}:\n" for level in range(1, depth + 1))


@pytest.mark.parametrize("nested", [nested_sequences, nested_mappings])
def test_nesting_is_limited_and_the_limit_named(nested: Any) -> None:
    assert load(nested(MAX_DEPTH - 1), "f").data is not None  # with the top-level mapping: MAX_DEPTH

    with pytest.raises(ConfigError, match=rf"^f:\d+:\d+: nested deeper than {MAX_DEPTH} levels"):
        load(nested(MAX_DEPTH), "f")


@pytest.mark.parametrize("text", [nested_sequences(200_000), "a:\n" + "".join(" " * n + "- \n" for n in range(2000))])
def test_very_deep_nesting_is_refused_without_recursion(text: str) -> None:
    # Refused by the depth limit, or by libyaml's own (1,000 levels) when it reads that far ahead.
    with pytest.raises(ConfigError, match=r"^f:\d+:\d+: (nested deeper|YAML syntax error: exceeded maximum nesting)"):
        load(text, "f")


def test_every_value_keeps_its_line() -> None:
    text = "rules:\n  - name: a\n    then:\n      status: 200\n      headers: {X-A: '1'}\n  - {name: b}\n"

    document = load(text, "f")

    assert document.line(["rules"]) == 2
    assert document.line(["rules", 0]) == 2
    assert document.line(["rules", 0, "then"]) == 4  # a block mapping starts at its first key
    assert document.line(["rules", 0, "then"], key=True) == 3
    assert document.line(["rules", 0, "then", "status"]) == 4
    assert document.line(["rules", 0, "then", "headers", "X-A"]) == 5
    assert document.line(["rules", 0, "then", "missing", "deeper"]) == 4  # the deepest value there is
    assert document.line(["rules", 1, "name"]) == 6
    assert document.item_lines(["rules"]) == [2, 6]
