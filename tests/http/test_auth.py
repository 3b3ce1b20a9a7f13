"""Bearer auth on the API: what is refused (401 envelope) and what is accepted."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio

LIST = "/v1/payments/charges"


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Bearer ", "Bearer    ", "Basic dXNlcjpwYXNz", "Token abc", "abc", "Bearerabc"],
)
async def test_malformed_authorization_is_401(api, make_client, authorization):
    response = await make_client().get(LIST, headers={"Authorization": authorization})
    api.error(response, 401, code="unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_missing_authorization_is_401(api, make_client):
    response = await make_client().get(LIST)
    api.error(response, 401, code="unauthorized")


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/payments/charge"), ("GET", "/v1/payments/charge/ch_x"), ("POST", "/v1/payments/refund")],
)
async def test_every_operation_needs_auth(api, make_client, method, path):
    kwargs = {"json": {"amount": 1500, "currency": "USD"}} if path.endswith("/charge") else {}
    api.error(await make_client().request(method, path, **kwargs), 401)


async def test_unauthorized_charge_is_not_stored(api, make_client):
    anonymous = make_client()
    api.error(await anonymous.post("/v1/payments/charge", json={"amount": 1500, "currency": "USD"}), 401)
    assert await api.total() == 0


@pytest.mark.parametrize("token", ["x", "sk_test_123", "a.b", "a.b.c", "not-a-jwt.at.all", "\u00e9\u00e8"])
async def test_any_non_empty_bearer_token_is_accepted(make_client, token):
    client = make_client()
    response = await client.get(LIST, headers={"Authorization": f"Bearer {token}".encode("latin-1")})
    assert response.status_code == 200, response.text


async def test_scheme_is_case_insensitive(make_client, token):
    response = await make_client().get(LIST, headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200, response.text
