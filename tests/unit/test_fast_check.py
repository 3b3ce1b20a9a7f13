"""fastcheck.fast_check: the plain-Python predicate that lets a valid request skip jsonschema.

The predicate must give exactly jsonschema's verdict, and an invalid request must still get the
error the jsonschema path words. The reference throughout is openapi-schema-validator's own
`OAS30Validator`, which sandbox.openapi uses to word errors.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS30Validator as LibraryValidator

from sandbox.errors import InvalidRequest
from sandbox.fastcheck import fast_check
from sandbox.openapi import Contract, Operation, load_contract
from sandbox.settings import PACKAGE_DIR

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = {
    "api": load_contract(ROOT / "openapi.json"),
    "control": load_contract(PACKAGE_DIR / "control-openapi.json", check_document=False),
}
property_test = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference(op: Operation) -> Operation:
    """`op` as it was before the fast path: the library's validator, asked every time."""
    params = tuple(replace(p, validator=LibraryValidator(p.validator.schema), fast=None) for p in op.params)
    body = LibraryValidator(op.body.schema) if op.body is not None else None
    return replace(op, params=params, body=body, fast_body=None)


def outcome(call: Callable[..., Any], *args: Any) -> tuple[str, str, str | None] | None:
    try:
        call(*args)
    except InvalidRequest as exc:
        return exc.code, exc.message, exc.param
    return None


# -- instances: valid ones, mutated ones, values around every limit, arbitrary JSON ---------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
AWKWARD = [None, True, False, 0, 1, -1, 1.0, 0.0, 1.5, "", "1", 10**20, [], {}]
UNKNOWN_KEYS = st.sampled_from(["extra", "Amount", "amount ", "AMOUNT", "metadata_", "", "__proto__"])
_memo: dict[int, tuple[Any, st.SearchStrategy[Any]]] = {}  # by id(); holding the schema keeps the id its own


def near(schema: Any) -> st.SearchStrategy[Any]:
    """Instances for `schema`, about half of them valid: valid instances, valid objects with one
    thing wrong, values at and either side of each limit, enum near misses, arbitrary JSON."""
    if id(schema) not in _memo:
        _memo[id(schema)] = schema, st.one_of(valid(schema), _mutated(schema), _edges(schema), JSON)
    return _memo[id(schema)][1]


def valid(schema: Any) -> st.SearchStrategy[Any]:
    """Instances the schema accepts (for the keywords our contracts use)."""
    options = [_valid_non_null(schema)]
    if schema.get("nullable") is True and "enum" not in schema:
        options.append(st.none())
    return st.one_of(options)


def _valid_non_null(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    kind = schema.get("type")
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        low = None if low is None else low + 1 if schema.get("exclusiveMinimum") else low
        high = None if high is None else high - 1 if schema.get("exclusiveMaximum") else high
        integers = st.integers(low, high)
        return integers if kind == "integer" else integers | st.floats(low, high, allow_nan=False)
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 20), 20))
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(valid(schema.get("items", {})), max_size=4)
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        known = st.fixed_dictionaries(
            {name: valid(sub) for name, sub in properties.items() if name in required},
            optional={name: valid(sub) for name, sub in properties.items() if name not in required},
        )
        extra = schema.get("additionalProperties")
        if not isinstance(extra, dict):
            return known
        room = min(schema.get("maxProperties", 4), 4)
        return st.builds(
            lambda a, b: {**b, **a}, known, st.dictionaries(st.text(max_size=40), valid(extra), max_size=room)
        )
    return JSON


