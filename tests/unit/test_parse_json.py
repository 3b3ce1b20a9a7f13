"""api.parse_json: strict JSON, every refusal an InvalidRequest (400 invalid_json), never a crash."""

from __future__ import annotations

import json
import random

import pytest

from sandbox.errors import InvalidRequest
from sandbox.wire import parse_json


def refused(raw: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse_json(raw)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_json"
    return caught.value


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'{"a": 1}', {"a": 1}),
        (b"[1, 2]", [1, 2]),
        (b'"text"', "text"),
        (b"1e308", 1e308),
        (b"-0.5", -0.5),
        (b"12345678901234567890", 12345678901234567890),
        (b'{"a": {"a": 1}}', {"a": {"a": 1}}),
        ('{"t": "caf\u00e9"}'.encode(), {"t": "caf\u00e9"}),
        (b'{"t": "\\ud83d\\ude00"}', {"t": "\U0001f600"}),
        (b'{"t": "\\\\ud800"}', {"t": "\\ud800"}),
    ],
)
def test_valid_json_parses(raw, value):
    assert parse_json(raw) == value


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'{"a": 1,}',
        b"{'a': 1}",
        b'{"a": 1} x',
        b"NaN",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": 1e400}',
        b'{"a": -1e400}',
        b'{"a": 1' + b"0" * 5000 + b"}",
        b'{"t": "caf\xe9"}',
        b'{"t": "\xed\xa0\x80"}',
        b"\xff\xfe{\x00}\x00",
        b"[" * 10_000 + b"]" * 10_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b'{"a":' * 900 + b'"\\ud800"' + b"}" * 900,
    ],
)
def test_invalid_json_is_refused(raw):
    refused(raw)


def test_duplicate_key_names_the_key():
    assert refused(b'{"amount": 1, "amount": 2}').param == "amount"


def test_nested_duplicate_key_is_refused():
    refused(b'{"metadata": {"k": "a", "k": "b"}}')


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b'{"description": "\\ud800"}', "description"),
        (b'{"description": "ok \\uDFFF"}', "description"),
        (b'{"metadata": {"k": "\\udbff"}}', "metadata.k"),
        (b'{"a": ["ok", "\\ud800"]}', "a"),
        (b'["\\ud800"]', None),
        (b'{"\\ud800": "v"}', None),
    ],
)
def test_lone_surrogate_is_refused_naming_where(raw, param):
    assert refused(raw).param == param


# parse_json takes orjson's result when it is exactly the strict parser's (wire._plain_json): these
# are the documents where the two could differ.
@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'{"n": 18446744073709551616}', {"n": 18446744073709551616}),  # orjson: a float
        (b'{"n": -9223372036854775809, "f": 0.5}', {"n": -9223372036854775809, "f": 0.5}),
        (b'{"t": "12:30", "u": "a:b:c"}', {"t": "12:30", "u": "a:b:c"}),  # more colons than keys
        (b'{"k:": {"k": 1}}', {"k:": {"k": 1}}),
    ],
)
def test_values_keep_their_types(raw, value):
    parsed = parse_json(raw)
    assert parsed == value
    assert repr(parsed) == repr(value)  # 1 == 1.0, but an int must not come back a float


@pytest.mark.parametrize(
    "raw",
    [
        b'{"k": "a:b", "k": "c"}',  # a repeat, and a colon in a string to make up the count
        b'{"k": 1, "k": 2, "x": "::"}',
        b'{"m": {"k": "a", "k": "b"}, "t": "1:2"}',
    ],
)
def test_duplicate_keys_are_refused_whatever_the_colons(raw):
    refused(raw)


def test_agrees_with_the_standard_library_on_random_documents():
    """Valid documents without repeated keys, NaN or lone surrogates: the standard library's
    parse, value for value and type for type."""
    rng = random.Random(20261203)
    atoms = [
        b"1", b"-0", b"0.5", b"-2.5e-3", b"1e5", b"12345678901234567890123", b"9223372036854775808", b"true",
        b"false", b"null", b'"a"', b'"a:b"', b'"\\u00e9:"', b'"\\ud83d\\ude00"', b'"\\""', b'""', b"[]", b"{}",
    ]  # fmt: skip

    def document(depth: int) -> bytes:
        roll = rng.random()
        if depth > 3 or roll < 0.4:
            return rng.choice(atoms)
        if roll < 0.7:
            return b"[" + b",".join(document(depth + 1) for _ in range(rng.randint(0, 3))) + b"]"
        names = rng.sample([b'"a"', b'"b"', b'"c:"', b'"d"'], rng.randint(0, 4))
        return b"{" + b", ".join(name + b": " + document(depth + 1) for name in names) + b"}"

    for _ in range(5000):
        raw = document(0)
        assert repr(parse_json(raw)) == repr(json.loads(raw)), raw
