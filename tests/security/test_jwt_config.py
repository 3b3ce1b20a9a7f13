"""A bad --jwks file (or JWT flag) stops `payments-sandbox serve` before it serves anything.

Each case runs the real CLI, `python -m sandbox serve --port P --jwks FILE`, which must exit 2 with
one line on stderr, `payments-sandbox: error: --jwks FILE: what is wrong; the fix`, and no traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sandbox_server import free_port

TIMEOUT = 30.0  # a refused start takes well under a second; a server that starts never exits

# EC keys: made in a millisecond, where RSA keys would slow the collection of every run.
P256_PUBLIC = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), True)
P256_PRIVATE = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), True)
P384_PUBLIC = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key(), True)


def serve(*flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sandbox", "serve", "--port", str(free_port()), *flags]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the sandbox started instead of refusing {flags}:\n{exc.stderr!r}")


def assert_refused(result: subprocess.CompletedProcess[str], starts: str, says: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"payments-sandbox: error: {starts}"), lines[0]
    assert says in lines[0], lines[0]
    return lines[0]


def keys(*jwks: dict[str, Any]) -> str:
    return json.dumps({"keys": list(jwks)})


CASES = {
    "not-json": ("{not json", "not JSON (line 1 column 2"),
    "not-utf8": (b"\x80\x81\x82", "not JSON"),
    "a-list": ("[]", "not a JWK Set"),
    "no-keys": ('{"keys": []}', "not a JWK Set"),
    "keys-not-a-list": ('{"keys": {"kty": "RSA"}}', "not a JWK Set"),
    "key-not-an-object": ('{"keys": [1]}', "key 1 is not a JSON object"),
    "kid-not-a-string": (keys({**P256_PUBLIC, "kid": 7}), "`kid` must be a string"),
    "shared-secret": (keys({"kty": "oct", "k": "c2VjcmV0", "kid": "s"}), "key 1 (kid 's') is a shared secret"),
    "unknown-kty": (keys({"kty": "XYZ"}), "kty 'XYZ'"),
    "private-key": (keys(P256_PRIVATE), "is a private key; delete its private members (d)"),
    "bad-rsa-numbers": (keys({"kty": "RSA", "n": "AQAB", "e": "AQAB"}), "PyJWT cannot load it"),
    "unknown-curve": (keys({"kty": "EC", "crv": "P-999", "x": "AA", "y": "AA"}), "PyJWT cannot load it"),
    "x25519": (keys({"kty": "OKP", "crv": "X25519", "x": "AA"}), "PyJWT cannot load it"),
    "alg-of-another-kty": (keys({**P384_PUBLIC, "alg": "RS256"}), "alg 'RS256'"),
    "alg-of-another-curve": (keys({**P384_PUBLIC, "alg": "ES256"}), "PyJWT cannot load it"),
    "duplicate-kid": (keys({**P256_PUBLIC, "kid": "a"}, {**P384_PUBLIC, "kid": "a"}), "key 2 (kid 'a')"),
    "encryption-keys-only": (keys({**P256_PUBLIC, "use": "enc"}), "no signing key"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_jwks_file_stops_the_cli(tmp_path: Path, case: str) -> None:
    content, says = CASES[case]
    path = tmp_path / f"{case}.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert_refused(serve("--jwks", str(path)), f"--jwks {path}: ", says)


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_a_jwks_path_that_is_no_file_stops_the_cli(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "jwks.json"
    if kind == "folder":
        path.mkdir()
    assert_refused(serve("--jwks", str(path)), f"--jwks {path}: cannot read it", "JWK Set file")


def test_a_public_key_given_as_the_jwt_secret_stops_the_cli() -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----"
    assert_refused(serve("--jwt-secret", pem), "--jwt-secret looks like", "--jwks")


@pytest.mark.parametrize("flag", ["--jwt-audience", "--jwt-issuer"])
def test_a_claim_check_without_verification_stops_the_cli(flag: str) -> None:
    assert_refused(serve(flag, "value"), "--jwt-audience and --jwt-issuer", "add --jwt-secret or --jwks")
