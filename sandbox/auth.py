"""Who is calling: the tenant named by an `Authorization: Bearer` header.

The tenant is the token itself, or, for a JWT, its `sub` claim, so that a client refreshing its
JWT keeps its data. With a JWT secret configured, only HS256 JWTs signed with it and not expired
are accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from functools import lru_cache
from typing import Any

from sandbox.errors import Unauthorized
from sandbox.settings import Settings


@lru_cache(maxsize=4096)
def tenant_key(tenant: str) -> str:
    """The stored name of a tenant: a hash, so that no bearer token is kept in clear."""
    return "tn_" + hashlib.sha256(tenant.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class Auth:
    """Names the tenant of a request from its `Authorization` header, as the settings say."""

    def __init__(self, settings: Settings) -> None:
        self.jwt_secret = settings.jwt_secret

    def tenant_of(self, authorization: str | None) -> str:
        """The tenant key for a request, or Unauthorized."""
        return tenant_of(authorization, self.jwt_secret)


def tenant_of(authorization: str | None, jwt_secret: str | None) -> str:
    """The tenant key for a request, or Unauthorized."""
    if jwt_secret is None:
        return _unverified_tenant(authorization)
    return _tenant(authorization, jwt_secret)


@lru_cache(maxsize=4096)
def _unverified_tenant(authorization: str | None) -> str:
    # Without a secret nothing is verified (no signature, no `exp`), so the answer depends on the
    # header alone and is worth keeping: every request asks. Refusals raise and are not cached.
    return _tenant(authorization, None)


def _tenant(authorization: str | None, jwt_secret: str | None) -> str:
    token = bearer_token(authorization)
    if token is None:
        what = "Missing" if not authorization else "Malformed"
        raise Unauthorized(f"{what} Authorization header; send `Authorization: Bearer <token>`.")
    parts = token.split(".")
    claims = _claims(parts) if len(parts) == 3 else None
    if jwt_secret is not None:
        if claims is None:
            raise Unauthorized("This sandbox requires a JWT signed with HS256 by its --jwt-secret.")
        _verify(parts, claims, jwt_secret)
    sub = claims.get("sub") if claims else None
    if isinstance(sub, str) and sub:
        return tenant_key("jwt:" + sub)
    if jwt_secret is not None:
        raise Unauthorized("The JWT has no `sub` claim naming the tenant.")
    # Prefixed so that no opaque token (say "jwt:alice") can name a JWT user's tenant.
    return tenant_key("token:" + token)


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN would make every `exp` comparison false


def _claims(parts: list[str]) -> dict[str, Any] | None:
    try:
        header = json.loads(_b64(parts[0]), parse_constant=_no_constant)
        claims = json.loads(_b64(parts[1]), parse_constant=_no_constant)
    except (ValueError, binascii.Error, RecursionError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    claims["__alg"] = header.get("alg")
    return claims


def _verify(parts: list[str], claims: dict[str, Any], secret: str) -> None:
    if claims.get("__alg") != "HS256":
        raise Unauthorized("The JWT must be signed with HS256.")
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    try:
        signature = _b64(parts[2])
    except (ValueError, binascii.Error):
        signature = b""
    if not hmac.compare_digest(expected, signature):
        raise Unauthorized("The JWT signature does not verify with this sandbox's --jwt-secret.")
    exp = claims.get("exp")
    if exp is not None and (not isinstance(exp, (int, float)) or isinstance(exp, bool) or exp <= time.time()):
        raise Unauthorized("The JWT has expired.")
