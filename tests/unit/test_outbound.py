"""outbound.post, the sandbox's own HTTP/1.1 POST, against small servers on 127.0.0.1 that answer
as endpoints do: with a length, chunked, until close, slowly, or not as HTTP at all."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from sandbox.outbound import BODY_KEPT, BadAnswer, post

pytestmark = pytest.mark.anyio
Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], Awaitable[tuple[str, list[bytes]]]]]:
    """`await serve(answer)`: a server answering each connection with `answer`; its URL and the
    requests it read (head and body)."""
    servers: list[asyncio.Server] = []

    async def start(answer: Answer) -> tuple[str, list[bytes]]:
        seen: list[bytes] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
                         .split(b":")[1])  # fmt: skip
            seen.append(head + await reader.readexactly(length))
            try:
                await answer(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hooks/in?x=1", seen

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def answering(raw: bytes) -> Answer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()

    return answer


async def test_a_post_carries_the_body_and_headers_and_reads_the_answer(serve) -> None:
    url, seen = await serve(answering(b"HTTP/1.1 202 Accepted\r\nContent-Length: 5\r\n\r\nthanks"))
    status, answer, seconds = await post(url, b'{"a": 1}', {"Sandbox-Signature": "t=1,v1=ab"}, 5)
    assert (status, answer) == (202, b"thank")  # as long as Content-Length says
    assert seconds >= 0
    head = seen[0].decode()
    assert head.startswith("POST /hooks/in?x=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{url.split(':')[2].split('/')[0]}\r\n" in head
    assert "Connection: close\r\n" in head
    assert "Sandbox-Signature: t=1,v1=ab\r\n" in head
    assert head.endswith('\r\n\r\n{"a": 1}')


async def test_a_chunked_answer_is_read(serve) -> None:
    url, _ = await serve(
        answering(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
    )
    assert (await post(url, b"", {}, 5))[:2] == (200, b"abcde")


async def test_an_answer_until_close_is_read_and_a_long_one_cut(serve) -> None:
    url, _ = await serve(answering(b"HTTP/1.0 500 Oops\r\n\r\n" + b"x" * (BODY_KEPT * 3)))
    status, answer, _ = await post(url, b"", {}, 5)
    assert status == 500
    assert answer == b"x" * BODY_KEPT


async def test_user_info_becomes_basic_auth(serve) -> None:
    url, seen = await serve(answering(b"HTTP/1.1 204 No Content\r\n\r\n"))
    await post(url.replace("http://", "http://me:s%3Acret@"), b"", {}, 5)
    assert f"Authorization: Basic {base64.b64encode(b'me:s:cret').decode()}\r\n" in seen[0].decode()


@pytest.mark.parametrize(
    "raw", [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 abc\r\n\r\n", b"", b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000]
)
async def test_what_is_not_an_http_answer_is_a_bad_answer(serve, raw: bytes) -> None:
    url, _ = await serve(answering(raw))
    with pytest.raises(BadAnswer):
        await post(url, b"", {}, 5)


async def test_one_deadline_covers_the_whole_exchange(serve) -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            writer.write(b".")
            await writer.drain()
            await asyncio.sleep(0.1)

    url, _ = await serve(trickle)
    with pytest.raises(TimeoutError):
        await post(url, b"", {}, 0.5)


async def test_a_closed_port_is_a_refused_connection() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(ConnectionRefusedError):
        await post(f"http://127.0.0.1:{port}/", b"", {}, 5)
