"""Slow and idle connections cannot hold the sandbox: heads that do not arrive in time are cut,
stalled bodies get 408, and connections over --limit-concurrency get 503 in the envelope.

A client here sends a request head a byte a second; the head would take minutes, so a connection
that the server closes while the client is still sending was closed by the head timeout.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable

import pytest
from sandbox_server import HOST, SandboxProcess

HEAD = (
    b"GET /v1/payments/charges HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer slow-client\r\n" + b"X: y\r\n" * 40
)


def trickle(port: int, outcome: list[str], give_up_after: float) -> None:
    """Send HEAD a byte per second; note whether the server closed the connection first."""
    with socket.create_connection((HOST, port), timeout=give_up_after) as sock:
        started = time.monotonic()
        for byte in HEAD:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                outcome.append("closed")
                return
            sock.settimeout(1.0)
            try:
                if sock.recv(1) == b"":
                    outcome.append("closed")
                    return
            except TimeoutError:
                pass
            except OSError:  # closed with bytes of ours unread: the kernel answers with a reset
                outcome.append("closed")
                return
            if time.monotonic() - started > give_up_after:
                outcome.append("still open")
                return
        outcome.append("head sent")


def three_slow_clients(port: int, give_up_after: float) -> list[str]:
    outcomes: list[str] = []
    threads = [threading.Thread(target=trickle, args=(port, outcomes, give_up_after)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_three_clients_sending_a_byte_a_second_are_cut_off(start_server: Callable[..., SandboxProcess]) -> None:
    server = start_server("--header-timeout", "2")
    assert three_slow_clients(server.port, give_up_after=30) == ["closed"] * 3
    assert server.healthy()


def test_the_default_head_timeout_cuts_them_off_too(sandbox: SandboxProcess) -> None:
    """The default is 10 s; the head takes about 300 s at a byte a second."""
    assert three_slow_clients(sandbox.port, give_up_after=60) == ["closed"] * 3
    assert sandbox.healthy()


def test_a_keep_alive_connection_can_wait_between_requests_within_the_limits(sandbox: SandboxProcess) -> None:
    with sandbox.client(token="keep-alive") as client:
        assert client.get("/v1/payments/charges").status_code == 200
        time.sleep(1)
        assert client.get("/v1/payments/charges").status_code == 200


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(sandbox: SandboxProcess) -> None:
    """uvicorn's keep-alive timeout (5 s), kept by the sandbox's once-a-second sweep."""
    with socket.create_connection((HOST, sandbox.port), timeout=30) as sock:
        sock.sendall(b"GET /__sandbox/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, _ = read_response(sock)
        answered = time.monotonic()
        assert status == 200
        assert sock.recv(1) == b""  # the server closed it
        idle = time.monotonic() - answered
    assert 4.5 <= idle <= 12, idle


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def test_a_stalled_body_gets_408_in_the_envelope(start_server: Callable[..., SandboxProcess]) -> None:
    server = start_server("--header-timeout", "1")
    with socket.create_connection((HOST, server.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/payments/charge HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer stalled\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" + b'{"amount": 15'
        )
        status, headers, body = read_response(sock)
    assert status == 408
    assert headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "request_timeout"
    with server.client(token="stalled") as client:
        assert client.get("/v1/payments/charges").json()["total"] == 0


@pytest.mark.parametrize("limit", [3])
def test_connections_over_the_limit_get_503_in_the_envelope(
    start_server: Callable[..., SandboxProcess], limit: int
) -> None:
    server = start_server("--limit-concurrency", str(limit))
    idle = [socket.create_connection((HOST, server.port), timeout=10) for _ in range(limit)]
    try:
        with socket.create_connection((HOST, server.port), timeout=10) as extra:
            extra.sendall(b"GET /__sandbox/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, headers, body = read_response(extra)
            assert status == 503
            assert json.loads(body)["error"]["code"] == "overloaded"
            assert headers["connection"] == "close"
            assert headers["retry-after"] == "1"
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 10
    while not server.healthy():  # the idle connections' closing reaches the server asynchronously
        assert time.monotonic() < deadline, "the sandbox did not recover once the connections closed"
        time.sleep(0.1)


def test_a_bad_limit_stops_the_cli(start_server: Callable[..., SandboxProcess]) -> None:
    from sandbox_server import run_cli

    for flag, value in (("--limit-concurrency", "0"), ("--header-timeout", "-1"), ("--header-timeout", "1e9")):
        result = run_cli("serve", "--port", "1", flag, value)
        assert result.returncode == 2, (flag, value)
        assert flag in result.stderr
