"""GET /__sandbox/findings and /__sandbox/coverage answer what the control API's OpenAPI document
(served at /__sandbox/openapi.json) says they do."""

from __future__ import annotations

import pytest
from control_contract import check

pytestmark = pytest.mark.anyio


async def test_every_finding_code_is_documented_and_answered_as_documented(api, client):
    await api.post_charge(100005)
    await api.post_charge(100005)
    await api.post_charge(100202)
    await api.advance(61)
    await api.post_charge(1500, key="k")
    await api.post_charge(1600, key="k")

    found = await check(client, "/findings")

    assert [f["code"] for f in found["findings"]] == [
        "retried_hard_decline",
        "pending_never_resolved",
        "idempotency_key_reused",
    ]
    assert (await check(client, "/findings", {"code": "hammering"})) == {"findings": []}


async def test_a_refused_code_is_answered_as_documented(client):
    body = await check(client, "/findings", {"code": "nope"})

    assert body["error"]["code"] == "parameter_invalid"


async def test_coverage_is_answered_as_documented(api, client):
    await api.post_charge(100005)

    coverage = await check(client, "/coverage")

    assert coverage["scenarios"]["met"] == ["generic_decline"]
