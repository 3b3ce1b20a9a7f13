"""Validate a control API answer against the control API's own OpenAPI document (served at
/__sandbox/openapi.json): the response documented for the method, path and status."""

from __future__ import annotations

from typing import Any

import httpx
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

URI = "urn:payments-sandbox:control-openapi.json"


async def check(
    client: httpx.AsyncClient,
    path: str,
    params: dict[str, str] | None = None,
    *,
    method: str = "GET",
    json: Any = None,
    template: str | None = None,
) -> Any:
    """Call `method path` and validate the answer against the documented response for its status
    (`template`: the documented path, e.g. /webhooks/{hook_id}, when `path` fills it in)."""
    document = (await client.get("/__sandbox/openapi.json")).json()
    response = await client.request(method, f"/__sandbox{path}", params=params, json=json)
    documented_path = template or path
    operation = document["paths"][documented_path][method.lower()]
    documented = operation["responses"][str(response.status_code)]
    escaped = documented_path.replace("/", "~1").replace("{", "%7B").replace("}", "%7D")
    pointer = (
        documented["$ref"].removeprefix("#")
        if "$ref" in documented
        else f"/paths/{escaped}/{method.lower()}/responses/{response.status_code}"
    )
    registry: Registry[Any] = Registry().with_resource(
        URI, Resource.from_contents(document, default_specification=DRAFT4)
    )
    schema = {"$ref": f"{URI}#{pointer}/content/application~1json/schema"}
    validator = OAS30Validator(schema, registry=registry, format_checker=oas30_format_checker)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(response.json())]
    assert not errors, errors
    return response.json()
