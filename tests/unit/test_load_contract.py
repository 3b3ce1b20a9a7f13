"""openapi.load_contract: a bad document is a ConfigError naming the file, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.errors import ConfigError
from sandbox.openapi import load_contract

BUNDLED_PATH = Path(__file__).resolve().parents[2] / "openapi.json"


def test_bundled_contract_loads_with_the_four_operations():
    contract = load_contract(BUNDLED_PATH)
    assert set(contract.operations) == {"postCreateCharge", "getGetCharge", "getListCharges", "postCreateRefund"}


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match=r"nope\.json"):
        load_contract(missing)


def test_not_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad\.json.*not valid JSON"):
        load_contract(bad)


def test_not_an_openapi_document(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"openapi": "3.0.3", "paths": {}}))
    with pytest.raises(ConfigError, match=r"not a valid OpenAPI 3 document"):
        load_contract(bad)


def test_unusable_document_without_meta_validation(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"openapi": "3.0.3"}))
    with pytest.raises(ConfigError, match=r"bad\.json"):
        load_contract(bad, check_document=False)


def test_recursive_request_schema_is_refused(tmp_path):
    document = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/nodes": {
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}},
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
        "components": {
            "schemas": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/components/schemas/Node"}}}}
        },
    }
    spec = tmp_path / "recursive.json"
    spec.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="recursive"):
        load_contract(spec)
