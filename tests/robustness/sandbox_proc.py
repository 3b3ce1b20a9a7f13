"""A raw HTTP/1.1 client for the robustness tests, beside the shared `sandbox_server`.

`exchange` sends bytes exactly as given (httpx refuses to send most of the hostile
corpus: lying Content-Length, broken chunking, invalid UTF-8 in the path...) and reads one
response, or notes that the server closed the connection without one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import socket
import threading
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sandbox_server import HOST

T = TypeVar("T")


def run_async(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`asyncio.run(scenario())` on a thread of its own.

    A fresh thread has no event loop, whatever the test session left running on the main one
    (Playwright's sync API keeps one there for the whole session, and asyncio.run refuses to
    start beside it).
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(scenario())).result()


# -- raw HTTP -------------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def build_request(
    method: bytes,
    target: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    *,
    content_length: bool = True,
) -> bytes:
    """Request bytes with `Host` and `Connection: close`; Content-Length from `body` unless told not."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: " + HOST.encode(), b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if content_length:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(*parts: bytes) -> bytes:
    """`parts` in chunked transfer coding, with the terminating chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def _parse(data: bytes) -> RawResponse | None:
    """The response in `data` once it is complete, else None."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = data[end + 4 :]
    length = headers.get("content-length")
    if length is None or len(body) < int(length):
        return None
    return RawResponse(status, headers, body[: int(length)])


def exchange(port: int, payload: bytes, *, timeout: float = 20.0) -> RawResponse | None:
    """Send `payload` on a new connection and read one response; None if the server closed first.

    The payload is written from a second thread while this one reads, so a server that answers
    before reading everything (413 on a declared length) is heard before it resets the connection.
    """
    sock = socket.create_connection((HOST, port), timeout=timeout)

    def send() -> None:
        # The server may answer and close before taking everything: the answer is what counts.
        with contextlib.suppress(OSError):
            sock.sendall(payload)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    data = b""
    try:
        while (response := _parse(data)) is None:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        response = _parse(data)
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes a sender blocked on a full buffer
        sock.close()
        sender.join(timeout)
    return response if response is not None else _parse(data)
