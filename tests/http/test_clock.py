"""The sandbox clock: per tenant, moved by POST /__sandbox/clock/advance with the tenant's token."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

pytestmark = pytest.mark.anyio

TEN_DAYS = timedelta(days=10)


def created_at(charge: dict) -> datetime:
    return datetime.fromisoformat(charge["created_at"].replace("Z", "+00:00"))


async def test_advancing_one_tenants_clock_does_not_settle_another_tenants_charge(api, other_api):
    mine = (await api.charge(amount=100202))["id"]
    theirs = (await other_api.charge(amount=100202))["id"]

    await api.advance(61)

    assert (await api.get(mine))["status"] == "succeeded"
    assert (await other_api.get(theirs))["status"] == "pending"
    assert await other_api.ids("pending") == [theirs]


async def test_advancing_the_clock_needs_the_tenants_bearer_token(api, make_client):
    charge_id = (await api.charge(amount=100202))["id"]

    response = await make_client().post("/__sandbox/clock/advance", json={"seconds": 61})

    assert response.status_code == 401
    assert (await api.get(charge_id))["status"] == "pending"


async def test_charges_are_stamped_with_the_tenants_sandbox_time(api, other_api):
    before = created_at(await api.charge())

    await api.advance(TEN_DAYS.total_seconds())
    after = created_at(await api.charge())
    elsewhere = created_at(await other_api.charge())

    assert after - before >= TEN_DAYS - timedelta(seconds=1)  # created_at has whole seconds
    assert after - elsewhere >= TEN_DAYS - timedelta(seconds=1)
