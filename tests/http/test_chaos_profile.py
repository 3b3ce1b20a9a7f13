"""POST /__sandbox/chaos: a built-in chaos profile for one tenant, after every other rule, until
the tenant is reset; refused in the envelope for another name or without a tenant."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def _names(client) -> list[str]:
    return [rule["name"] for rule in (await client.get("/__sandbox/scenarios")).json()["rules"]]


async def test_a_profile_goes_after_the_files_rules_and_the_tenants_own_for_that_tenant_only(client, make_client):
    await client.post(
        "/__sandbox/scenarios",
        content=b"rules:\n  - {name: own, applies_to: charge, when: {amount: 4242}, then: {delay_ms: 1}}\n",
        headers={"Content-Type": "application/yaml"},
    )
    loaded = await client.post("/__sandbox/chaos", json={"profile": "flaky-network"})
    later = await client.post(
        "/__sandbox/scenarios",
        content=b"rules:\n  - {name: later, applies_to: charge, when: {amount: 4243}, then: {delay_ms: 1}}\n",
        headers={"Content-Type": "application/yaml"},
    )

    assert loaded.status_code == 200
    assert later.status_code == 200
    chaos = [rule["name"] for rule in loaded.json()["rules"]]
    assert chaos
    assert all(name.startswith("chaos_") for name in chaos)
    names = await _names(client)
    assert names[-len(chaos) :] == chaos  # after the built-in pack, the uploads, and a later upload
    assert {"own", "later", "generic_decline"} <= set(names[: -len(chaos)])
    assert not set(chaos) & set(await _names(make_client("someone-else")))


async def test_a_reset_drops_the_profile(client):
    await client.post("/__sandbox/chaos", json={"profile": "bad-day"})
    await client.post("/__sandbox/reset")

    assert not [name for name in await _names(client) if name.startswith("chaos_")]


@pytest.mark.parametrize("profile", ["sunny-day", 7, None])
async def test_another_name_is_a_400_naming_the_profiles(client, profile):
    response = await client.post("/__sandbox/chaos", json={"profile": profile})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "parameter_invalid"
    assert error["param"] == "profile"
    assert "bad-day, flaky-network" in error["message"]


async def test_without_a_tenant_it_is_refused(make_client):
    response = await make_client(None).post("/__sandbox/chaos", json={"profile": "bad-day"})

    assert response.status_code == 401
