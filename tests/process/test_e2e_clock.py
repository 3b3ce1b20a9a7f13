"""The sandbox clock: per tenant, moved by POST /__sandbox/clock/advance with the tenant's token."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

TEN_DAYS = timedelta(days=10)


def created_at(charge: dict) -> datetime:
    return datetime.fromisoformat(charge["created_at"].replace("Z", "+00:00"))


def test_advancing_one_tenants_clock_does_not_settle_another_tenants_charge(tenant, other_tenant):
    mine = tenant.charge(100202).json()["id"]
    theirs = other_tenant.charge(100202).json()["id"]

    tenant.advance(61)

    assert tenant.get(mine)["status"] == "succeeded"
    assert other_tenant.get(theirs)["status"] == "pending"
    assert other_tenant.ids("pending") == [theirs]


def test_advancing_the_clock_needs_the_tenants_bearer_token(tenant, sandbox_url):
    charge_id = tenant.charge(100202).json()["id"]

    response = httpx.post(f"{sandbox_url}/__sandbox/clock/advance", json={"seconds": 61})

    assert response.status_code == 401
    assert tenant.get(charge_id)["status"] == "pending"


def test_charges_are_stamped_with_the_tenants_sandbox_time(tenant, other_tenant):
    before = created_at(tenant.charge(1500).json())

    tenant.advance(TEN_DAYS.total_seconds())
    after = created_at(tenant.charge(1500).json())
    elsewhere = created_at(other_tenant.charge(1500).json())

    assert after - before >= TEN_DAYS - timedelta(seconds=1)  # created_at has whole seconds
    assert after - elsewhere >= TEN_DAYS - timedelta(seconds=1)
