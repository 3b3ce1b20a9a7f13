"""Idempotency-Key, Stripe's semantics: replay, mismatch, per tenant, validation, expiry.

Concurrent requests with one key, answered by several worker processes, are in
tests/process/test_e2e_idempotency.py.
"""

from __future__ import annotations

from uuid import uuid4

import pytest

pytestmark = pytest.mark.anyio

DAY = 24 * 3600


@pytest.fixture
def key() -> str:
    return f"k-{uuid4()}"


async def test_same_key_same_body_replays_the_response(api, key):
    first = await api.post_charge(1500, key=key, description="once")

    again = await api.post_charge(1500, key=key, description="once")

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Content-Type"] == first.headers["Content-Type"]


async def test_same_body_with_fields_in_another_order_replays(api, key):
    async def post(raw: str):
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
        return await api.client.post("/v1/payments/charge", content=raw, headers=headers)

    first = await post('{"amount": 1500, "currency": "USD", "metadata": {"a": "1", "b": "2"}}')
    again = await post('{"metadata": {"b": "2", "a": "1"}, "currency": "USD", "amount": 1500}')

    assert first.status_code == 200, first.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


async def test_replay_creates_nothing_new(api, key):
    first = await api.post_charge(1500, key=key)
    for _ in range(3):
        await api.post_charge(1500, key=key)

    assert await api.ids() == [first.json()["id"]]


async def test_replay_of_a_decline_keeps_status_body_and_scenario_header(api, key):
    first = await api.post_charge(100005, key=key)

    again = await api.post_charge(100005, key=key)

    assert again.status_code == first.status_code == 400
    assert again.json() == first.json()
    assert again.headers["Sandbox-Scenario"] == first.headers["Sandbox-Scenario"] == "generic_decline"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await api.total() == 1


async def test_same_key_different_body_is_an_idempotency_error(api, key):
    first = await api.post_charge(1500, key=key)

    response = await api.post_charge(1600, key=key)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_error"
    assert await api.ids() == [first.json()["id"]]


async def test_keys_are_per_tenant(api, other_api, key):
    mine = await api.post_charge(1500, key=key)

    theirs = await other_api.post_charge(1600, key=key)

    assert theirs.status_code == 200, theirs.text
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]
    assert await other_api.ids() == [theirs.json()["id"]]
    assert await api.ids() == [mine.json()["id"]]


async def test_request_rejected_by_validation_is_not_saved(api, key):
    rejected = await api.post_charge(1500, "usd", key=key)
    assert rejected.status_code == 400

    fixed = await api.post_charge(1500, key=key)

    assert fixed.status_code == 200, fixed.text
    assert "Idempotent-Replayed" not in fixed.headers
    assert await api.ids() == [fixed.json()["id"]]


async def test_request_naming_an_unknown_scenario_is_not_saved(api, key):
    rejected = await api.post_charge(1500, key=key, metadata={"sandbox_scenario": "no_such_rule"})
    assert rejected.status_code == 400

    fixed = await api.post_charge(1500, key=key)

    assert fixed.status_code == 200, fixed.text
    assert "Idempotent-Replayed" not in fixed.headers


async def test_rate_limited_request_is_not_saved_under_its_key(api, key):
    assert (await api.post_charge(100429, key=key)).status_code == 429

    retry = await api.post_charge(1500, key=key)

    assert retry.status_code == 200, retry.text
    assert "Idempotent-Replayed" not in retry.headers


async def test_refund_with_the_same_key_refunds_once(api, key):
    charge_id = (await api.charge())["id"]
    first = await api.refund(charge_id, key=key, amount=500)

    again = await api.refund(charge_id, key=key, amount=500)

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await api.get(charge_id))["amount_refunded"] == 500


async def test_key_is_still_bound_to_its_body_before_24_hours(api, key):
    await api.post_charge(1500, key=key)
    await api.advance(DAY - 600)

    response = await api.post_charge(1600, key=key)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_error"


async def test_key_expires_after_24_hours_of_sandbox_time(api, key):
    first = await api.post_charge(1500, key=key)
    await api.advance(DAY + 1)

    response = await api.post_charge(1600, key=key)

    assert response.status_code == 200, response.text
    assert "Idempotent-Replayed" not in response.headers
    assert response.json()["id"] != first.json()["id"]
    assert await api.total() == 2


async def test_expiry_follows_each_tenants_own_clock(api, other_api, key):
    await api.post_charge(1500, key=key)
    await other_api.post_charge(1500, key=key)
    await api.advance(DAY + 1)

    assert (await api.post_charge(1600, key=key)).status_code == 200
    assert (await other_api.post_charge(1600, key=key)).json()["error"]["code"] == "idempotency_error"
