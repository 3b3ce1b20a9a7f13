"""The bundled openapi.json: a valid OpenAPI 3 document that keeps everything the seed contract has."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from sandbox.openapi import deref

TESTS = Path(__file__).resolve().parents[1]
BUNDLED = json.loads((TESTS.parent / "openapi.json").read_text())
# A copy of ../shared/seed/payments-openapi.json, kept here so that the check needs nothing outside the repo.
SEED = json.loads((TESTS / "data" / "seed-openapi.json").read_text())
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(path, method) for path, item in document["paths"].items() for method in METHODS if method in item]


def parameters(document: dict[str, Any], path: str, method: str) -> dict[tuple[str, str], dict[str, Any]]:
    item = document["paths"][path]
    found = [deref(p, document) for p in item.get("parameters", []) + item[method].get("parameters", [])]
    return {(p["name"], p["in"]): p for p in found}


def body_properties(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    body = deref(document["paths"][path][method].get("requestBody", {}), document)
    schema = deref(body.get("content", {}).get("application/json", {}).get("schema", {}), document)
    return {name: deref(prop, document) for name, prop in schema.get("properties", {}).items()}


def test_bundled_document_is_valid_openapi_3():
    validate(BUNDLED)


def test_seed_copy_is_the_seed_contract():
    assert SEED["info"]["title"] == BUNDLED["info"]["title"]
    assert operations(SEED), "the seed copy lists no operations"


def test_server_url_is_kept():
    assert [s["url"] for s in BUNDLED["servers"]] == [s["url"] for s in SEED["servers"]]


@pytest.mark.parametrize("path", list(SEED["paths"]))
def test_every_seed_path_is_kept(path):
    assert path in BUNDLED["paths"]


@pytest.mark.parametrize(("path", "method"), operations(SEED))
def test_every_seed_operation_is_kept(path, method):
    assert method in BUNDLED["paths"].get(path, {})
    assert BUNDLED["paths"][path][method].get("operationId") == SEED["paths"][path][method].get("operationId")


@pytest.mark.parametrize(("path", "method"), operations(SEED))
def test_every_seed_parameter_is_kept_with_its_type(path, method):
    bundled = parameters(BUNDLED, path, method)
    for key, seed in parameters(SEED, path, method).items():
        assert key in bundled, f"{method.upper()} {path} lost parameter {key}"
        assert bool(bundled[key].get("required")) == bool(seed.get("required")), key
        assert deref(bundled[key]["schema"], BUNDLED).get("type") == seed["schema"].get("type"), key


@pytest.mark.parametrize(("path", "method"), operations(SEED))
def test_every_seed_request_body_property_is_kept_with_its_type(path, method):
    bundled = body_properties(BUNDLED, path, method)
    for name, seed in body_properties(SEED, path, method).items():
        assert name in bundled, f"{method.upper()} {path} lost body property {name}"
        assert bundled[name].get("type") == seed.get("type"), name


@pytest.mark.parametrize(("path", "method"), operations(SEED))
def test_every_seed_response_status_is_still_documented(path, method):
    bundled = BUNDLED["paths"][path][method]["responses"]
    assert set(SEED["paths"][path][method]["responses"]) <= set(bundled)


@pytest.mark.parametrize(("path", "method"), operations(BUNDLED))
def test_every_documented_response_has_a_json_schema(path, method):
    for status, response in BUNDLED["paths"][path][method]["responses"].items():
        media = deref(response, BUNDLED).get("content", {}).get("application/json", {})
        assert "schema" in media, f"{method.upper()} {path} {status} has no JSON schema"


def test_the_built_in_scenario_pack_passes_the_scenario_schema():
    # `serve` skips this check for the bundled pack to start faster; this test is what it relies on.
    from sandbox.scenarios import parse_rules
    from sandbox.settings import DEFAULT_SCENARIOS

    rules = parse_rules(DEFAULT_SCENARIOS.read_bytes(), str(DEFAULT_SCENARIOS), check_schema=True)

    assert len(rules) == 17


@pytest.mark.parametrize("name", ["flaky-network", "bad-day"])
def test_the_chaos_profiles_pass_the_scenario_schema_and_fire_by_chance(name):
    from sandbox.chaos import profile_path
    from sandbox.scenarios import parse_rules

    rules = parse_rules(profile_path(name).read_bytes(), name, check_schema=True)

    assert rules
    assert all(rule.probability is not None and 0 < rule.probability < 0.1 for rule in rules)
