"""Idempotency-Key, Stripe's semantics: replay, mismatch, per tenant, validation, expiry, concurrency."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import httpx
import pytest

DAY = 24 * 3600


@pytest.fixture
def key() -> str:
    return f"k-{uuid4()}"


def test_same_key_same_body_replays_the_response(tenant, key):
    first = tenant.charge(1500, key=key, description="once")

    again = tenant.charge(1500, key=key, description="once")

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Content-Type"] == first.headers["Content-Type"]


def test_same_body_with_fields_in_another_order_replays(tenant, key):
    def post(raw: str):
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
        return tenant.http.post("/v1/payments/charge", content=raw, headers=headers)

    first = post('{"amount": 1500, "currency": "USD", "metadata": {"a": "1", "b": "2"}}')
    again = post('{"metadata": {"b": "2", "a": "1"}, "currency": "USD", "amount": 1500}')

    assert first.status_code == 200, first.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


def test_replay_creates_nothing_new(tenant, key):
    first = tenant.charge(1500, key=key)
    for _ in range(3):
        tenant.charge(1500, key=key)

    assert tenant.ids() == [first.json()["id"]]


def test_replay_of_a_decline_keeps_status_body_and_scenario_header(tenant, key):
    first = tenant.charge(100005, key=key)

    again = tenant.charge(100005, key=key)

    assert again.status_code == first.status_code == 400
    assert again.json() == first.json()
    assert again.headers["Sandbox-Scenario"] == first.headers["Sandbox-Scenario"] == "generic_decline"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert tenant.charges()["total"] == 1


def test_same_key_different_body_is_an_idempotency_error(tenant, key):
    first = tenant.charge(1500, key=key)

    response = tenant.charge(1600, key=key)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_error"
    assert tenant.ids() == [first.json()["id"]]


def test_keys_are_per_tenant(tenant, other_tenant, key):
    mine = tenant.charge(1500, key=key)

    theirs = other_tenant.charge(1600, key=key)

    assert theirs.status_code == 200, theirs.text
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]
    assert other_tenant.ids() == [theirs.json()["id"]]
    assert tenant.ids() == [mine.json()["id"]]


def test_request_rejected_by_validation_is_not_saved(tenant, key):
    rejected = tenant.http.post(
        "/v1/payments/charge", json={"amount": 1500, "currency": "usd"}, headers={"Idempotency-Key": key}
    )
    assert rejected.status_code == 400

    fixed = tenant.charge(1500, key=key)

    assert fixed.status_code == 200, fixed.text
    assert "Idempotent-Replayed" not in fixed.headers
    assert tenant.ids() == [fixed.json()["id"]]


def test_request_naming_an_unknown_scenario_is_not_saved(tenant, key):
    rejected = tenant.charge(1500, key=key, metadata={"sandbox_scenario": "no_such_rule"})
    assert rejected.status_code == 400

    fixed = tenant.charge(1500, key=key)

    assert fixed.status_code == 200, fixed.text
    assert "Idempotent-Replayed" not in fixed.headers


def test_rate_limited_request_is_not_saved_under_its_key(tenant, key):
    assert tenant.charge(100429, key=key).status_code == 429

    retry = tenant.charge(1500, key=key)

    assert retry.status_code == 200, retry.text
    assert "Idempotent-Replayed" not in retry.headers


def test_refund_with_the_same_key_refunds_once(tenant, key):
    charge_id = tenant.charge(1500).json()["id"]
    first = tenant.refund(charge_id, key=key, amount=500)

    again = tenant.refund(charge_id, key=key, amount=500)

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert tenant.get(charge_id)["amount_refunded"] == 500


def test_key_is_still_bound_to_its_body_before_24_hours(tenant, key):
    tenant.charge(1500, key=key)
    tenant.advance(DAY - 600)

    response = tenant.charge(1600, key=key)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_error"


def test_key_expires_after_24_hours_of_sandbox_time(tenant, key):
    first = tenant.charge(1500, key=key)
    tenant.advance(DAY + 1)

    response = tenant.charge(1600, key=key)

    assert response.status_code == 200, response.text
    assert "Idempotent-Replayed" not in response.headers
    assert response.json()["id"] != first.json()["id"]
    assert tenant.charges()["total"] == 2


def test_expiry_follows_each_tenants_own_clock(tenant, other_tenant, key):
    tenant.charge(1500, key=key)
    other_tenant.charge(1500, key=key)
    tenant.advance(DAY + 1)

    assert tenant.charge(1600, key=key).status_code == 200
    assert other_tenant.charge(1600, key=key).json()["error"]["code"] == "idempotency_error"


def test_concurrent_requests_with_one_key_create_one_charge(tenant, key, sandbox_url):
    # 100408 is the scripted 3 s `slow` rule, so all five requests are in flight together.
    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=sandbox_url, headers=tenant.http.headers, timeout=30) as client:
            requests = [
                client.post(
                    "/v1/payments/charge",
                    json={"amount": 100408, "currency": "USD"},
                    headers={"Idempotency-Key": key},
                )
                for _ in range(5)
            ]
            return list(await asyncio.gather(*requests))

    responses = asyncio.run(fire())

    listed = tenant.charges()
    assert listed["total"] == 1
    charge_id = listed["data"][0]["id"]
    fresh = [r for r in responses if r.status_code == 200 and "Idempotent-Replayed" not in r.headers]
    assert len(fresh) == 1
    assert fresh[0].json()["id"] == charge_id
    for response in responses:
        if response is fresh[0]:
            continue
        if response.status_code == 409:
            assert response.json()["error"]["code"]
        else:
            assert response.status_code == 200
            assert response.headers["Idempotent-Replayed"] == "true"
            assert response.json()["id"] == charge_id
