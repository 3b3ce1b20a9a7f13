"""With a JWT secret, only HS256 JWTs signed with it, in their validity window and naming a `sub`, get in."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from helpers import b64url, jwt

pytestmark = pytest.mark.anyio

LIST = "/v1/payments/charges"


async def get(make_client, jwt_app, token):
    return await make_client(token, target=jwt_app).get(LIST)


async def test_correctly_signed_token_works(make_client, jwt_app):
    response = await get(make_client, jwt_app, jwt({"sub": "alice"}))
    assert response.status_code == 200, response.text


async def test_unexpired_token_works(make_client, jwt_app):
    response = await get(make_client, jwt_app, jwt({"sub": "alice", "exp": int(time.time()) + 3600}))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(jwt({"sub": "alice"}, secret="wrong"), id="bad-signature"),
        pytest.param(jwt({"sub": "alice", "exp": int(time.time()) - 60}), id="expired"),
        pytest.param(jwt({"sub": "alice", "exp": "tomorrow"}), id="exp-not-a-number"),
        pytest.param("opaque-token", id="opaque"),
        pytest.param("a.b.c", id="three-parts-not-jwt"),
        pytest.param(jwt({"sub": "alice"}, alg="HS512"), id="alg-hs512"),
        pytest.param(jwt({"sub": "alice"}, alg="none"), id="alg-none"),
        pytest.param(jwt({"sub": "alice"}, alg="RS256"), id="alg-rs256"),
        pytest.param(jwt({"sub": "alice"}).rsplit(".", 1)[0] + ".", id="no-signature"),
        pytest.param(jwt({"name": "no sub"}), id="no-sub"),
        pytest.param(jwt({"sub": ""}), id="empty-sub"),
        pytest.param(jwt({"sub": "alice", "nbf": int(time.time()) + 3600}), id="not-yet-valid"),
        pytest.param(jwt({"sub": "alice"}) + "!!", id="junk-after-signature"),
        pytest.param(jwt({"sub": "alice"}) + "==", id="padding-after-signature"),
    ],
)
async def test_rejected_tokens_are_401(api, make_client, jwt_app, token):
    api.error(await get(make_client, jwt_app, token), 401, code="unauthorized")


async def test_tampered_claims_are_401(api, make_client, jwt_app):
    head, _, signature = jwt({"sub": "alice"}).split(".")
    forged = f"{head}.{b64url(json.dumps({'sub': 'mallory'}).encode())}.{signature}"
    api.error(await get(make_client, jwt_app, forged), 401)


async def test_rejected_token_stores_nothing(api, make_client, jwt_app):
    sub = f"victim-{uuid.uuid4().hex}"
    forger = make_client(jwt({"sub": sub}, secret="wrong"), target=jwt_app)
    api.error(await forger.post("/v1/payments/charge", json={"amount": 1500, "currency": "USD"}), 401)
    owner = make_client(jwt({"sub": sub}), target=jwt_app)
    assert (await owner.get(LIST)).json()["total"] == 0
