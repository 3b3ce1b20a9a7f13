"""The contract check itself: it must reject what the contract does not describe, or it proves nothing."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.anyio

GOOD_CHARGE = {
    "id": "ch_" + "a" * 24,
    "amount": 1500,
    "currency": "USD",
    "description": None,
    "metadata": {},
    "status": "succeeded",
    "amount_refunded": 0,
    "refunded": False,
    "failure_code": None,
    "created_at": "2026-03-12T10:00:00Z",
}


def check(contract, method, path, status, body, content_type="application/json"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    contract.check(method, path, status, content_type, raw)


def test_accepts_a_documented_charge(contract):
    check(contract, "POST", "/v1/payments/charge", 200, GOOD_CHARGE)


def test_rejects_a_charge_without_id(contract):
    body = {k: v for k, v in GOOD_CHARGE.items() if k != "id"}
    with pytest.raises(AssertionError, match="'id' is a required property"):
        check(contract, "POST", "/v1/payments/charge", 200, body)


def test_rejects_a_wrongly_typed_field(contract):
    with pytest.raises(AssertionError, match="amount"):
        check(contract, "GET", "/v1/payments/charge/ch_x", 200, {**GOOD_CHARGE, "amount": "1500"})


def test_rejects_a_bad_date_time(contract):
    with pytest.raises(AssertionError, match="date-time"):
        check(contract, "GET", "/v1/payments/charge/ch_x", 200, {**GOOD_CHARGE, "created_at": "yesterday"})


def test_rejects_null_where_not_nullable(contract):
    with pytest.raises(AssertionError, match="status"):
        check(contract, "POST", "/v1/payments/charge", 200, {**GOOD_CHARGE, "status": None})


def test_accepts_null_where_nullable(contract):
    check(contract, "POST", "/v1/payments/charge", 200, {**GOOD_CHARGE, "failure_code": None, "description": None})


def test_rejects_an_undocumented_status(contract):
    with pytest.raises(AssertionError, match="not documented"):
        check(contract, "GET", "/v1/payments/charges", 418, {"error": {"code": "teapot", "message": "no"}})


def test_rejects_an_error_outside_the_envelope(contract):
    with pytest.raises(AssertionError, match="error"):
        check(contract, "POST", "/v1/payments/refund", 400, {"message": "bad"})


def test_rejects_a_body_that_is_not_json(contract):
    with pytest.raises(AssertionError, match="not JSON"):
        check(contract, "POST", "/v1/payments/refund", 400, b"<html>oops</html>")


def test_rejects_a_non_json_content_type(contract):
    with pytest.raises(AssertionError, match="content-type"):
        check(contract, "POST", "/v1/payments/charge", 200, GOOD_CHARGE, "text/html")


def test_unknown_route_must_be_404(contract):
    with pytest.raises(AssertionError, match="404"):
        check(contract, "GET", "/v1/payments/nope", 200, {"ok": True})


def test_wrong_method_must_be_405(contract):
    with pytest.raises(AssertionError, match="405"):
        check(contract, "DELETE", "/v1/payments/charge", 404, {"error": {"code": "x", "message": "y"}})


async def test_every_api_response_goes_through_the_check(contract, client):
    before = contract.checked
    await client.get("/v1/payments/charges")
    await client.get("/v1/payments/nope")
    assert contract.checked == before + 2
