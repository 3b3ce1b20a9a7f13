"""Auth.tenant_of: which tenant a bearer header names, with and without a JWT secret.

Tokens are built by hand here (not with PyJWT) so that the tests pin the wire format, including
tokens no library would write: NaN claims, a header that is not an object, a missing `alg`.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import time
import types
import uuid
from typing import Any

import pytest
from helpers import b64url, jwt

import sandbox.auth
from sandbox.auth import Auth
from sandbox.errors import ConfigError, Unauthorized
from sandbox.settings import Settings

PLAIN = Auth(Settings())
SIGNED = Auth(Settings(jwt_secret="s"))


def bearer(token: str) -> str:
    return f"Bearer {token}"


def plain(header: str | None) -> str:
    return PLAIN.tenant_of(header)


def signed(header: str | None) -> str:
    return SIGNED.tenant_of(header)


# -- the header ----------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer  ", "Basic abc", "Bearer\tabc", "Token abc"])
def test_missing_or_malformed_header_is_unauthorized(header):
    with pytest.raises(Unauthorized) as caught:
        plain(header)
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"] == "Bearer"


def test_missing_and_malformed_are_told_apart():
    with pytest.raises(Unauthorized, match="Missing"):
        plain(None)
    with pytest.raises(Unauthorized, match="Malformed"):
        plain("Basic abc")


def test_scheme_is_case_insensitive_and_token_trimmed():
    assert plain("bearer abc") == plain("Bearer abc") == plain("BEARER  abc ")


def test_tenant_key_format():
    assert plain(bearer("abc")) == sandbox.auth.tenant_key("token:abc")
    assert sandbox.auth.tenant_key("token:abc") == "tn_" + hashlib.sha256(b"token:abc").hexdigest()[:16]


# -- opaque tokens -------------------------------------------------------------------------------


def test_same_token_same_tenant():
    assert plain(bearer("abc")) == plain(bearer("abc"))


def test_different_tokens_different_tenants():
    assert plain(bearer("abc")) != plain(bearer("abd"))


def test_tenant_does_not_keep_the_token_in_clear():
    token = "sk_live_secret_value"
    assert token not in plain(bearer(token))


@pytest.mark.parametrize("token", ["a.b.c", "x.y", "....", "e30.e30"])
def test_dotted_tokens_that_are_not_jwts_are_opaque(token):
    assert plain(bearer(token)) != plain(bearer(token + "x"))


# -- JWTs without a secret -----------------------------------------------------------------------


def test_jwt_tenant_is_its_sub_whatever_the_signature():
    first = jwt({"sub": "alice", "iat": 1}, secret="one")
    refreshed = jwt({"sub": "alice", "iat": 2, "exp": 1}, secret="two")
    assert first != refreshed
    assert plain(bearer(first)) == plain(bearer(refreshed)) == sandbox.auth.tenant_key("jwt:alice")


def test_unsigned_jwt_tenant_is_its_sub():
    unsigned = jwt({"sub": "alice"}, header={"alg": "none"}).rsplit(".", 1)[0] + "."
    assert plain(bearer(unsigned)) == plain(bearer(jwt({"sub": "alice"})))


def test_different_subs_are_different_tenants():
    assert plain(bearer(jwt({"sub": "alice"}))) != plain(bearer(jwt({"sub": "bob"})))


def test_jwt_sub_is_not_the_plain_token_of_that_name():
    assert plain(bearer(jwt({"sub": "alice"}))) != plain(bearer("alice"))


def test_jwt_sub_is_not_the_plain_token_jwt_colon_sub():
    assert plain(bearer(jwt({"sub": "alice"}))) != plain(bearer("jwt:alice"))


@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": 5}, {"sub": None}, ["sub"]])
def test_jwt_without_a_usable_sub_is_the_token_itself(claims):
    token = jwt(claims)
    assert plain(bearer(token)) == plain(bearer(token))
    assert plain(bearer(token)) != plain(bearer(jwt(claims, secret="other")))


# -- JWTs with a secret --------------------------------------------------------------------------


def test_signed_jwt_is_accepted_as_its_sub():
    first = jwt({"sub": "alice", "iat": 1})
    refreshed = jwt({"sub": "alice", "iat": 2})
    assert signed(bearer(first)) == signed(bearer(refreshed)) == plain(bearer(first))
    assert signed(bearer(first)) != signed(bearer(jwt({"sub": "bob"})))


def test_future_exp_is_accepted():
    assert signed(bearer(jwt({"sub": "alice", "exp": time.time() + 60})))


def test_a_short_secret_is_accepted_without_a_warning():
    # pytest runs with -W error: PyJWT's per-request InsecureKeyLengthWarning would fail this.
    assert Auth(Settings(jwt_secret="x")).tenant_of(bearer(jwt({"sub": "alice"}, secret="x")))


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(jwt({"sub": "alice"}, secret="wrong"), id="bad-signature"),
        pytest.param(jwt({"sub": "alice", "exp": time.time() - 1}), id="expired"),
        pytest.param(jwt({"sub": "alice", "exp": "2999-01-01"}), id="exp-string"),
        pytest.param(jwt({"sub": "alice", "exp": True}), id="exp-bool"),
        pytest.param(jwt({"sub": "alice", "nbf": time.time() + 86400}), id="nbf-future"),  # made at collection
        pytest.param(jwt({"sub": "alice"}, alg="HS384"), id="alg-hs384"),
        pytest.param(jwt({"sub": "alice"}, alg="none"), id="alg-none"),
        pytest.param(jwt({"sub": "alice"}, header={"typ": "JWT"}), id="no-alg"),
        pytest.param(jwt({"sub": "alice"}, header=["HS256"]), id="header-not-object"),
        pytest.param(jwt({"sub": "alice"}).rsplit(".", 1)[0] + ".", id="empty-signature"),
        pytest.param(jwt({"sub": "alice"}).rsplit(".", 1)[0] + ".!!!", id="garbage-signature"),
        pytest.param(jwt({"sub": "alice"}) + "!!", id="junk-after-signature"),
        pytest.param(jwt({"sub": "alice"}) + "==", id="padding-after-signature"),
        pytest.param(jwt({"sub": "alice"}) + ".x", id="fourth-part"),
        pytest.param(jwt({"sub": "alice"}) + " x", id="space-inside"),
        pytest.param(jwt({"iss": "x"}), id="no-sub"),
        pytest.param(jwt({"sub": ""}), id="empty-sub"),
        pytest.param(jwt({"sub": 5}), id="sub-not-string"),
        pytest.param("opaque", id="opaque"),
        pytest.param("a.b.c", id="not-base64-json"),
        pytest.param("\u00e9.\u00e9.\u00e9", id="non-ascii-parts"),
    ],
)
def test_secret_rejects(token):
    with pytest.raises(Unauthorized) as caught:
        signed(bearer(token))
    assert token not in caught.value.message
    assert "\n" not in caught.value.message


def test_secret_rejects_tampered_claims():
    head, _, signature = jwt({"sub": "alice"}).split(".")
    forged = f"{head}.{b64url(json.dumps({'sub': 'mallory'}).encode())}.{signature}"
    with pytest.raises(Unauthorized, match="signature"):
        signed(bearer(forged))


@pytest.mark.parametrize(
    ("token", "says"),
    [
        (jwt({"sub": "alice"}, secret="wrong"), "signature"),
        (jwt({"sub": "alice", "exp": 1}), "expired"),
        (jwt({"sub": "alice", "nbf": 4_000_000_000}), "not valid yet"),
        (jwt({"sub": "alice"}, alg="none"), "HS256"),
        (jwt({"name": "alice"}), "`sub`"),
        (jwt({"sub": "alice"}) + "!!", "base64url"),
    ],
)
def test_each_refusal_says_what_is_wrong(token, says):
    with pytest.raises(Unauthorized, match=says):
        signed(bearer(token))


def test_a_broken_token_does_not_spoil_its_header_for_the_next():
    auth = Auth(Settings(jwt_secret="s"))
    head, _, signature = jwt({"sub": "alice"}).split(".")
    with pytest.raises(Unauthorized, match="cannot be read"):
        auth.tenant_of(bearer(f"{head}.A.{signature}"))  # a payload of one base64 character
    assert auth.tenant_of(bearer(jwt({"sub": "alice"}))) == sandbox.auth.tenant_key("jwt:alice")


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
@pytest.mark.parametrize("claim", ["exp", "nbf"])
def test_secret_rejects_non_finite_times(claim, value):
    with pytest.raises(Unauthorized):
        signed(bearer(jwt(b'{"sub": "alice", "%s": %s}' % (claim.encode(), value))))


# -- configuration -------------------------------------------------------------------------------

PEM = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"


@pytest.mark.parametrize("secret", [PEM, '{"kty": "oct", "k": "c2VjcmV0"}'])
def test_a_key_given_as_the_secret_is_a_config_error(secret):
    with pytest.raises(ConfigError, match="--jwt-secret"):
        Auth(Settings(jwt_secret=secret))


@pytest.mark.parametrize("flag", [{"jwt_audience": "api"}, {"jwt_issuer": "https://issuer.test"}])
def test_audience_or_issuer_without_verification_is_a_config_error(flag):
    with pytest.raises(ConfigError, match="--jwt-secret or --jwks"):
        Auth(Settings(**flag))


# -- what the Auth object keeps ------------------------------------------------------------------


def strings_kept(auth: Auth) -> list[str]:
    """Every str (and bytes, as latin-1) reachable from `auth` and from the auth module's globals,
    not descending into other modules or foreign classes: the memory a token could be left in."""
    stack: list[Any] = [auth, *vars(sandbox.auth).values()]
    seen: set[int] = set()
    found: list[str] = []
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, types.ModuleType):
            continue
        if isinstance(obj, type) and obj.__module__ != sandbox.auth.__name__:
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            found.append(obj)
        elif isinstance(obj, bytes):
            found.append(obj.decode("latin-1"))
        else:
            stack.extend(gc.get_referents(obj))
    return found


@pytest.mark.parametrize("settings", [Settings(), Settings(jwt_secret="s")], ids=["plain", "secret"])
def test_no_token_is_kept_after_use(settings):
    auth = Auth(settings)
    secret = uuid.uuid4().hex
    opaque, token = f"sk_test_{secret}", jwt({"sub": "alice", "jti": secret})
    for header in (bearer(opaque), bearer(token), "bEaReR  " + token):
        with contextlib.suppress(Unauthorized):  # the opaque token, under a secret
            auth.tenant_of(header)
    assert not [kept for kept in strings_kept(auth) if secret in kept or token.split(".")[2] in kept]


@pytest.mark.parametrize(
    "token", [lambda n: jwt({"sub": f"user-{n}"}), lambda n: f"sk_test_{n}"], ids=["jwt", "opaque"]
)
def test_the_memo_of_tenants_is_bounded(token):
    auth = Auth(Settings())
    for number in range(6000):
        assert auth.tenant_of(bearer(token(number))) == PLAIN.tenant_of(bearer(token(number)))
    largest = max((len(value) for value in vars(auth).values() if isinstance(value, (dict, list, set))), default=0)
    assert largest <= 4096  # the memo drops its oldest entries past 4096 tokens
