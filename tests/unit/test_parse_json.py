"""api.parse_json: strict JSON, every refusal an InvalidRequest (400 invalid_json), never a crash."""

from __future__ import annotations

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
