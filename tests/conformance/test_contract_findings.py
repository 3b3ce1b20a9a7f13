"""Findings of the conformance run, and how each was settled.

1. POST /charge and /refund without a body: the seed made the body optional, yet `amount`,
   `currency` and `charge_id` are required, so no bodiless POST can succeed. The bundled contract
   marks both request bodies `required: true`, and the two sides agree.
2. A metadata key over 40 characters: the limit is a rule of the Payments API, but OpenAPI 3.0 has
   no `propertyNames` to state it in a schema. The contract states it in the metadata schema's
   description and the sandbox enforces it; schemathesis_hooks.py tells the generator so.
"""

from __future__ import annotations

from uuid import uuid4

import httpx
import pytest
from conformance_support import SPEC, body_validator
from sandbox_server import SandboxProcess

API = "/v1/payments"


@pytest.mark.parametrize("path", ["/charge", "/refund"])
def test_contract_and_sandbox_agree_on_a_post_without_body(default_server: SandboxProcess, path: str) -> None:
    headers = {"Authorization": f"Bearer findings-{uuid4().hex}"}
    response = httpx.post(f"{default_server.base_url}{API}{path}", headers=headers, trust_env=False)
    body_required = SPEC["paths"][path]["post"]["requestBody"].get("required", False)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "parameter_missing"
    assert body_required, f"the sandbox rejects POST {path} without a body, yet the contract makes the body optional"


@pytest.mark.parametrize("path", ["/charge", "/refund"])
def test_a_41_character_metadata_key_is_refused_as_the_contract_describes(
    default_server: SandboxProcess, path: str
) -> None:
    headers = {"Authorization": f"Bearer findings-{uuid4().hex}"}
    with httpx.Client(base_url=default_server.base_url + API, headers=headers, trust_env=False) as client:
        charge = client.post("/charge", json={"amount": 1500, "currency": "USD"})
        assert charge.status_code == 200, charge.text
        body = {"amount": 1500, "currency": "USD"} if path == "/charge" else {"charge_id": charge.json()["id"]}
        body["metadata"] = {"k" * 41: "v"}
        response = client.post(path, json=body)
    metadata_schema = body_validator(path, "post").schema["properties"]["metadata"]

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "parameter_invalid"
    assert response.json()["error"]["param"] == "metadata"
    assert "at most 40 characters" in metadata_schema["description"]