def _mutated(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A valid object with one thing changed: a member set to a near value, a required member
    dropped, an unknown member added; or a map at and around maxProperties."""
    if schema.get("type") != "object" and "properties" not in schema:
        return valid(schema)
    properties = schema.get("properties", {})

    @st.composite
    def one_change(draw: st.DrawFn) -> Any:
        value = dict(draw(valid(schema)))
        names = sorted(properties)
        change = draw(st.sampled_from(["set", "drop", "unknown"] if names else ["unknown"]))
        if change == "set":
            name = draw(st.sampled_from(names))
            value[name] = draw(near(properties[name]))
        elif change == "drop" and value:
            del value[draw(st.sampled_from(sorted(value)))]
        else:
            value[draw(UNKNOWN_KEYS | st.text(max_size=4))] = draw(JSON)
        return value

    options = [one_change()]
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and "maxProperties" in schema:
        limit = schema["maxProperties"]
        options.append(
            st.builds(
                lambda n, last: {**{f"k{i}": "v" for i in range(n - 1)}, "last": last},
                st.integers(max(limit - 2, 1), limit + 2),
                near(extra),
            )
        )
    return st.one_of(options)


def _edges(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    options: list[st.SearchStrategy[Any]] = [st.sampled_from(AWKWARD)]
    bounds = [schema[key] for key in ("minimum", "maximum") if key in schema]
    if bounds:
        around = [b + step for b in bounds for step in (-1, 0, 1)]
        options.append(st.sampled_from(around + [float(n) for n in around] + [b + 0.5 for b in bounds]))
        options.append(st.sampled_from([b - 0.5 for b in bounds] + [True, False]))
    lengths = [schema[key] + step for key in ("minLength", "maxLength") if key in schema for step in (-1, 0, 1)]
    if lengths:
        # Lengths count code points, as jsonschema does: an emoji is one, not two (UTF-16) or four.
        options.append(
            st.builds(lambda n, c: c * n, st.sampled_from([n for n in lengths if n >= 0]), st.sampled_from("aé😀"))
        )
    members = [m for m in schema.get("enum", []) if isinstance(m, str)]
    if members:
        misses = [str.lower, str.casefold, lambda m: m + " ", lambda m: m[:-1], lambda m: m * 2]
        options.append(st.builds(lambda m, miss: miss(m), st.sampled_from(members), st.sampled_from(misses)))
    return st.one_of(options)


def _raw_param(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    """A path or query string for a parameter: valid ones, numbers around the limits, near misses."""
    options = [st.text(max_size=6), st.sampled_from(["", "0", "-0", "01", "+1", "1.0", "1e3", " 1", "9" * 16])]
    scalars = st.one_of(valid(schema), _edges(schema)).filter(lambda v: isinstance(v, str | int) and v is not True)
    return st.one_of([*options, scalars.map(str), valid(schema).map(str)])


# -- the predicate agrees with jsonschema on the real contracts -----------------------------------

OPERATIONS = [op for contract in CONTRACTS.values() for op in contract.operations.values()]
BODY_OPERATIONS = [op for op in OPERATIONS if op.body is not None]
PARAM_OPERATIONS = [op for op in OPERATIONS if op.params]
REFERENCES = {op.id: reference(op) for op in OPERATIONS}
# Every compiled schema, by name: (fast predicate, jsonschema validator, the library's validator).
SCHEMAS: dict[str, tuple[Callable[[Any], bool] | None, Any, Any]] = {
    **{f"{op.id}.body": (op.fast_body, op.body, REFERENCES[op.id].body) for op in BODY_OPERATIONS},
    **{
        f"{op.id}.{mine.name}": (mine.fast, mine.validator, theirs.validator)
        for op in PARAM_OPERATIONS
        for mine, theirs in zip(op.params, REFERENCES[op.id].params, strict=True)
    },
}
RAW_PARAMS = {
    op.id: st.fixed_dictionaries({}, optional={p.name: _raw_param(p.validator.schema) for p in op.params})
    for op in PARAM_OPERATIONS
}


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_contract_schema_has_a_fast_path(name):
    assert SCHEMAS[name][0] is not None


@pytest.mark.parametrize("name", SCHEMAS)
@property_test
@given(data=st.data())
def test_fast_verdict_matches_jsonschema(name, data):
    fast, validator, library = SCHEMAS[name]
    assert fast is not None
    instance = data.draw(near(validator.schema))
    assert fast(instance) == library.is_valid(instance)


@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=lambda op: op.id)
@property_test
@given(data=st.data())
def test_check_body_raises_what_the_jsonschema_path_raises(op, data):
    assert op.body is not None
    body = data.draw(near(op.body.schema))
    assert outcome(op.check_body, body) == outcome(REFERENCES[op.id].check_body, body)


@pytest.mark.parametrize("op", PARAM_OPERATIONS, ids=lambda op: op.id)
@property_test
@given(data=st.data())
def test_parse_params_matches_the_jsonschema_path(op, data):
    raw = data.draw(RAW_PARAMS[op.id])
    path = {p.name: raw[p.name] for p in op.params if p.location == "path" and p.name in raw}
    query = {p.name: raw[p.name] for p in op.params if p.location == "query" and p.name in raw}
    mine, theirs = op, REFERENCES[op.id]
    assert outcome(mine.parse_params, path, query) == outcome(theirs.parse_params, path, query)
    if outcome(mine.parse_params, path, query) is None:
        assert mine.parse_params(path, query) == theirs.parse_params(path, query)


BAD_CHARGES: list[Any] = [
    None,
    [],
    "body",
    {},
    {"currency": "USD"},
    {"amount": 1000},
    {"amount": 0, "currency": "USD"},
    {"amount": 100000000, "currency": "USD"},
    {"amount": True, "currency": "USD"},
    {"amount": 1.0, "currency": "USD"},
    {"amount": "1000", "currency": "USD"},
    {"amount": 1000, "currency": "usd"},
    {"amount": 1000, "currency": "USD", "description": "x" * 1001},
    {"amount": 1000, "currency": "USD", "description": None},
    {"amount": 1000, "currency": "USD", "metadata": {"k": 1}},
    {"amount": 1000, "currency": "USD", "metadata": {"k": "v" * 501}},
    {"amount": 1000, "currency": "USD", "metadata": {f"k{i}": "v" for i in range(51)}},
    {"amount": 1000, "currency": "USD", "metadata": []},
    {"amount": 1000, "currency": "USD", "zeta": 1, "alpha": 2},
]


@pytest.mark.parametrize("body", BAD_CHARGES)
def test_bad_charge_bodies_raise_the_jsonschema_error(body):
    op = CONTRACTS["api"].operations["postCreateCharge"]
    expected = outcome(reference(op).check_body, body)
    assert expected is not None
    assert outcome(op.check_body, body) == expected


@pytest.mark.parametrize(
    ("op_id", "path", "query"),
    [
        ("getListCharges", {}, {"limit": "0"}),
        ("getListCharges", {}, {"limit": "101"}),
        ("getListCharges", {}, {"offset": "-1"}),
        ("getListCharges", {}, {"offset": "100000000"}),
        ("getListCharges", {}, {"status": "Succeeded"}),
        ("getListCharges", {}, {"limit": "1.5"}),
        ("getGetCharge", {"id": "c" * 256}, {}),
    ],
)
def test_bad_params_raise_the_jsonschema_error(op_id, path, query):
    op = CONTRACTS["api"].operations[op_id]
    expected = outcome(reference(op).parse_params, path, query)
    assert expected is not None
    assert outcome(op.parse_params, path, query) == expected


def test_valid_requests_pass():
    api = CONTRACTS["api"].operations
    api["postCreateCharge"].check_body({"amount": 1000, "currency": "USD", "description": "x", "metadata": {"o": "1"}})
    api["postCreateRefund"].check_body({"charge_id": "ch_1", "amount": 99999999, "reason": "", "metadata": {}})
    assert api["getListCharges"].parse_params({}, {"limit": "100", "offset": "0", "status": "failed"}) == {
        "limit": 100,
        "offset": 0,
        "status": "failed",
    }


# -- each supported keyword, on small schemas ------------------------------------------------------

KEYWORD_CASES: list[tuple[dict[str, Any], list[tuple[Any, bool]]]] = [
    ({"type": "integer"}, [(1, True), (-(10**30), True), (True, False), (1.0, False), ("1", False), (None, False)]),
    ({"type": "number"}, [(1, True), (1.5, True), (False, False), ("1.5", False), (None, False)]),
    ({"type": "boolean"}, [(True, True), (0, False), (None, False)]),
    ({"type": "string"}, [("", True), (b"x", False), (1, False), (None, False)]),
    ({"type": "array"}, [([], True), ((), False), ({}, False)]),
    ({"type": "object"}, [({}, True), ([], False), (None, False)]),
    ({"type": "string", "nullable": True}, [(None, True), ("x", True), (5, False)]),
    ({"type": "integer", "nullable": True}, [(None, True), (True, False)]),
    ({"type": "string", "nullable": "yes"}, [(None, False)]),  # only `true` counts
    ({"nullable": True}, [(None, True), (5, True)]),  # without a type there is nothing to loosen
    ({"type": "string", "format": "binary"}, [(b"\x00", True), ("x", True), (None, False)]),
    ({"type": "integer", "format": "int32"}, [(2**40, True), (1.5, False)]),  # no format checker
    ({"type": "string", "format": "date-time"}, [("not a date", True)]),
    ({"enum": ["a", "B"]}, [("a", True), ("b", False), ("A", False), (None, False), (["a"], False)]),
    ({"enum": ["a", None]}, [(None, True), ("a", True), ("", False)]),
    ({"type": "string", "enum": ["a"], "nullable": True}, [(None, False), ("a", True)]),  # enum must list null
    ({"enum": []}, [("a", False), (None, False)]),
    ({"minimum": 1, "maximum": 10}, [(1, True), (10, True), (0, False), (11, False), (0.5, False), ("0", True)]),
    ({"minimum": 1, "maximum": 10}, [(True, True), (False, True), (10.0, True), (10.000001, False)]),
    ({"minimum": 1, "exclusiveMinimum": True}, [(1, False), (1.0, False), (1.0001, True), (2, True)]),
    ({"maximum": 1, "exclusiveMaximum": True}, [(1, False), (0.999, True)]),
    ({"minimum": 1, "exclusiveMinimum": False}, [(1, True), (0, False)]),
    ({"exclusiveMinimum": True}, [(-5, True)]),  # without minimum it is ignored
    ({"minimum": 0.5}, [(0.5, True), (0, False), (float("nan"), True), (float("-inf"), False)]),
    ({"minLength": 2, "maxLength": 3}, [("ab", True), ("abc", True), ("a", False), ("abcd", False), (5, True)]),
    ({"maxLength": 2}, [("😀😀", True), ("😀😀😀", False), ("éé", True)]),  # code points
    ({"pattern": "^ch_"}, [("ch_1", True), ("xch_1", False), (5, True)]),
    ({"pattern": "[0-9]"}, [("abc1", True), ("abc", False)]),  # a search, not a full match
    ({"items": {"type": "integer"}}, [([1, 2], True), ([1, "2"], False), ([], True), ("12", True)]),
    ({"minItems": 1, "maxItems": 2}, [([1], True), ([], False), ([1, 2, 3], False), ({}, True)]),
    ({"required": ["a"]}, [({"a": None}, True), ({}, False), ([], True), ("a", True)]),
    ({"properties": {"a": {"type": "string"}}}, [({"a": "x"}, True), ({"a": 1}, False), ({"b": 1}, True)]),
    ({"properties": {"a": {}}, "additionalProperties": False}, [({"a": 1}, True), ({"b": 1}, False), ([], True)]),
    ({"additionalProperties": {"type": "string"}}, [({"x": "y"}, True), ({"x": 1}, False)]),
    ({"additionalProperties": True}, [({"x": 1}, True)]),
    ({"minProperties": 1, "maxProperties": 2}, [({"a": 1}, True), ({}, False), ({"a": 1, "b": 2, "c": 3}, False)]),
    ({"type": "object", "description": "d", "example": {}, "x-extension": 1, "title": "t"}, [({}, True)]),
]


@pytest.mark.parametrize(("schema", "cases"), KEYWORD_CASES, ids=lambda v: str(v)[:60] if isinstance(v, dict) else "")
def test_keyword(schema, cases):
    fast = fast_check(schema)
    assert fast is not None
    library = LibraryValidator(schema)
    for instance, valid in cases:
        assert (fast(instance), library.is_valid(instance)) == (valid, valid), instance


@pytest.mark.parametrize(
    "schema",
    [
        {"allOf": [{"type": "string"}]},
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        {"oneOf": [{"type": "string"}]},
        {"not": {"type": "string"}},
        {"multipleOf": 2},
        {"uniqueItems": True},
        {"$ref": "#/definitions/x"},
        {"type": ["string", "null"]},
        {"type": "null"},
        {"enum": [1, 2]},
        {"pattern": "("},
        {"minimum": "1"},
        {"properties": {"a": {"type": "string", "readOnly": True}}, "required": ["a"]},
        {"patternProperties": {"^x": {}}, "additionalProperties": False},
        {"properties": {"a": {"allOf": []}}},  # anywhere in the tree
        {"items": [{"type": "string"}]},
        True,
    ],
    ids=str,
)
def test_unsupported_schemas_have_no_fast_path(schema):
    assert fast_check(schema) is None


def _one_operation(schema: dict[str, Any], **document: Any) -> Operation:
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/things": {
                "post": {
                    "operationId": "makeThing",
                    "requestBody": {"content": {"application/json": {"schema": schema}}},
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
        **document,
    }
    return Contract(spec, b"{}", Path("tiny.json")).operations["makeThing"]


def test_an_unsupported_body_falls_back_to_jsonschema():
    schema = {"type": "object", "properties": {"n": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}}
    op = _one_operation(schema)
    assert op.fast_body is None
    op.check_body({"n": 1})
    op.check_body({"n": "x"})
    assert outcome(op.check_body, {"n": 1.5}) == outcome(reference(op).check_body, {"n": 1.5})
    assert outcome(op.check_body, {"n": 1.5}) is not None


def test_starting_the_app_leaves_jsonschema_for_the_first_invalid_request():
    # Importing jsonschema and openapi-schema-validator is half of the start-up; valid requests
    # never need them. The first invalid one builds its validator (tests/http check the wording).
    code = (
        "import sys; from sandbox.app import create_app; from sandbox.settings import Settings; "
        "create_app(Settings()); "
        "sys.exit(sorted({'jsonschema', 'openapi_schema_validator'} & set(sys.modules)) or None)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
