"""Default pack, 100202 and 100203: pending charges that settle after 60 s of sandbox time.

The sandbox clock is moved with POST /__sandbox/clock/advance (see also test_clock.py).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def test_pending_then_succeeded_answers_pending(api):
    response = await api.post_charge(100202)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"
    assert response.headers["Sandbox-Scenario"] == "pending_then_succeeded"
    assert await api.ids("pending") == [response.json()["id"]]


async def test_pending_charge_is_still_pending_after_59_seconds(api):
    charge_id = (await api.charge(amount=100202))["id"]

    await api.advance(59)

    assert (await api.get(charge_id))["status"] == "pending"
    assert await api.ids("pending") == [charge_id]


async def test_pending_then_succeeded_settles_after_60_seconds(api):
    charge_id = (await api.charge(amount=100202))["id"]

    await api.advance(61)

    assert (await api.get(charge_id))["status"] == "succeeded"
    assert await api.ids("pending") == []
    assert await api.ids("succeeded") == [charge_id]


async def test_clock_advances_add_up(api):
    charge_id = (await api.charge(amount=100202))["id"]

    await api.advance(30)
    assert (await api.get(charge_id))["status"] == "pending"
    await api.advance(31)

    assert (await api.get(charge_id))["status"] == "succeeded"


async def test_pending_charge_cannot_be_refunded_until_it_settles(api):
    charge_id = (await api.charge(amount=100202))["id"]

    api.error(await api.refund(charge_id), 400, param="charge_id")
    await api.advance(61)
    refund = await api.refund(charge_id)

    assert refund.status_code == 200, refund.text
    assert (await api.get(charge_id))["amount_refunded"] == 100202


async def test_pending_then_failed_answers_pending(api):
    response = await api.post_charge(100203)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"
    assert response.headers["Sandbox-Scenario"] == "pending_then_failed"


async def test_pending_then_failed_settles_failed_for_insufficient_funds(api):
    charge_id = (await api.charge(amount=100203))["id"]
    await api.advance(59)
    assert (await api.get(charge_id))["status"] == "pending"

    await api.advance(2)

    settled = await api.get(charge_id)
    assert settled["status"] == "failed"
    assert settled["failure_code"] == "insufficient_funds"
    assert await api.ids("failed") == [charge_id]
    assert await api.ids("pending") == []
