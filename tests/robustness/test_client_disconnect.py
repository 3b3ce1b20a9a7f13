"""Clients that break off in the middle of a request body: a stalled upload, or chunked framing
that uvicorn gives up on after the app has started reading.

They must not hold up anyone else, must store nothing, and must leave the server healthy; and a
client going away is not a server error, so the log should not report one.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from uuid import uuid4

import pytest
from sandbox_proc import chunked, exchange
from sandbox_server import API, HOST, SandboxProcess

VALID = b'{"amount":1500,"currency":"USD"}'


def _post_head(token: bytes, framing: bytes) -> bytes:
    return (
        b"POST " + API.encode() + b"/charge HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nConnection: close\r\n"
        b"Authorization: Bearer " + token + b"\r\nContent-Type: application/json\r\n" + framing + b"\r\n"
    )


# Framing that uvicorn (httptools) rejects only once the body arrives, after the app has started.
BROKEN_FRAMING = {
    "chunk-size-not-hex": (b"Transfer-Encoding: chunked\r\n", b"zz\r\n" + VALID + b"\r\n0\r\n\r\n"),
    "chunk-size-lies": (b"Transfer-Encoding: chunked\r\n", b"5\r\n" + VALID + b"\r\n0\r\n\r\n"),
    "transfer-encoding-gzip": (b"Transfer-Encoding: gzip\r\n", VALID),
    "chunked-without-end": (b"Transfer-Encoding: chunked\r\n", chunked(VALID)[:-5]),
}


def _total(server: SandboxProcess, token: bytes) -> int:
    with server.client(token.decode()) as client:
        response = client.get(f"{API}/charges")
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def _break_framing(server: SandboxProcess, name: str, token: bytes) -> None:
    framing, body = BROKEN_FRAMING[name]
    if name == "chunked-without-end":
        with socket.create_connection((HOST, server.port), timeout=10) as sock:
            sock.sendall(_post_head(token, framing) + body)
        return
    response = exchange(server.port, _post_head(token, framing) + body)
    assert response is None or 400 <= response.status < 500, response


def _stall(server: SandboxProcess, token: bytes) -> None:
    """Declare 100 bytes, send 10, and meanwhile check that another client is served."""
    with socket.create_connection((HOST, server.port), timeout=10) as stalled:
        stalled.sendall(_post_head(token, b"Content-Length: 100\r\n") + VALID[:10])
        with server.client(f"other-{uuid4().hex}") as client:
            created = client.post(f"{API}/charge", json={"amount": 1500, "currency": "USD"})
            assert created.status_code == 200, created.text
            assert client.get(f"{API}/charges").json()["total"] == 1
        assert server.healthy()


@pytest.mark.parametrize("name", [*BROKEN_FRAMING, "stalled-body"])
def test_a_client_breaking_off_mid_body_stores_nothing_and_blocks_no_one(
    start_server: Callable[..., SandboxProcess], name: str
) -> None:
    server = start_server(check_log=False)  # the log is test_..._is_not_a_server_error's business
    token = f"broken-{uuid4().hex}".encode()

    if name == "stalled-body":
        _stall(server, token)
    else:
        _break_framing(server, name, token)

    assert _total(server, token) == 0
    assert server.healthy()
    assert server.stop() == 0


def test_a_client_breaking_off_mid_body_is_not_a_server_error(start_server: Callable[..., SandboxProcess]) -> None:
    server = start_server(check_log=False)
    for name in BROKEN_FRAMING:
        _break_framing(server, name, f"broken-{uuid4().hex}".encode())
    _stall(server, f"stalled-{uuid4().hex}".encode())
    assert server.healthy()

    assert server.stop() == 0
    log = server.log()
    assert "Exception in ASGI application" not in log, log
    assert "Traceback" not in log, log
