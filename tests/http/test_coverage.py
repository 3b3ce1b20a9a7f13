"""GET /__sandbox/coverage: the scenario rules, error codes and faults a client has met, and the
ones it never has, as its calls meet them (the tenant's, or every tenant's together)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio
FAULTS = ["connection_reset", "empty_response", "malformed_json", "slow_body", "truncated_body"]


async def coverage_of(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/__sandbox/coverage")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_new_tenant_has_met_nothing_and_misses_every_rule_error_code_and_fault(api, client):
    rules = await api.scenarios()

    coverage = await coverage_of(client)

    assert coverage["scenarios"] == {"met": [], "missing": sorted({r["name"] for r in rules})}
    rule_codes = {r["then"]["error"]["code"] for r in rules if "error" in r["then"]}
    assert rule_codes | {"resource_missing", "idempotency_error", "amount_too_large"} <= set(
        coverage["error_codes"]["missing"]
    )
    assert coverage["error_codes"]["met"] == []
    assert coverage["error_codes"]["missing"] == sorted(coverage["error_codes"]["missing"])
    assert coverage["faults"] == {"met": [], "missing": FAULTS}


async def test_rules_and_error_codes_move_from_missing_to_met_as_the_client_meets_them(api, client):
    before = await coverage_of(client)
    await api.post_charge(100005)  # generic_decline: card_declined
    await api.post_charge(100429)  # rate_limited
    api.error(await api.refund("ch_missing"), 404, code="resource_missing")
    await api.charge()  # no rule, no error: nothing new

    after = await coverage_of(client)

    met = ["generic_decline", "rate_limited"]
    assert after["scenarios"]["met"] == met
    assert after["scenarios"]["missing"] == [n for n in before["scenarios"]["missing"] if n not in met]
    codes = ["card_declined", "rate_limited", "resource_missing"]
    assert after["error_codes"]["met"] == codes
    assert after["error_codes"]["missing"] == [c for c in before["error_codes"]["missing"] if c not in codes]
    assert after["faults"] == before["faults"]


async def test_a_rule_the_tenant_uploaded_is_in_its_coverage(api, client):
    rules = (
        "rules:\n- name: big_spender\n  applies_to: charge\n  when: {amount: 777}\n"
        "  then: {status: 402, error: {code: limit_exceeded, message: No.}}\n"
    )
    uploaded = await client.post("/__sandbox/scenarios", content=rules, headers={"Content-Type": "application/yaml"})
    assert uploaded.status_code == 200, uploaded.text
    assert "big_spender" in (await coverage_of(client))["scenarios"]["missing"]
    assert "limit_exceeded" in (await coverage_of(client))["error_codes"]["missing"]

    await api.post_charge(777)

    coverage = await coverage_of(client)
    assert coverage["scenarios"]["met"] == ["big_spender"]
    assert coverage["error_codes"]["met"] == ["limit_exceeded"]


async def test_coverage_is_the_tenants_own_and_every_tenants_together_without_a_token(api, other_api, make_client):
    await api.post_charge(100005)
    await other_api.post_charge(100096)

    assert (await coverage_of(api.client))["scenarios"]["met"] == ["generic_decline"]
    assert (await coverage_of(other_api.client))["scenarios"]["met"] == ["processing_error"]
    everyone = await coverage_of(make_client())
    assert {"generic_decline", "processing_error"} <= set(everyone["scenarios"]["met"])
    assert "generic_decline" not in everyone["scenarios"]["missing"]


async def test_a_reset_forgets_what_was_met(api, client):
    await api.post_charge(100005)
    assert (await client.post("/__sandbox/reset")).status_code == 200

    assert (await coverage_of(client))["scenarios"]["met"] == []
