"""Default pack, errors a client should retry: 100096, 100429, 100503 and 100504."""

from __future__ import annotations

from uuid import uuid4

import pytest

pytestmark = pytest.mark.anyio


async def test_processing_error_is_a_retryable_500(api):
    response = await api.post_charge(100096)

    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "processing_error"
    assert error["retryable"] is True
    assert response.headers["Sandbox-Scenario"] == "processing_error"


async def test_processing_error_stores_nothing(api):
    response = await api.post_charge(100096)

    assert "charge" not in response.json()["error"]
    assert await api.total() == 0


async def test_rate_limited_is_a_429_with_retry_after(api):
    response = await api.post_charge(100429)

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Sandbox-Scenario"] == "rate_limited"


async def test_rate_limited_stores_nothing(api):
    await api.post_charge(100429)

    assert await api.total() == 0


async def test_unavailable_once_first_attempt_is_a_503_storing_nothing(api):
    response = await api.post_charge(100503)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response.headers["Sandbox-Scenario"] == "unavailable_once"
    assert await api.total() == 0


async def test_unavailable_once_retry_without_key_succeeds(api):
    assert (await api.post_charge(100503, description="retry me")).status_code == 503

    retry = await api.post_charge(100503, description="retry me")

    assert retry.status_code == 200, retry.text
    assert retry.json()["status"] == "succeeded"
    assert retry.headers["Sandbox-Scenario"] == "unavailable_once"  # the rule that let it through
    assert await api.ids() == [retry.json()["id"]]


async def test_unavailable_once_is_not_saved_under_the_idempotency_key(api):
    key = f"k-{uuid4()}"
    first = await api.post_charge(100503, key=key)
    assert first.status_code == 503
    assert "Idempotent-Replayed" not in first.headers

    retry = await api.post_charge(100503, key=key)
    assert retry.status_code == 200, retry.text
    assert "Idempotent-Replayed" not in retry.headers

    third = await api.post_charge(100503, key=key)
    assert third.status_code == 200
    assert third.headers["Idempotent-Replayed"] == "true"
    assert third.json() == retry.json()
    assert await api.ids() == [retry.json()["id"]]


async def test_timeout_after_commit_answers_504(api):
    response = await api.post_charge(100504)

    assert response.status_code == 504
    assert response.json()["error"]["code"] == "gateway_timeout"
    assert response.headers["Sandbox-Scenario"] == "timeout_after_commit"


async def test_timeout_after_commit_stores_a_succeeded_charge(api):
    await api.post_charge(100504)

    listed = await api.list()
    assert listed["total"] == 1
    charge = listed["data"][0]
    assert charge["status"] == "succeeded"
    assert charge["amount"] == 100504
    assert (await api.get(charge["id"]))["status"] == "succeeded"


async def test_timeout_after_commit_retry_with_same_key_replays_the_charge(api):
    key = f"k-{uuid4()}"
    assert (await api.post_charge(100504, key=key)).status_code == 504
    [committed] = await api.ids()

    retry = await api.post_charge(100504, key=key)

    assert retry.status_code == 200, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == committed
    assert retry.json()["status"] == "succeeded"
    assert await api.ids() == [committed]


async def test_timeout_after_commit_retry_without_key_charges_twice(api):
    assert (await api.post_charge(100504)).status_code == 504
    await api.post_charge(100504)

    listed = await api.list(status="succeeded")
    assert listed["total"] == 2
    assert len({charge["id"] for charge in listed["data"]}) == 2
