"""Helpers shared by several test suites (tests/ is on the import path: `from helpers import jwt`).

JWTs are built by hand here, not with PyJWT, so that the tests pin the wire format, including
tokens no library would write: NaN claims, a header that is not an object, a PEM as the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any


def b64url(raw: bytes) -> str:
    """base64url without padding, as JWTs write it."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(claims: Any, secret: str | bytes = "s", alg: str = "HS256", header: Any = None) -> str:
    """A JWT of `claims` signed with HMAC-SHA256 under `secret`, whatever `alg` the header names.

    `claims` given as bytes are the payload as is (for JSON that `json.dumps` cannot write);
    `header`, when given, replaces the usual `{"alg": alg, "typ": "JWT"}`.
    """
    head = b64url(json.dumps(header if header is not None else {"alg": alg, "typ": "JWT"}).encode())
    body = b64url(claims if isinstance(claims, bytes) else json.dumps(claims).encode())
    key = secret.encode() if isinstance(secret, str) else secret
    signature = b64url(hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{signature}"
