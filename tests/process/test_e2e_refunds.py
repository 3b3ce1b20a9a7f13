"""Default pack, 100062 `refund_failed`: the charge succeeds, every refund of it fails."""

from __future__ import annotations

import pytest


def test_refund_failed_charge_itself_succeeds(tenant):
    response = tenant.charge(100062)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"


@pytest.mark.parametrize("amount", [None, 1, 100062])
def test_every_refund_of_the_charge_fails(tenant, amount):
    charge_id = tenant.charge(100062).json()["id"]
    fields = {} if amount is None else {"amount": amount}

    response = tenant.refund(charge_id, **fields)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "refund_failed"
    assert response.headers["Sandbox-Scenario"] == "refund_failed"


def test_failed_refunds_leave_the_charge_unrefunded(tenant):
    charge_id = tenant.charge(100062).json()["id"]

    for _ in range(3):
        assert tenant.refund(charge_id, amount=100).status_code == 400

    stored = tenant.get(charge_id)
    assert stored["amount_refunded"] == 0
    assert stored["refunded"] is False
    assert stored["status"] == "succeeded"


def test_refund_of_an_ordinary_charge_succeeds(tenant):
    charge_id = tenant.charge(100061).json()["id"]

    response = tenant.refund(charge_id, amount=61)

    assert response.status_code == 200, response.text
    assert "Sandbox-Scenario" not in response.headers
    assert tenant.get(charge_id)["amount_refunded"] == 61
