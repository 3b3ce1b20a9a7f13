"""GET /__sandbox/findings and /__sandbox/coverage answer what the control API's OpenAPI document
(served at /__sandbox/openapi.json) says they do."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

pytestmark = pytest.mark.anyio
URI = "urn:payments-sandbox:control-openapi.json"


async def check(client: httpx.AsyncClient, path: str, params: dict[str, str] | None = None) -> Any:
    """Call GET `path` and validate the answer against the documented response for its status."""
    document = (await client.get("/__sandbox/openapi.json")).json()
    response = await client.get(f"/__sandbox{path}", params=params)
    documented = document["paths"][path]["get"]["responses"][str(response.status_code)]
    escaped = path.replace("/", "~1")
    pointer = (
        documented["$ref"].removeprefix("#")
        if "$ref" in documented
        else f"/paths/{escaped}/get/responses/{response.status_code}"
    )
    registry: Registry[Any] = Registry().with_resource(
        URI, Resource.from_contents(document, default_specification=DRAFT4)
    )
    schema = {"$ref": f"{URI}#{pointer}/content/application~1json/schema"}
    validator = OAS30Validator(schema, registry=registry, format_checker=oas30_format_checker)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(response.json())]
    assert not errors, errors
    return response.json()


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
