"""scenario_schema: the plain-Python predicates compiled from scenario-schema.json give exactly
jsonschema's verdict, so a rule they pass is one jsonschema would pass; and a refused rule's message
quotes values as JSON.
"""

from __future__ import annotations

import copy
import datetime
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from sandbox.errors import ConfigError
from sandbox.scenario_schema import rule_check, schema, top_check
from sandbox.scenarios import parse_rules

REFERENCE = Draft202012Validator(schema())
VALID_RULES: list[dict[str, Any]] = [
    {"name": "a", "applies_to": "charge", "then": {}},
    {"name": "b", "applies_to": "refund", "when": {"amount": 5}, "then": {"refund": "none", "status": 400}},
    {
        "name": "c.d-e_1",
        "applies_to": "charge",
        "description": "text",
        "when": {"amount": {"min": 1, "max": 99999999}, "currency": "EUR", "metadata": {"k": "v"}},
        "then": {
            "status": 402,
            "error": {"code": "card_declined", "message": "m", "decline_code": "x"},
            "retryable": True,
            "charge": "failed",
            "delay_ms": 120000,
            "headers": {"X-A": "1"},
        },
    },
    {
        "name": "p",
        "applies_to": "charge",
        "then": {"charge": "pending", "settle": {"after_seconds": 0.5, "to": "failed"}},
    },
]
# Values near every limit of the schema, and values YAML produces that JSON has no word for.
AWKWARD = [
    None, True, False, 0, 1, -1, 199, 200, 599, 600, 99999999, 100000000, 120001, 315360000, 315360001,
    1.0, 200.0, 1.5, 0.0, -0.0, math.inf, -math.inf, math.nan, "", "x", "X", "USD", "usd", "USD\n", "a\n",
    "charge", "refund", "pending", "none", "k" * 41, "m" * 501, "a b", "X-A", "X:A", [], {}, [1], {"min": 1},
    {"min": 5, "max": 1}, {"max": 0}, {}, datetime.date(2024, 1, 1),
]  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 700) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
VALUES = st.sampled_from(AWKWARD) | JSON
KEYS = st.sampled_from(
    ["name", "applies_to", "when", "then", "amount", "min", "max", "currency", "metadata", "status", "error",
     "code", "message", "decline_code", "retryable", "charge", "refund", "settle", "after_seconds", "to",
     "delay_ms", "headers", "fail_first_attempt", "description", "X-A", "extra"]
)  # fmt: skip


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += paths(inner, (*prefix, key))
    return found


@st.composite
def mutated_rules(draw: st.DrawFn) -> Any:
    """A valid rule with a few of its values replaced, keys added or removed."""
    rule = copy.deepcopy(draw(st.sampled_from(VALID_RULES)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(rule)))
        if not path:
            continue
        parent = rule
        for part in path[:-1]:
            parent = parent[part]
        if not isinstance(parent, dict):
            continue
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = copy.deepcopy(draw(VALUES))
        elif action == "delete":
            del parent[path[-1]]
        else:
            parent[draw(KEYS)] = copy.deepcopy(draw(VALUES))
    return rule


def valid(instance: Any) -> bool:
    return not any(REFERENCE.iter_errors(instance))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated_rules(), VALUES))
def test_the_rule_predicate_agrees_with_jsonschema(rule: Any) -> None:
    check = rule_check()
    assert check is not None, "the shipped schema uses a keyword the compiler does not know"

    assert check(rule) == valid({"rules": [rule]})


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.dictionaries(st.sampled_from(["rules", "rule", "extra"]), VALUES, max_size=2), VALUES))
def test_the_document_predicate_agrees_with_jsonschema_leaving_rules_aside(document: Any) -> None:
    check = top_check()
    assert check is not None
    if isinstance(document, dict) and isinstance(document.get("rules"), list):
        document = {**document, "rules": []}

    assert check(document) == valid(document)


@pytest.mark.parametrize(
    ("then", "quoted", "python"),
    [
        ("{retryable: 1, status: 402, error: {code: x, message: m}}", 'retryable: 1 is not of type "boolean"', "'"),
        ("{status: true}", 'status: true is not of type "integer"', "True"),
        ("{status: null}", 'status: null is not of type "integer"', "None"),
        ("{status: text}", 'status: "text" is not of type "integer"', "'text'"),
        ("{delay_ms: [1, true, null]}", 'delay_ms: [1, true, null] is not of type "integer"', "None"),
        ("{charge: Pending}", 'charge: "Pending" is not allowed', "'Pending'"),
        ("{status: 700}", "status: 700 is out of range", "'"),
    ],
)
def test_messages_quote_values_as_json(then: str, quoted: str, python: str) -> None:
    text = f"rules:\n  - name: r\n    applies_to: charge\n    then: {then}\n"

    with pytest.raises(ConfigError) as raised:
        parse_rules(text, "f.yaml")

    assert quoted in str(raised.value)
    assert python not in str(raised.value)


def test_a_very_long_value_is_cut_short_in_the_message() -> None:
    text = f"rules:\n  - name: r\n    applies_to: charge\n    then: {{status: {'x' * 10_000}}}\n"

    with pytest.raises(ConfigError) as raised:
        parse_rules(text, "f.yaml")

    assert len(str(raised.value)) < 300
