"""Default pack, 100062 `refund_failed`: the charge succeeds, every refund of it fails."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def test_refund_failed_charge_itself_succeeds(api):
    response = await api.post_charge(100062)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"


@pytest.mark.parametrize("amount", [None, 1, 100062])
async def test_every_refund_of_the_charge_fails(api, amount):
    charge_id = (await api.charge(amount=100062))["id"]
    fields = {} if amount is None else {"amount": amount}

    response = await api.refund(charge_id, **fields)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "refund_failed"
    assert response.headers["Sandbox-Scenario"] == "refund_failed"


async def test_failed_refunds_leave_the_charge_unrefunded(api):
    charge_id = (await api.charge(amount=100062))["id"]

    for _ in range(3):
        assert (await api.refund(charge_id, amount=100)).status_code == 400

    stored = await api.get(charge_id)
    assert stored["amount_refunded"] == 0
    assert stored["refunded"] is False
    assert stored["status"] == "succeeded"


async def test_refund_of_an_ordinary_charge_succeeds(api):
    charge_id = (await api.charge(amount=100061))["id"]

    response = await api.refund(charge_id, amount=61)

    assert response.status_code == 200, response.text
    assert "Sandbox-Scenario" not in response.headers
    assert (await api.get(charge_id))["amount_refunded"] == 61
