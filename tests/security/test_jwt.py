"""JWT verification through a real server: --jwt-secret, --jwks, --jwt-audience/-issuer/-leeway.

Two servers serve the module. `verifying` has every flag at once: a shared secret, a key set of an
RSA and an EC key (by kid), an audience, an issuer and 30 s of leeway. `jwks_only` has a key set of
one RSA key and nothing else, so that an HS256 token has no way in (algorithm confusion) and a token
without a kid is checked by the only key. Keys are made with `cryptography`, tokens signed with PyJWT
(or by hand, for the tokens PyJWT refuses to write).
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import helpers
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from helpers import b64url
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sandbox_server import SandboxProcess, start_sandbox

SECRET = "a-shared-secret-for-the-sandbox"
AUDIENCE = "payments-api"
ISSUER = "https://issuer.test"
LEEWAY = 30
LIST = "/v1/payments/charges"


@functools.cache
def private_key(name: str) -> Any:
    """The test keys by name ("rsa", "ec", "only", and "stranger", in no key set), made on first use:
    RSA keys take a while, and collecting this module should not."""
    if name == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    return {**algorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}


def stop_cleanly(server: SandboxProcess) -> None:
    code = server.stop()
    assert code == 0, f"the sandbox exited with {code} after SIGTERM:\n{server.log()}"
    assert "Traceback" not in server.log(), server.log()


@pytest.fixture(scope="module")
def verifying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    folder = tmp_path_factory.mktemp("jwt")
    jwks = folder / "jwks.json"
    keys = [public_jwk(private_key("rsa"), "rsa-1"), public_jwk(private_key("ec"), "ec-1")]
    jwks.write_text(json.dumps({"keys": keys}))
    server = start_sandbox(
        folder,
        *("--jwt-secret", SECRET, "--jwks", str(jwks), "--jwt-audience", AUDIENCE),
        *("--jwt-issuer", ISSUER, "--jwt-leeway", str(LEEWAY)),
    )
    try:
        yield server
    finally:
        stop_cleanly(server)


@pytest.fixture(scope="module")
def jwks_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    folder = tmp_path_factory.mktemp("jwks-only")
    jwks = folder / "one-key.json"
    jwks.write_text(json.dumps({"keys": [public_jwk(private_key("only"), "only")]}))
    server = start_sandbox(folder, "--jwks", str(jwks))
    try:
        yield server
    finally:
        stop_cleanly(server)


def claims(**changes: Any) -> dict[str, Any]:
    """Claims `verifying` accepts, with `changes` (a None value drops the claim)."""
    now = int(time.time())
    base = {"sub": "alice", "aud": AUDIENCE, "iss": ISSUER, "iat": now, "exp": now + 600}
    return {name: value for name, value in {**base, **changes}.items() if value is not None}


def rs256(payload: dict[str, Any], kid: str | None = "rsa-1", key: str = "rsa") -> str:
    return jwt.encode(payload, private_key(key), algorithm="RS256", headers={"kid": kid} if kid else None)


def es256(payload: dict[str, Any], kid: str = "ec-1") -> str:
    return jwt.encode(payload, private_key("ec"), algorithm="ES256", headers={"kid": kid})


def hs256(payload: dict[str, Any], secret: str | bytes = SECRET, header: dict[str, Any] | None = None) -> str:
    """Signed by hand: PyJWT will not take a PEM as an HMAC secret, which is the attack tried here."""
    return helpers.jwt(payload, secret, header=header)


def unsigned(payload: dict[str, Any], kid: str | None = None) -> str:
    header = {"alg": "none", "typ": "JWT", **({"kid": kid} if kid else {})}
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}."


def get(server: SandboxProcess, token: str) -> httpx.Response:
    with server.client(token=token) as client:
        return client.get(LIST)


def refused(response: httpx.Response, token: str, says: str) -> str:
    """Assert a 401 in the error envelope that says `says`, never quoting the token."""
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "param"}
    assert body["error"]["code"] == "unauthorized"
    assert body["error"]["param"] is None
    message: str = body["error"]["message"]
    assert says in message, message
    assert "\n" not in message
    for part in token.split("."):
        assert len(part) < 8 or part not in response.text, "the refusal quotes the token"
    return message


# -- accepted ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sign", [rs256, es256, hs256], ids=["RS256-by-kid", "ES256-by-kid", "HS256-secret"])
def test_a_token_signed_by_a_configured_key_is_accepted(verifying: SandboxProcess, sign: Any) -> None:
    response = get(verifying, sign(claims()))
    assert response.status_code == 200, response.text


def test_the_only_key_checks_a_token_without_kid(jwks_only: SandboxProcess) -> None:
    response = get(jwks_only, rs256({"sub": "alice"}, kid=None, key="only"))
    assert response.status_code == 200, response.text


def test_the_tenant_is_the_sub_across_a_refreshed_token(verifying: SandboxProcess) -> None:
    sub = f"user-{uuid.uuid4().hex}"
    first = rs256(claims(sub=sub, jti="first"))
    with verifying.client(token=first) as client:
        created = client.post("/v1/payments/charge", json={"amount": 1500, "currency": "USD"})
    assert created.status_code == 200, created.text
    charge_id = created.json()["id"]
    refreshed = es256(claims(sub=sub, jti="second", iat=int(time.time()) + 1, exp=int(time.time()) + 1200))
    assert refreshed != first
    with verifying.client(token=refreshed) as client:
        fetched = client.get(f"/v1/payments/charge/{charge_id}")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["amount"] == 1500
    with verifying.client(token=rs256(claims(sub=f"other-{sub}"))) as client:
        assert client.get(f"/v1/payments/charge/{charge_id}").status_code == 404


# -- the validity window, with leeway ------------------------------------------------------------


@pytest.mark.parametrize("sign", [rs256, hs256], ids=["RS256", "HS256"])
def test_an_expired_token_is_refused(verifying: SandboxProcess, sign: Any) -> None:
    token = sign(claims(iat=int(time.time()) - 3600, exp=int(time.time()) - 4 * LEEWAY))
    refused(get(verifying, token), token, "expired")


@pytest.mark.parametrize("sign", [rs256, hs256], ids=["RS256", "HS256"])
def test_a_token_expired_within_the_leeway_is_accepted(verifying: SandboxProcess, sign: Any) -> None:
    token = sign(claims(iat=int(time.time()) - 3600, exp=int(time.time()) - LEEWAY // 3))
    assert get(verifying, token).status_code == 200


@pytest.mark.parametrize("sign", [rs256, hs256], ids=["RS256", "HS256"])
def test_a_token_not_yet_valid_is_refused(verifying: SandboxProcess, sign: Any) -> None:
    token = sign(claims(nbf=int(time.time()) + 4 * LEEWAY))
    refused(get(verifying, token), token, "not valid yet")


@pytest.mark.parametrize("sign", [rs256, hs256], ids=["RS256", "HS256"])
def test_a_token_valid_within_the_leeway_is_accepted(verifying: SandboxProcess, sign: Any) -> None:
    token = sign(claims(nbf=int(time.time()) + LEEWAY // 3))
    assert get(verifying, token).status_code == 200


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_exp_is_refused(verifying: SandboxProcess, value: float) -> None:
    token = rs256(claims(exp=value))  # json.dumps writes NaN and Infinity, as a careless issuer might
    refused(get(verifying, token), token, "`exp`")


# -- audience, issuer, subject -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"aud": "another-api"}, "`aud`"),
        ({"aud": None}, "`aud`"),
        ({"iss": "https://elsewhere.test"}, "`iss`"),
        ({"iss": None}, "`iss`"),
        ({"sub": None}, "`sub`"),
        ({"sub": ""}, "`sub`"),
        ({"sub": 42}, "`sub`"),
    ],
    ids=["wrong-aud", "no-aud", "wrong-iss", "no-iss", "no-sub", "empty-sub", "sub-not-string"],
)
@pytest.mark.parametrize("sign", [rs256, hs256], ids=["RS256", "HS256"])
def test_claims_that_do_not_match_are_refused(verifying: SandboxProcess, sign: Any, changes: Any, says: str) -> None:
    token = sign(claims(**changes))
    refused(get(verifying, token), token, says)


def test_an_audience_list_naming_this_sandbox_is_accepted(verifying: SandboxProcess) -> None:
    assert get(verifying, rs256(claims(aud=["other", AUDIENCE]))).status_code == 200


# -- keys and algorithms -------------------------------------------------------------------------


def test_an_unknown_kid_is_refused(verifying: SandboxProcess) -> None:
    token = rs256(claims(), kid="rsa-2")
    refused(get(verifying, token), token, "`kid`")


def test_no_kid_is_refused_when_the_set_has_several_keys(verifying: SandboxProcess) -> None:
    token = rs256(claims(), kid=None)
    refused(get(verifying, token), token, "`kid`")


def test_a_key_outside_the_set_does_not_verify(verifying: SandboxProcess) -> None:
    token = rs256(claims(), key="stranger")
    refused(get(verifying, token), token, "signature")


def test_a_wrong_secret_does_not_verify(verifying: SandboxProcess) -> None:
    token = hs256(claims(), secret="not-the-secret")
    refused(get(verifying, token), token, "signature")


def test_an_algorithm_the_named_key_does_not_use_is_refused(verifying: SandboxProcess) -> None:
    token = rs256(claims(), kid="ec-1")  # an RSA signature claiming the EC key
    refused(get(verifying, token), token, "`alg`")


@pytest.mark.parametrize("kid", [None, "rsa-1"])
def test_alg_none_is_refused(verifying: SandboxProcess, jwks_only: SandboxProcess, kid: str | None) -> None:
    for server in (verifying, jwks_only):
        token = unsigned(claims(), kid=kid)
        refused(get(server, token), token, "'none'")


PEM_FORMATS = {
    "SubjectPublicKeyInfo": serialization.PublicFormat.SubjectPublicKeyInfo,
    "PKCS1": serialization.PublicFormat.PKCS1,
}


@pytest.mark.parametrize("pem_format", PEM_FORMATS)
@pytest.mark.parametrize("kid", [None, "only"])
def test_hs256_signed_with_the_public_key_is_refused(jwks_only: SandboxProcess, pem_format: str, kid: Any) -> None:
    """Algorithm confusion: the public key is public, so an HMAC keyed by it proves nothing."""
    pem = private_key("only").public_key().public_bytes(serialization.Encoding.PEM, PEM_FORMATS[pem_format])
    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
    token = hs256({"sub": "mallory"}, secret=pem, header=header)
    refused(get(jwks_only, token), token, "`alg`")


def test_hs256_is_refused_without_a_secret_even_with_the_jwk_as_key(jwks_only: SandboxProcess) -> None:
    token = hs256({"sub": "mallory"}, secret=json.dumps(public_jwk(private_key("only"), "only")))
    refused(get(jwks_only, token), token, "`alg`")


# -- shape ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "junk",
    ["!!", "==", "=", " x", "\tx", ".x", ".", "%3D", "~"],
    ids=["bang", "padding", "one-pad", "space-inside", "tab-inside", "fourth-part", "empty-fourth", "escaped", "tilde"],
)
@pytest.mark.parametrize("sign", [rs256, hs256], ids=["RS256", "HS256"])
def test_junk_after_the_signature_is_refused(verifying: SandboxProcess, sign: Any, junk: str) -> None:
    token = sign(claims()) + junk
    refused(get(verifying, token), token, "base64url")


@pytest.mark.parametrize("token", ["opaque-token", "a.b.c", "a.b", "e30.e30.e30"])
def test_a_token_that_is_no_jwt_is_refused(verifying: SandboxProcess, token: str) -> None:
    refused(get(verifying, token), token, "JWT")


def test_a_refusal_does_not_echo_the_token(verifying: SandboxProcess) -> None:
    payload = claims(sub="<script>alert(1)</script>", aud="x" * 200)
    token = rs256(payload)
    message = refused(get(verifying, token), token, "`aud`")
    assert "script" not in message
    assert "xxxxxxxx" not in message
