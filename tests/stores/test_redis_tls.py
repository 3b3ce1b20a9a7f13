"""`rediss://`: the Redis store over TLS, against a real redis-server listening with a certificate
made here (its own authority), through the store and through the installed CLI."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis_server import start_redis
from sandbox_server import SandboxProcess, free_port

from sandbox.models import Charge, Status
from sandbox.settings import Settings
from sandbox.stores import StoreUnavailable
from sandbox.stores.redis import RedisStore

KEY = "tn_tls"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, signed by its own key: (certificate, key) as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "redis.crt", folder / "redis.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A redis-server taking only TLS on a free port of 127.0.0.1: (port, its certificate)."""
    folder = tmp_path_factory.mktemp("tls-redis")
    cert, key = self_signed(folder)
    port = free_port()
    files = ["--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert)]
    tls = ssl.create_default_context(cafile=str(cert))
    proc = start_redis(port, folder, *files, "--tls-auth-clients", "no", tls=tls)
    try:
        yield port, cert
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def charge() -> Charge:
    return Charge(f"ch_{time.monotonic_ns()}", 0, 100, "USD", None, {}, Status.SUCCEEDED, 1_000_000.0)


def use(url: str) -> Charge | None:
    """Store a charge through a new store on `url` and read it back."""

    async def go() -> Charge | None:
        store = RedisStore(Settings(store=url))
        try:
            made = charge()
            await store.add_charge(KEY, made, None, None, [])
            return await store.charge(KEY, made.id)
        finally:
            await store.close()

    return asyncio.run(go())


def test_the_store_talks_tls_to_a_server_its_authority_vouches_for(tls_redis: tuple[int, Path]) -> None:
    port, cert = tls_redis
    found = use(f"rediss://127.0.0.1:{port}/2?ssl_ca_certs={cert}")
    assert found is not None
    assert found.amount == 100


def test_an_unknown_certificate_is_refused_unless_checks_are_turned_off(tls_redis: tuple[int, Path]) -> None:
    port, _ = tls_redis
    with pytest.raises(StoreUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        use(f"rediss://127.0.0.1:{port}/2")  # the system's authorities do not know this one
    assert use(f"rediss://127.0.0.1:{port}/2?ssl_cert_reqs=none") is not None


def test_plain_redis_to_a_tls_port_is_store_unavailable_not_a_hang(tls_redis: tuple[int, Path]) -> None:
    port, _ = tls_redis
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        use(f"redis://127.0.0.1:{port}/2")
    assert time.monotonic() - started < 12


def test_the_cli_serves_charges_from_a_tls_redis(
    tls_redis: tuple[int, Path], start_server: Callable[..., SandboxProcess]
) -> None:
    port, cert = tls_redis
    server = start_server("--store", f"rediss://127.0.0.1:{port}/3?ssl_ca_certs={cert}")
    with server.client(token="tls-cli") as client:
        made = client.post("/v1/payments/charge", json={"amount": 700, "currency": "EUR"})
        assert made.status_code == 200, made.text
        assert client.get(f"/v1/payments/charge/{made.json()['id']}").json()["amount"] == 700
        health = client.get("/__sandbox/health").json()
    assert health["store"]["kind"] == "redis"
    assert health["store"]["reachable"] is True
