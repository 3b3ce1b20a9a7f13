"""openapi.Contract: routing, parameter coercion, body checks, and the OpenAPI 3.0 dialect."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import InvalidRequest, MethodNotAllowed, NotFound
from sandbox.openapi import Contract, load_contract

BUNDLED_PATH = Path(__file__).resolve().parents[2] / "openapi.json"
BUNDLED_DOC = json.loads(BUNDLED_PATH.read_text())


@pytest.fixture(scope="module")
def bundled() -> Contract:
    return load_contract(BUNDLED_PATH)


def tiny(properties: dict[str, Any], *, server: str | None = "https://example.test/api/v2/", **extra: Any) -> Contract:
    """A one-operation contract (POST /things) whose body has these properties."""
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/things": {
                "post": {
                    "operationId": "makeThing",
                    "requestBody": {
                        "content": {"application/json": {"schema": {"type": "object", "properties": properties}}}
                    },
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
        **extra,
    }
    if server is not None:
        document["servers"] = [{"url": server}]
    raw = json.dumps(document).encode()
    return Contract(document, raw, Path("tiny.json"))


def charge_body(bundled: Contract, **fields: Any) -> None:
    bundled.operations["postCreateCharge"].check_body({"amount": 1500, "currency": "USD", **fields})


# -- the OpenAPI 3.0 dialect -------------------------------------------------------------------


def accepts(contract: Contract, body: Any) -> bool:
    """Whether the sandbox takes `body` for POST /things (what an endpoint calls: `check_body`)."""
    try:
        contract.operations["makeThing"].check_body(body)
    except InvalidRequest:
        return False
    return True


def test_nullable_property_accepts_null():
    contract = tiny({"note": {"type": "string", "nullable": True}})
    assert accepts(contract, {"note": None})
    assert accepts(contract, {"note": "text"})


def test_property_without_nullable_rejects_null():
    assert not accepts(tiny({"name": {"type": "string"}}), {"name": None})


def test_nullable_does_not_loosen_the_type():
    assert not accepts(tiny({"note": {"type": "string", "nullable": True}}), {"note": 5})


def test_example_is_documentation_not_a_constraint():
    assert accepts(tiny({"code": {"type": "string", "example": "ABC"}}), {"code": "XYZ"})


def test_refs_in_request_schemas_are_resolved():
    components = {"schemas": {"Money": {"type": "integer", "minimum": 1}}}
    contract = tiny({"amount": {"$ref": "#/components/schemas/Money"}}, components=components)
    assert accepts(contract, {"amount": 5})
    assert not accepts(contract, {"amount": 0})


def test_bundled_charge_description_is_not_nullable(bundled):
    schema = BUNDLED_DOC["paths"]["/charge"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert not schema["properties"]["description"].get("nullable", False)
    with pytest.raises(InvalidRequest) as caught:
        charge_body(bundled, description=None)
    assert caught.value.param == "description"


def test_bundled_charge_description_accepts_a_string(bundled):
    charge_body(bundled, description="Order #1234")


# -- routing -------------------------------------------------------------------------------------


def test_prefix_comes_from_the_server_url(bundled):
    assert bundled.prefix == "/v1/payments"
    assert tiny({}).prefix == "/api/v2"


def test_prefix_is_empty_without_servers():
    assert tiny({}, server=None).prefix == ""


def test_fingerprint_is_sha256_of_the_raw_document(bundled):
    assert bundled.fingerprint == hashlib.sha256(BUNDLED_PATH.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("method", "path", "op_id"),
    [
        ("POST", "/charge", "postCreateCharge"),
        ("GET", "/charge/ch_1", "getGetCharge"),
        ("GET", "/charges", "getListCharges"),
        ("POST", "/refund", "postCreateRefund"),
    ],
)
def test_match_finds_the_operation(bundled, method, path, op_id):
    op, _ = bundled.match(method, path)
    assert op.id == op_id


def test_match_extracts_path_parameters(bundled):
    _, params = bundled.match("GET", "/charge/ch_abc")
    assert params == {"id": "ch_abc"}


@pytest.mark.parametrize("path", ["/charge/a/b", "/charge/", "/nope", "", "/charges/x", "/Charge"])
def test_match_unknown_path_is_not_found(bundled, path):
    with pytest.raises(NotFound):
        bundled.match("GET", path)


def test_match_wrong_method_names_the_allowed_ones(bundled):
    with pytest.raises(MethodNotAllowed) as caught:
        bundled.match("DELETE", "/charge/ch_1")
    assert caught.value.headers == {"Allow": "GET"}
    assert caught.value.status == 405


# -- parameters ----------------------------------------------------------------------------------


def test_list_parameters_default(bundled):
    assert bundled.operations["getListCharges"].parse_params({}, {}) == {"limit": 20, "offset": 0}


def test_list_parameters_are_coerced(bundled):
    parsed = bundled.operations["getListCharges"].parse_params({}, {"limit": "7", "offset": "3", "status": "failed"})
    assert parsed == {"limit": 7, "offset": 3, "status": "failed"}


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"limit": "x"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": " 5"}, "limit"),
        ({"limit": "5.0"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "1" * 40}, "offset"),
        ({"status": "refunded"}, "status"),
    ],
)
def test_bad_parameters_name_themselves(bundled, query, param):
    with pytest.raises(InvalidRequest) as caught:
        bundled.operations["getListCharges"].parse_params({}, query)
    assert (caught.value.status, caught.value.param) == (400, param)


def test_missing_required_path_parameter(bundled):
    with pytest.raises(InvalidRequest) as caught:
        bundled.operations["getGetCharge"].parse_params({}, {})
    assert (caught.value.code, caught.value.param) == ("parameter_missing", "id")


def test_overlong_path_parameter(bundled):
    with pytest.raises(InvalidRequest) as caught:
        bundled.operations["getGetCharge"].parse_params({"id": "x" * 256}, {})
    assert caught.value.param == "id"


# -- bodies --------------------------------------------------------------------------------------


def test_valid_charge_body_passes(bundled):
    charge_body(bundled, description="d", metadata={"k": "v"})


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"currency": "USD"}, "parameter_missing", "amount"),
        ({"amount": 1}, "parameter_missing", "currency"),
        ({"amount": 1, "currency": "USD", "zzz": 1}, "parameter_unknown", "zzz"),
        ({"amount": True, "currency": "USD"}, "parameter_invalid", "amount"),
        ({"amount": 1.0, "currency": "USD"}, "parameter_invalid", "amount"),
        ({"amount": 1, "currency": "XYZ"}, "parameter_invalid", "currency"),
        ({"amount": 1, "currency": "USD", "metadata": {"k": 1}}, "parameter_invalid", "metadata.k"),
        ([], "invalid_body", None),
        ("body", "invalid_body", None),
    ],
)
def test_body_errors_name_the_field(bundled, body, code, param):
    with pytest.raises(InvalidRequest) as caught:
        bundled.operations["postCreateCharge"].check_body(body)
    assert (caught.value.code, caught.value.param) == (code, param)


def test_operation_without_body_accepts_anything(bundled):
    bundled.operations["getListCharges"].check_body(["anything"])
