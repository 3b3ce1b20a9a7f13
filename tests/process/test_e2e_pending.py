"""Default pack, 100202 and 100203: pending charges that settle after 60 s of sandbox time.

The sandbox clock is moved with POST /__sandbox/clock/advance (see also test_e2e_clock.py).
"""

from __future__ import annotations


def test_pending_then_succeeded_answers_pending(tenant):
    response = tenant.charge(100202)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"
    assert response.headers["Sandbox-Scenario"] == "pending_then_succeeded"
    assert tenant.ids("pending") == [response.json()["id"]]


def test_pending_charge_is_still_pending_after_59_seconds(tenant):
    charge_id = tenant.charge(100202).json()["id"]

    tenant.advance(59)

    assert tenant.get(charge_id)["status"] == "pending"
    assert tenant.ids("pending") == [charge_id]


def test_pending_then_succeeded_settles_after_60_seconds(tenant):
    charge_id = tenant.charge(100202).json()["id"]

    tenant.advance(61)

    assert tenant.get(charge_id)["status"] == "succeeded"
    assert tenant.ids("pending") == []
    assert tenant.ids("succeeded") == [charge_id]


def test_clock_advances_add_up(tenant):
    charge_id = tenant.charge(100202).json()["id"]

    tenant.advance(30)
    assert tenant.get(charge_id)["status"] == "pending"
    tenant.advance(31)

    assert tenant.get(charge_id)["status"] == "succeeded"


def test_pending_charge_cannot_be_refunded_until_it_settles(tenant):
    charge_id = tenant.charge(100202).json()["id"]

    assert tenant.refund(charge_id).status_code == 400
    tenant.advance(61)
    refund = tenant.refund(charge_id)

    assert refund.status_code == 200, refund.text
    assert tenant.get(charge_id)["amount_refunded"] == 100202


def test_pending_then_failed_answers_pending(tenant):
    response = tenant.charge(100203)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"
    assert response.headers["Sandbox-Scenario"] == "pending_then_failed"


def test_pending_then_failed_settles_failed_for_insufficient_funds(tenant):
    charge_id = tenant.charge(100203).json()["id"]
    tenant.advance(59)
    assert tenant.get(charge_id)["status"] == "pending"

    tenant.advance(2)

    settled = tenant.get(charge_id)
    assert settled["status"] == "failed"
    assert settled["failure_code"] == "insufficient_funds"
    assert tenant.ids("failed") == [charge_id]
    assert tenant.ids("pending") == []
