"""auth.tenant_of: which tenant a bearer header names, with and without a JWT secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from sandbox.auth import tenant_of
from sandbox.errors import Unauthorized


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(claims: Any, secret: str = "s", alg: str = "HS256", header: Any = None) -> str:
    head = b64url(json.dumps(header if header is not None else {"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    signature = b64url(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{signature}"


def bearer(token: str) -> str:
    return f"Bearer {token}"


# -- the header ----------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer  ", "Basic abc", "Bearer\tabc", "Token abc"])
def test_missing_or_malformed_header_is_unauthorized(header):
    with pytest.raises(Unauthorized) as caught:
        tenant_of(header, None)
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"] == "Bearer"


def test_missing_and_malformed_are_told_apart():
    with pytest.raises(Unauthorized, match="Missing"):
        tenant_of(None, None)
    with pytest.raises(Unauthorized, match="Malformed"):
        tenant_of("Basic abc", None)


def test_scheme_is_case_insensitive_and_token_trimmed():
    assert tenant_of("bearer abc", None) == tenant_of("Bearer abc", None) == tenant_of("BEARER  abc ", None)


# -- opaque tokens -------------------------------------------------------------------------------


def test_same_token_same_tenant():
    assert tenant_of(bearer("abc"), None) == tenant_of(bearer("abc"), None)


def test_different_tokens_different_tenants():
    assert tenant_of(bearer("abc"), None) != tenant_of(bearer("abd"), None)


def test_tenant_does_not_keep_the_token_in_clear():
    token = "sk_live_secret_value"
    assert token not in tenant_of(bearer(token), None)


@pytest.mark.parametrize("token", ["a.b.c", "x.y", "....", "e30.e30"])
def test_dotted_tokens_that_are_not_jwts_are_opaque(token):
    assert tenant_of(bearer(token), None) != tenant_of(bearer(token + "x"), None)


# -- JWTs without a secret -----------------------------------------------------------------------


def test_jwt_tenant_is_its_sub_whatever_the_signature():
    first = jwt({"sub": "alice", "iat": 1}, secret="one")
    refreshed = jwt({"sub": "alice", "iat": 2, "exp": 1}, secret="two")
    assert first != refreshed
    assert tenant_of(bearer(first), None) == tenant_of(bearer(refreshed), None)


def test_different_subs_are_different_tenants():
    assert tenant_of(bearer(jwt({"sub": "alice"})), None) != tenant_of(bearer(jwt({"sub": "bob"})), None)


def test_jwt_sub_is_not_the_plain_token_of_that_name():
    assert tenant_of(bearer(jwt({"sub": "alice"})), None) != tenant_of(bearer("alice"), None)


def test_jwt_sub_is_not_the_plain_token_jwt_colon_sub():
    assert tenant_of(bearer(jwt({"sub": "alice"})), None) != tenant_of(bearer("jwt:alice"), None)


@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": 5}, {"sub": None}, ["sub"]])
def test_jwt_without_a_usable_sub_is_the_token_itself(claims):
    token = jwt(claims)
    assert tenant_of(bearer(token), None) == tenant_of(bearer(token), None)
    assert tenant_of(bearer(token), None) != tenant_of(bearer(jwt(claims, secret="other")), None)


# -- JWTs with a secret --------------------------------------------------------------------------


def test_signed_jwt_is_accepted_as_its_sub():
    first = jwt({"sub": "alice", "iat": 1})
    refreshed = jwt({"sub": "alice", "iat": 2})
    assert tenant_of(bearer(first), "s") == tenant_of(bearer(refreshed), "s")
    assert tenant_of(bearer(first), "s") != tenant_of(bearer(jwt({"sub": "bob"})), "s")


def test_future_exp_is_accepted():
    assert tenant_of(bearer(jwt({"sub": "alice", "exp": time.time() + 60})), "s")


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(jwt({"sub": "alice"}, secret="wrong"), id="bad-signature"),
        pytest.param(jwt({"sub": "alice", "exp": time.time() - 1}), id="expired"),
        pytest.param(jwt({"sub": "alice", "exp": "2999-01-01"}), id="exp-string"),
        pytest.param(jwt({"sub": "alice", "exp": True}), id="exp-bool"),
        pytest.param(jwt({"sub": "alice"}, alg="HS384"), id="alg-hs384"),
        pytest.param(jwt({"sub": "alice"}, alg="none"), id="alg-none"),
        pytest.param(jwt({"sub": "alice"}, header={"typ": "JWT"}), id="no-alg"),
        pytest.param(jwt({"sub": "alice"}, header=["HS256"]), id="header-not-object"),
        pytest.param(jwt({"sub": "alice"}).rsplit(".", 1)[0] + ".", id="empty-signature"),
        pytest.param(jwt({"sub": "alice"}).rsplit(".", 1)[0] + ".!!!", id="garbage-signature"),
        pytest.param(jwt({"iss": "x"}), id="no-sub"),
        pytest.param("opaque", id="opaque"),
        pytest.param("a.b.c", id="not-base64-json"),
        pytest.param("\u00e9.\u00e9.\u00e9", id="non-ascii-parts"),
    ],
)
def test_secret_rejects(token):
    with pytest.raises(Unauthorized):
        tenant_of(bearer(token), "s")


def test_secret_rejects_tampered_claims():
    head, _, signature = jwt({"sub": "alice"}).split(".")
    forged = f"{head}.{b64url(json.dumps({'sub': 'mallory'}).encode())}.{signature}"
    with pytest.raises(Unauthorized, match="signature"):
        tenant_of(bearer(forged), "s")


def signed_raw(payload: bytes, secret: str = "s") -> str:
    """A JWT around a raw payload, for claims `json.dumps` cannot write."""
    head = b64url(b'{"alg": "HS256", "typ": "JWT"}')
    body = b64url(payload)
    signature = b64url(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{signature}"


def test_secret_rejects_minus_infinity_exp():
    with pytest.raises(Unauthorized):
        tenant_of(bearer(signed_raw(b'{"sub": "alice", "exp": -Infinity}')), "s")


def test_secret_rejects_nan_exp():
    with pytest.raises(Unauthorized):
        tenant_of(bearer(signed_raw(b'{"sub": "alice", "exp": NaN}')), "s")
