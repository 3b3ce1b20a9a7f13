"""Unknown routes and wrong methods, inside and outside the API, all in the error envelope."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "path",
    [
        "/v1/payments/nope",
        "/v1/payments/charge/ch_1/refunds",
        "/v1/payments/charges/extra",
        "/v1/payments/charge/",
        "/v1/payments/",
        "/nope",
        "/",
        "/v2/payments/charges",
        "/__sandbox/nope",
    ],
)
async def test_unknown_route_is_404_envelope(api, client, path):
    api.error(await client.get(path), 404, code="not_found")


async def test_api_root_without_slash_is_404_envelope(api, client):
    api.error(await client.get("/v1/payments"), 404, code="not_found")


async def test_unknown_route_is_404_even_without_auth(api, make_client):
    api.error(await make_client().get("/v1/payments/nope"), 404)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/payments/charge", "POST"),
        ("PUT", "/v1/payments/charge", "POST"),
        ("DELETE", "/v1/payments/charge/ch_1", "GET"),
        ("POST", "/v1/payments/charge/ch_1", "GET"),
        ("POST", "/v1/payments/charges", "GET"),
        ("PATCH", "/v1/payments/refund", "POST"),
    ],
)
async def test_wrong_method_on_api_is_405_with_allow(api, client, method, path, allowed):
    response = await client.request(method, path)
    api.error(response, 405, code="method_not_allowed")
    assert response.headers["allow"] == allowed


async def test_wrong_method_outside_api_is_405_with_allow(api, client):
    response = await client.post("/__sandbox/health")
    api.error(response, 405, code="method_not_allowed")
    assert "GET" in [m.strip() for m in response.headers["allow"].split(",")]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/payments/charge"),
        ("GET", "/v1/payments/charges"),
        ("GET", "/v1/payments/charge/ch_missing"),
        ("GET", "/v1/payments/charges?limit=0"),
        ("DELETE", "/v1/payments/charges"),
        ("GET", "/v1/payments/nope"),
        ("GET", "/nope"),
        ("GET", "/__sandbox/health"),
        ("POST", "/__sandbox/health"),
    ],
)
async def test_every_response_has_a_request_id(client, method, path):
    kwargs = {"json": {"amount": 1500, "currency": "USD"}} if method == "POST" else {}
    response = await client.request(method, path, **kwargs)
    assert response.headers["request-id"].startswith("req_")
    assert len(response.headers["request-id"]) > len("req_")


async def test_unauthorized_response_has_a_request_id(make_client):
    response = await make_client().get("/v1/payments/charges")
    assert response.status_code == 401
    assert response.headers["request-id"].startswith("req_")


async def test_request_ids_differ(client):
    first = await client.get("/v1/payments/charges")
    second = await client.get("/v1/payments/charges")
    assert first.headers["request-id"] != second.headers["request-id"]
