"""Hostile and broken request bodies: each gets a 4xx envelope and changes nothing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio

JSON = "application/json"
MIB = 1024 * 1024
VALID = b'{"amount": 1500, "currency": "USD"}'

# (id, body, content type, status, param or ... for "don't care")
CASES = [
    ("trailing-comma", b'{"amount": 1500, "currency": "USD",}', JSON, 400, ...),
    ("single-quotes", b"{'amount': 1500, 'currency': 'USD'}", JSON, 400, ...),
    ("truncated", b'{"amount": 1500, "currency": "US', JSON, 400, ...),
    ("truncated-object", b'{"amount": 1500', JSON, 400, ...),
    ("garbage-after", VALID + b" x", JSON, 400, ...),
    ("array", b'[{"amount": 1500, "currency": "USD"}]', JSON, 400, None),
    ("string", b'"amount=1500&currency=USD"', JSON, 400, None),
    ("number", b"1500", JSON, 400, None),
    ("null", b"null", JSON, 400, None),
    ("text-plain", VALID, "text/plain", 415, None),
    ("form", b"amount=1500&currency=USD", "application/x-www-form-urlencoded", 415, None),
    ("no-content-type", VALID, None, 415, None),
    ("latin-1-charset", VALID, "application/json; charset=latin-1", 415, None),
    ("invalid-utf8", b'{"amount": 1500, "currency": "USD", "description": "caf\xe9"}', JSON, 400, ...),
    ("utf16", VALID.decode().encode("utf-16"), JSON, 400, ...),
    ("nan", b'{"amount": NaN, "currency": "USD"}', JSON, 400, ...),
    ("infinity", b'{"amount": Infinity, "currency": "USD"}', JSON, 400, ...),
    ("minus-infinity", b'{"amount": -Infinity, "currency": "USD"}', JSON, 400, ...),
    ("1e400", b'{"amount": 1e400, "currency": "USD"}', JSON, 400, ...),
    ("huge-integer", b'{"amount": 1' + b"0" * 5000 + b', "currency": "USD"}', JSON, 400, ...),
    ("duplicate-keys", b'{"amount": 1500, "amount": 1600, "currency": "USD"}', JSON, 400, "amount"),
    ("deep-arrays", b"[" * 10_000 + b"]" * 10_000, JSON, 400, ...),
    ("deep-objects", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, JSON, 400, ...),
    ("deep-unclosed", b"[" * 10_000, JSON, 400, ...),
    ("lone-surrogate", b'{"amount": 1500, "currency": "USD", "description": "\\ud800"}', JSON, 400, "description"),
    (
        "lone-low-surrogate",
        b'{"amount": 1500, "currency": "USD", "description": "a\\udfffb"}',
        JSON,
        400,
        "description",
    ),
    ("over-1-mib", VALID + b" " * MIB, JSON, 413, None),
]


@pytest.mark.parametrize(("body", "ctype", "status", "param"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_bad_charge_body_is_4xx_and_changes_nothing(api, body, ctype, status, param):
    await api.charge()
    headers = {"Content-Type": ctype} if ctype else {}
    response = await api.client.post("/v1/payments/charge", content=body, headers=headers)
    api.error(response, status, param=param)
    assert await api.total() == 1


@pytest.mark.parametrize(("body", "ctype", "status", "param"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_bad_refund_body_is_4xx_and_refunds_nothing(api, body, ctype, status, param):
    charge = await api.charge()
    # Point the body at a real charge where it has one, so that a lenient parser would refund it.
    body = body.replace(b'"amount": 1500, "currency": "USD"', b'"charge_id": "' + charge["id"].encode() + b'"')
    headers = {"Content-Type": ctype} if ctype else {}
    response = await api.client.post("/v1/payments/refund", content=body, headers=headers)
    assert 400 <= response.status_code < 500
    api.error(response, response.status_code)
    assert (await api.get(charge["id"]))["amount_refunded"] == 0


async def test_body_of_exactly_1_mib_is_accepted(api):
    body = VALID + b" " * (MIB - len(VALID))
    response = await api.client.post("/v1/payments/charge", content=body, headers={"Content-Type": JSON})
    assert response.status_code == 200, response.text


async def test_streamed_body_over_1_mib_without_length_is_413(api):
    async def chunks():
        yield VALID
        for _ in range(17):
            yield b" " * 65536

    response = await api.client.post("/v1/payments/charge", content=chunks(), headers={"Content-Type": JSON})
    assert "content-length" not in response.request.headers
    api.error(response, 413)
    assert await api.total() == 0


async def test_charset_utf8_is_accepted(api):
    headers = {"Content-Type": "application/json; charset=utf-8"}
    response = await api.client.post("/v1/payments/charge", content=VALID, headers=headers)
    assert response.status_code == 200, response.text


async def test_paired_surrogate_escape_is_accepted(api):
    body = b'{"amount": 1500, "currency": "USD", "description": "\\ud83d\\ude00"}'
    response = await api.client.post("/v1/payments/charge", content=body, headers={"Content-Type": JSON})
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "\U0001f600"
