"""Tenants: the token (or a JWT's `sub`) names a tenant, and no tenant sees another's data."""

from __future__ import annotations

import uuid

import pytest
from helpers import jwt

pytestmark = pytest.mark.anyio


async def test_other_tenant_gets_404_for_my_charge(api, make_client):
    mine = await api.charge()
    other = make_client(f"other-{uuid.uuid4().hex}")
    api.error(await other.get(f"/v1/payments/charge/{mine['id']}"), 404, param="id")


async def test_other_tenant_lists_only_its_own(api, make_client):
    await api.charge()
    other = make_client(f"other-{uuid.uuid4().hex}")
    response = await other.post("/v1/payments/charge", json={"amount": 42, "currency": "USD"})
    theirs = response.json()["id"]
    page = (await other.get("/v1/payments/charges")).json()
    assert [c["id"] for c in page["data"]] == [theirs]
    assert page["total"] == 1
    assert (await api.total()) == 1


async def test_other_tenant_cannot_refund_my_charge(api, make_client):
    mine = await api.charge()
    other = make_client(f"other-{uuid.uuid4().hex}")
    api.error(await other.post("/v1/payments/refund", json={"charge_id": mine["id"]}), 404)
    assert (await api.get(mine["id"]))["amount_refunded"] == 0


async def test_refreshed_jwt_keeps_the_tenant(api, make_client):
    sub = f"alice-{uuid.uuid4().hex}"
    first = make_client(jwt({"sub": sub, "iat": 1}, secret="one"))
    refreshed = make_client(jwt({"sub": sub, "iat": 2, "exp": 4_102_444_800}, secret="two"))
    made = (await first.post("/v1/payments/charge", json={"amount": 1500, "currency": "USD"})).json()
    response = await refreshed.get(f"/v1/payments/charge/{made['id']}")
    assert response.status_code == 200, response.text
    assert (await refreshed.get("/v1/payments/charges")).json()["total"] == 1


async def test_jwts_with_different_subs_are_different_tenants(api, make_client):
    alice = make_client(jwt({"sub": f"alice-{uuid.uuid4().hex}"}))
    bob = make_client(jwt({"sub": f"bob-{uuid.uuid4().hex}"}))
    made = (await alice.post("/v1/payments/charge", json={"amount": 1500, "currency": "USD"})).json()
    api.error(await bob.get(f"/v1/payments/charge/{made['id']}"), 404)


async def test_jwt_without_sub_is_its_own_tenant(api, make_client):
    first = make_client(jwt({"name": "no sub"}, secret="one"))
    second = make_client(jwt({"name": "no sub"}, secret="two"))
    made = (await first.post("/v1/payments/charge", json={"amount": 1500, "currency": "USD"})).json()
    assert (await first.get(f"/v1/payments/charge/{made['id']}")).status_code == 200
    api.error(await second.get(f"/v1/payments/charge/{made['id']}"), 404)


async def test_jwt_sub_is_not_the_same_tenant_as_a_plain_token_of_that_name(api, make_client):
    sub = f"alice-{uuid.uuid4().hex}"
    holder = make_client(jwt({"sub": sub}))
    made = (await holder.post("/v1/payments/charge", json={"amount": 1500, "currency": "USD"})).json()
    api.error(await make_client(sub).get(f"/v1/payments/charge/{made['id']}"), 404)


async def test_plain_token_cannot_reach_a_jwt_tenant(api, make_client):
    sub = f"alice-{uuid.uuid4().hex}"
    holder = make_client(jwt({"sub": sub}))
    made = (await holder.post("/v1/payments/charge", json={"amount": 1500, "currency": "USD"})).json()
    api.error(await make_client(f"jwt:{sub}").get(f"/v1/payments/charge/{made['id']}"), 404)


async def test_tenant_with_secret_verified_jwt(api, make_client, jwt_app):
    sub = f"alice-{uuid.uuid4().hex}"
    first = make_client(jwt({"sub": sub}, secret="s"), target=jwt_app)
    again = make_client(jwt({"sub": sub, "iat": 5}, secret="s"), target=jwt_app)
    made = (await first.post("/v1/payments/charge", json={"amount": 1500, "currency": "USD"})).json()
    assert (await again.get(f"/v1/payments/charge/{made['id']}")).status_code == 200
