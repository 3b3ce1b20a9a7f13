"""An answer goes out in one piece: its head and body in one TCP segment, not two (sandbox/server.py's
`Coalescing`; each write is a send, the costliest step of a small answer). Counted on the client's
socket by Linux's TCP_INFO (`tcpi_data_segs_in`), over the `tenant` fixture's real server."""

from __future__ import annotations

import socket
import struct
import sys
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="TCP_INFO's segment counts are Linux's")
_DATA_SEGS_IN = 152  # offset of tcpi_data_segs_in (u32) in struct tcp_info, Linux 4.6 and later


def data_segments_in(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    if len(info) < _DATA_SEGS_IN + 4:
        pytest.skip("this kernel's tcp_info has no data segment counts")
    (count,) = struct.unpack_from("I", info, _DATA_SEGS_IN)
    return int(count)


def exchange(sock: socket.socket, request: bytes) -> tuple[bytes, int]:
    """Send one request; its whole answer, and how many data segments it came in."""
    before = data_segments_in(sock)
    sock.sendall(request)
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += sock.recv(65536)
    head, _, body = raw.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body, data_segments_in(sock) - before


def test_each_answer_arrives_in_one_segment(tenant):
    url = urlsplit(str(tenant.http.base_url))
    auth = f"Authorization: Bearer {tenant.token}\r\nHost: {url.netloc}\r\n".encode()
    charge = b'{"amount":1500,"currency":"USD"}'
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        answer, segments = exchange(
            sock,
            b"POST /v1/payments/charge HTTP/1.1\r\n" + auth + b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (len(charge), charge),
        )
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert segments == 1
        charge_id = answer.split(b'"id":"')[1].split(b'"')[0].decode()
        for path, status in ((f"/v1/payments/charge/{charge_id}", 200), ("/v1/payments/charge/ch_missing", 404)):
            answer, segments = exchange(sock, f"GET {path} HTTP/1.1\r\n".encode() + auth + b"\r\n")
            assert answer.startswith(b"HTTP/1.1 %d " % status)
            assert segments == 1
        answer, segments = exchange(sock, b"GET /__sandbox/health HTTP/1.1\r\n" + auth + b"\r\n")  # Starlette's side
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert segments == 1
