"""POST /charge and GET /charge/{id}: the charge's shape, and reading it back."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.anyio

CHARGE_ID = re.compile(r"ch_[A-Za-z0-9]{24}")


async def test_create_returns_the_charge(api):
    charge = await api.charge(amount=2500, currency="EUR", description="Order #1", metadata={"order": "1"})
    assert CHARGE_ID.fullmatch(charge["id"])
    assert charge["amount"] == 2500
    assert charge["currency"] == "EUR"
    assert charge["description"] == "Order #1"
    assert charge["metadata"] == {"order": "1"}
    assert charge["status"] == "succeeded"
    assert charge["amount_refunded"] == 0
    assert charge["refunded"] is False


async def test_created_at_is_rfc3339_utc_now(api):
    before = datetime.now(UTC).replace(microsecond=0)
    charge = await api.charge()
    assert charge["created_at"].endswith("Z")
    created = datetime.fromisoformat(charge["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=5) <= created <= datetime.now(UTC) + timedelta(seconds=5)


async def test_optional_fields_default_to_empty(api):
    charge = await api.charge()
    assert charge["description"] is None
    assert charge["metadata"] == {}


async def test_each_charge_gets_a_new_id(api):
    ids = {(await api.charge())["id"] for _ in range(5)}
    assert len(ids) == 5


async def test_get_returns_the_created_charge(api):
    created = await api.charge(amount=777, currency="JPY", description="d", metadata={"k": "v"})
    assert await api.get(created["id"]) == created


async def test_get_unknown_id_is_404_naming_id(api, client):
    response = await client.get("/v1/payments/charge/ch_000000000000000000000000")
    api.error(response, 404, code="resource_missing", param="id")


async def test_get_overlong_id_is_400_naming_id(api, client):
    response = await client.get("/v1/payments/charge/" + "c" * 256)
    api.error(response, 400, param="id")


async def test_decline_stores_a_failed_charge(api, client):
    response = await client.post("/v1/payments/charge", json={"amount": 100005, "currency": "USD"})
    error = api.error(response, 400, code="card_declined")
    stored = await api.get(error["charge"])
    assert stored["status"] == "failed"
    assert stored["failure_code"] == "generic_decline"
