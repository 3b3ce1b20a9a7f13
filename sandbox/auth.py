"""Who is calling: the tenant named by an `Authorization: Bearer` header.

This module owns reading the bearer token, the tenant key made from it, and JWT verification, which
PyJWT does. Without --jwt-secret and --jwks nothing is verified: the tenant is the token itself or,
for a JWT, its `sub` claim, so that a client refreshing its JWT keeps its data. With either, only a
JWT that verifies gets in (HS256 with the secret; an asymmetric algorithm with a key of the local
JSON Web Key Set, picked by `kid`; `exp`/`nbf` with --jwt-leeway, `aud`/`iss` when configured, a
`sub`), and its tenant is its `sub`.

PyJWT and `cryptography` take ~0.13 s to import, half the server's cold start, so `jwt` is imported
only once a secret or key set is configured or a JWT-shaped token arrives.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sandbox.errors import ConfigError, Unauthorized
from sandbox.settings import Settings

if TYPE_CHECKING:
    from jwt import PyJWK, PyJWTError
    from jwt.types import Options

T = TypeVar("T")
K = TypeVar("K")

# A compact JWS is exactly three base64url parts. Checked here because PyJWT accepts `=` padding
# and Python's base64 decoder drops characters outside the alphabet. An empty signature passes the
# shape (unsigned dev tokens name a tenant when nothing is verified) and then fails verification.
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Memos are keyed by a digest (a sha256 of a token or of a JWT's header part, or a header's hash),
# never by the text itself, and bounded: a header may be 16 KiB.
_MEMO_SIZE = 4096
# What a public key of each type can verify; a JWK's own `alg` narrows it to one. None lets PyJWT
# pick an EC key's one algorithm from its curve. HMAC is absent: a public key is no shared secret.
_SIGNING = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "EC": ("ES256", "ES256K", "ES384", "ES512"),
    "OKP": ("EdDSA",),
}
_DEFAULT_ALGS: dict[str, tuple[str | None, ...]] = {"RSA": _SIGNING["RSA"], "EC": (None,), "OKP": ("EdDSA",)}
_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth"}
_ASYMMETRIC = {alg for algs in _SIGNING.values() for alg in algs}
_ALG_NAMES = {"none", "HS256", "HS384", "HS512", *_ASYMMETRIC}
_NO_SUB = "The JWT has no `sub` claim naming the tenant; issue it with a non-empty string `sub`."
_UNREADABLE = (
    "The JWT cannot be read: its header and payload must be base64url JSON objects and `exp`/`nbf` numbers; "
    "re-issue it."
)


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
        self._audience, self._issuer, self._leeway = settings.jwt_audience, settings.jwt_issuer, settings.jwt_leeway
        self._secret = _secret_key(settings.jwt_secret) if settings.jwt_secret is not None else None
        self._jwks = _load_jwks(settings.jwks) if settings.jwks is not None else None
        self._verifies = self._secret is not None or self._jwks is not None
        accepted = ["HS256 signed with its --jwt-secret"] if self._secret is not None else []
        if self._jwks is not None:
            algs = sorted({alg for keys in self._jwks.values() for alg in keys})
            accepted.append(f"{', '.join(algs)} signed by a key of its --jwks")
        self._accepted = " or ".join(accepted)
        if not self._verifies and (self._audience is not None or self._issuer is not None):
            raise ConfigError("--jwt-audience and --jwt-issuer apply to verified JWTs; add --jwt-secret or --jwks.")
        # PyJWT refuses a token with an `aud` when no audience is expected: check `aud` only if asked.
        self._options: Options = {"require": ["sub"], "verify_aud": self._audience is not None}
        self._tenants: dict[bytes, str] = {}  # unverified JWT -> tenant (no clock involved)
        # Unverified headers -> tenant, keyed by Python's own keyed hash of the header (SipHash, 64
        # bits: two headers of a 4,096-entry memo share one about once in 10^12 processes), so that
        # the usual call skips parsing and sha256. Not with verification: a JWT's `exp` moves on.
        self._headers: dict[int, str] = {}
        self._keys: dict[bytes, tuple[PyJWK, str] | str] = {}  # JWT header part -> its key, or a refusal

    def tenant_of(self, authorization: str | None) -> str:
        """The tenant key for a request, or Unauthorized."""
        if self._verifies or not authorization:
            return self._tenant_of(authorization)
        tenant = self._headers.get(hash(authorization))
        if tenant is None:
            tenant = _remember(self._headers, hash(authorization), self._tenant_of(authorization))
        return tenant

    def _tenant_of(self, authorization: str | None) -> str:
        token = bearer_token(authorization)
        if token is None:
            what = "Missing" if not authorization else "Malformed"
            raise Unauthorized(f"{what} Authorization header; send `Authorization: Bearer <token>`.")
        if self._verifies:
            return tenant_key("jwt:" + self._verified_sub(token))
        if not _JWT_SHAPE.fullmatch(token):
            # Prefixed so that no opaque token (say "jwt:alice") can name a JWT user's tenant.
            return tenant_key("token:" + token)
        digest = hashlib.sha256(token.encode()).digest()
        tenant = self._tenants.get(digest)
        if tenant is None:
            sub = _unverified_sub(token)
            tenant = _remember(self._tenants, digest, tenant_key("jwt:" + sub if sub else "token:" + token))
        return tenant

    def _verified_sub(self, token: str) -> str:
        import jwt

        if not _JWT_SHAPE.fullmatch(token):
            raise Unauthorized(
                "This sandbox verifies JWTs and the bearer token is not one: send header.payload.signature, "
                "three base64url parts with nothing after the signature."
            )
        key, signer = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                options=self._options,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(self._refusal(exc, signer)) from None
        sub = claims["sub"]  # PyJWT checked it is there and a string
        if not sub:
            raise Unauthorized(_NO_SUB)
        return str(sub)

    def _key_for(self, token: str) -> tuple[PyJWK, str]:
        """The configured key that must have signed `token` (and its name), or Unauthorized."""
        import jwt

        # PyJWT's header parse is slow and an issuer's headers repeat: remember the outcome (a key
        # or a refusal, never the header itself) by a digest of the header part.
        digest = hashlib.sha256(token.partition(".")[0].encode()).digest()
        found = self._keys.get(digest)
        if found is None:
            try:
                header = jwt.get_unverified_header(token)
            except jwt.PyJWTError:
                raise Unauthorized(_UNREADABLE) from None  # not remembered: the fault may be past the header
            found = _remember(self._keys, digest, self._pick_key(header))
        if isinstance(found, str):
            raise Unauthorized(found)
        return found

    def _pick_key(self, header: dict[str, Any]) -> tuple[PyJWK, str] | str:
        """The key a JWT header names, or why none may verify it (from the header alone)."""
        alg, kid = header.get("alg"), header.get("kid")  # PyJWT checked that a kid is a string
        if alg == "HS256" and self._secret is not None:
            return self._secret, "this sandbox's --jwt-secret"
        shown = repr(alg) if isinstance(alg, str) and alg in _ALG_NAMES else "not one PyJWT knows"
        if self._jwks is None or not isinstance(alg, str) or alg not in _ASYMMETRIC:
            return f"The JWT's `alg` is {shown}; this sandbox takes {self._accepted}."
        if kid is None and len(self._jwks) > 1:
            return "The JWT has no `kid` header and --jwks holds several keys; name the signing key's kid."
        keys = next(iter(self._jwks.values())) if kid is None else self._jwks.get(kid)
        if keys is None:
            return "The JWT's `kid` names no key of this sandbox's --jwks file; sign with one of its keys."
        if alg not in keys:
            return f"The JWT's `alg` is {shown}, but its --jwks key verifies only {', '.join(keys)}."
        return keys[alg], f"the --jwks key {kid!r}" if kid is not None else "the --jwks key"

    def _refusal(self, exc: PyJWTError, signer: str) -> str:
        """One line saying what is wrong with a JWT and how to fix it (PyJWT's own may quote the token)."""
        import jwt
        from jwt.exceptions import InvalidSubjectError

        missing = exc.claim if isinstance(exc, jwt.MissingRequiredClaimError) else None
        skew = "or allow clock skew with --jwt-leeway SECONDS"
        if isinstance(exc, jwt.InvalidSignatureError):
            return f"The JWT's signature does not verify with {signer}; sign the token with that key."
        if isinstance(exc, jwt.ExpiredSignatureError):
            return f"The JWT has expired (`exp` is past); get a fresh one, {skew}."
        if isinstance(exc, jwt.ImmatureSignatureError):
            return f"The JWT is not valid yet (`nbf` or `iat` is in the future); wait, {skew}."
        if isinstance(exc, jwt.InvalidAudienceError) or missing == "aud":
            return f"The JWT's `aud` claim must name {self._audience!r} (--jwt-audience); issue it for that audience."
        if isinstance(exc, jwt.InvalidIssuerError) or missing == "iss":
            return f"The JWT's `iss` claim must be {self._issuer!r} (--jwt-issuer); use a token from that issuer."
        if isinstance(exc, InvalidSubjectError) or missing == "sub":
            return _NO_SUB
        if isinstance(exc, jwt.InvalidIssuedAtError):
            return "The JWT's `iat` claim is not a number; issue it with seconds since the epoch."
        if isinstance(exc, jwt.DecodeError):  # also a non-numeric (or NaN, infinite) `exp` or `nbf`
            return _UNREADABLE
        return "The JWT is not valid (a header or claim PyJWT refuses, such as `crit` or `jti`); re-issue it."


def tenant_of(authorization: str | None, jwt_secret: str | None = None) -> str:
    """`Auth(Settings(jwt_secret=...)).tenant_of(authorization)`, for tools without an Auth at hand
    (tests/browser/harness.py names a tenant with it); the server builds its one Auth at start."""
    return Auth(Settings(jwt_secret=jwt_secret)).tenant_of(authorization)


def _remember(memo: dict[K, T], digest: K, value: T) -> T:
    if len(memo) >= _MEMO_SIZE:
        del memo[next(iter(memo))]  # the oldest: dicts keep insertion order
    memo[digest] = value
    return value


def _unverified_sub(token: str) -> str | None:
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None  # not a JWT after all: the token itself names the tenant
    sub = claims.get("sub")
    return sub if isinstance(sub, str) and sub else None


def _secret_key(secret: str) -> PyJWK:
    """--jwt-secret as an HS256 key, checked once here instead of by PyJWT on every request."""
    from jwt import InvalidKeyError, PyJWK
    from jwt.algorithms import HMACAlgorithm

    class CheckedSecret(HMACAlgorithm):
        def prepare_key(self, key: str | bytes) -> bytes:
            return key if isinstance(key, bytes) else key.encode()

        def check_key_length(self, key: bytes) -> str | None:
            return None  # a sandbox secret is a test fixture, often short: no warning per request

    raw = secret.encode("utf-8", "surrogateescape")  # the bytes given on the command line
    try:
        HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(raw)  # refuses a PEM/SSH/DER/JWK key as a secret
    except InvalidKeyError:
        raise ConfigError(
            "--jwt-secret looks like a public or private key, not a shared secret; pass the secret itself, "
            "or verify with public keys through --jwks."
        ) from None
    key = PyJWK({"kty": "oct", "k": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}, "HS256")
    key.Algorithm = CheckedSecret(HMACAlgorithm.SHA256)
    return key


def _load_jwks(path: Path) -> dict[str | None, dict[str, PyJWK]]:
    """The keys of a JSON Web Key Set file by `kid`, each under every algorithm it verifies."""
    from jwt import PyJWK, PyJWTError

    where = f"--jwks {path}"
    try:
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror}); give the path of a JWK Set file.") from None
    except (ValueError, RecursionError) as exc:
        what = f"line {exc.lineno} column {exc.colno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else exc
        raise ConfigError(f'{where}: not JSON ({what}); write a JWK Set: {{"keys": [{{"kty": ...}}]}}.') from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ConfigError(f'{where}: not a JWK Set; it must be an object with a non-empty "keys" list of public JWKs.')
    found: dict[str | None, dict[str, PyJWK]] = {}
    for number, jwk in enumerate(keys, 1):
        if not isinstance(jwk, dict):
            raise ConfigError(f'{where}: key {number} is not a JSON object; each item of "keys" must be a JWK.')
        kid, kty, alg = jwk.get("kid"), jwk.get("kty"), jwk.get("alg")
        name = f"{where}: key {number}" + (f" (kid {kid!r})" if kid is not None else "")
        if kid is not None and not isinstance(kid, str):
            raise ConfigError(f"{name}: `kid` must be a string; quote it.")
        if jwk.get("use", "sig") != "sig":
            continue  # an encryption key: it verifies no signature
        if kty == "oct":
            raise ConfigError(f"{name} is a shared secret (kty oct); --jwks takes public keys, --jwt-secret a secret.")
        if not isinstance(kty, str) or kty not in _SIGNING:
            raise ConfigError(f"{name} has kty {kty!r}, which verifies no signature here; use RSA, EC or OKP keys.")
        private = sorted(_PRIVATE_MEMBERS & jwk.keys())
        if private:
            raise ConfigError(f"{name} is a private key; delete its private members ({', '.join(private)}).")
        if alg is not None and alg not in _SIGNING[kty]:
            raise ConfigError(f"{name} has alg {alg!r}; kty {kty} signs {', '.join(_SIGNING[kty])}: fix or drop it.")
        try:
            loaded = [PyJWK(jwk, one) for one in ((alg,) if alg else _DEFAULT_ALGS[kty])]
            for key in loaded:
                key.Algorithm.prepare_key(key.key)  # e.g. an EC key whose curve is not its alg's
        except PyJWTError as exc:
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise ConfigError(f"{name}: PyJWT cannot load it ({reason}); fix the key or remove it.") from None
        if kid in found:
            other = "has the same kid" if kid is not None else "has no kid either"
            raise ConfigError(f"{name}: another key {other}; give each key its own kid.")
        found[kid] = {key.algorithm_name: key for key in loaded}
    if not found:
        raise ConfigError(f'{where}: no signing key (all are "use": "enc"); add the public key that signs the JWTs.')
    return found
