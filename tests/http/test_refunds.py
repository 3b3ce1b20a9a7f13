"""POST /refund: full and partial refunds, and the money rules that bound them.

Refunds of declined and pending charges: test_declines.py and test_pending.py.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.anyio

REFUND_ID = re.compile(r"rf_[A-Za-z0-9]{24}")


async def test_refund_shape(api):
    charge = await api.charge(amount=500)
    response = await api.refund(charge["id"], amount=200, reason="requested_by_customer", metadata={"t": "1"})
    assert response.status_code == 200, response.text
    refund = response.json()
    assert REFUND_ID.fullmatch(refund["id"])
    assert refund["charge_id"] == charge["id"]
    assert refund["amount"] == 200
    assert refund["status"] == "succeeded"
    assert refund["reason"] == "requested_by_customer"
    assert refund["metadata"] == {"t": "1"}
    assert refund["created_at"].endswith("Z")


async def test_omitted_amount_refunds_everything(api):
    charge = await api.charge(amount=500)
    response = await api.refund(charge["id"])
    assert response.status_code == 200, response.text
    assert response.json()["amount"] == 500
    after = await api.get(charge["id"])
    assert (after["amount_refunded"], after["refunded"]) == (500, True)


async def test_partial_refund_updates_the_charge(api):
    charge = await api.charge(amount=500)
    assert (await api.refund(charge["id"], amount=200)).status_code == 200
    after = await api.get(charge["id"])
    assert (after["amount_refunded"], after["refunded"]) == (200, False)


async def test_omitted_amount_refunds_the_remainder(api):
    charge = await api.charge(amount=500)
    await api.refund(charge["id"], amount=200)
    response = await api.refund(charge["id"])
    assert response.status_code == 200, response.text
    assert response.json()["amount"] == 300
    after = await api.get(charge["id"])
    assert (after["amount_refunded"], after["refunded"]) == (500, True)


async def test_partial_refunds_can_add_up_to_the_whole(api):
    charge = await api.charge(amount=300)
    for _ in range(3):
        assert (await api.refund(charge["id"], amount=100)).status_code == 200
    assert (await api.get(charge["id"]))["refunded"] is True


async def test_refund_beyond_what_remains_is_400(api):
    charge = await api.charge(amount=500)
    await api.refund(charge["id"], amount=200)
    api.error(await api.refund(charge["id"], amount=301), 400, param="amount")
    assert (await api.get(charge["id"]))["amount_refunded"] == 200


async def test_refund_of_fully_refunded_charge_is_400(api):
    charge = await api.charge(amount=500)
    await api.refund(charge["id"])
    api.error(await api.refund(charge["id"]), 400, param="charge_id")
    api.error(await api.refund(charge["id"], amount=1), 400)
    after = await api.get(charge["id"])
    assert after["amount_refunded"] == 500


async def test_missing_charge_id_is_400(api, client):
    response = await client.post("/v1/payments/refund", json={"amount": 1})
    api.error(response, 400, code="parameter_missing", param="charge_id")


async def test_unknown_charge_id_is_404(api):
    api.error(await api.refund("ch_000000000000000000000000"), 404, code="resource_missing", param="charge_id")


@pytest.mark.parametrize("amount", [0, -1, -500, 1.5, "100", True])
async def test_refund_amount_must_be_a_positive_integer(api, amount):
    charge = await api.charge(amount=500)
    api.error(await api.refund(charge["id"], amount=amount), 400, param="amount")
    assert (await api.get(charge["id"]))["amount_refunded"] == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("reason", "r" * 501), ("metadata", {"k": 1}), ("metadata", {"k" * 41: "v"}), ("extra", "x")],
)
async def test_refund_body_is_validated(api, field, value):
    charge = await api.charge(amount=500)
    error = api.error(await api.refund(charge["id"], **{field: value}), 400)
    assert error["param"].startswith(field)
    assert (await api.get(charge["id"]))["amount_refunded"] == 0
