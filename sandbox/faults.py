"""Network faults on purpose: how each reaches the client, and what the journal keeps of it.

A scenario rule's `then.fault` replaces the sending of its answer (the charge or refund was stored
first when `commit: true`). The journal keeps what the client was sent: status 0 and no body when
not a byte went out, half the body when it was cut, the broken body when it was malformed.

Cutting a connection needs the server's hold of it, which the server puts in the scope under
`CONNECTION` (server.py). An in-process client (httpx.ASGITransport, Starlette's TestClient) has no
connection: it gets nothing for a reset or an empty response, so faults are for a real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

from starlette.types import Scope, Send

from sandbox.models import Fault, FaultKind
from sandbox.wire import head

CONNECTION = "sandbox.connection"  # the scope key of the request's `Connection`
_NOTHING_SENT = frozenset({FaultKind.CONNECTION_RESET, FaultKind.EMPTY_RESPONSE})
_TICK = 1.0  # seconds between the pieces of a slow body: a read timeout under it fires


class Connection(Protocol):
    """What the server lets a fault do to the request's connection."""

    def reset(self) -> None:
        """Drop the connection with an RST; nothing queued is sent."""

    def hang_up(self) -> None:
        """Close the connection once what was sent so far has gone out."""

    def gone(self) -> bool:
        """Whether the connection is closed or closing (the client may have left)."""


def sent(fault: Fault, status: int, content: bytes) -> tuple[int, bytes]:
    """What the client gets of an answer: the status it sees (0: none) and the bytes of the body."""
    if fault.kind in _NOTHING_SENT:
        return 0, b""
    if fault.kind == FaultKind.TRUNCATED_BODY:
        return status, content[: len(content) // 2]
    if fault.kind == FaultKind.MALFORMED_JSON:
        # A trailing comma: every JSON parser refuses it, and a person reading the body still can.
        return status, content[:-1] + b",}" if content.endswith(b"}") else content + b","
    return status, content


async def deliver(
    fault: Fault,
    scope: Scope,
    send: Send,
    status: int,
    body: bytes,
    length: int,
    request_id: str | None,
    headers: dict[str, str],
    stopping: asyncio.Event,
) -> None:
    """Send `body` (what `sent` left of the answer) with the fault; a cut body's head announces `length` bytes."""
    connection: Connection | None = scope.get(CONNECTION)
    if fault.kind in _NOTHING_SENT:
        if connection is not None:
            connection.reset() if fault.kind == FaultKind.CONNECTION_RESET else connection.hang_up()
        return
    cut = fault.kind == FaultKind.TRUNCATED_BODY
    await send(head(status, length if cut else len(body), request_id, headers))
    if cut:
        await send({"type": "http.response.body", "body": body, "more_body": True})
        if connection is not None:
            connection.hang_up()
        return
    if fault.kind == FaultKind.SLOW_BODY:
        await _trickle(send, body, fault.bytes_per_second, stopping, connection)
        return
    await send({"type": "http.response.body", "body": body})


async def _trickle(send: Send, body: bytes, rate: int, stopping: asyncio.Event, connection: Connection | None) -> None:
    """`body` at `rate` bytes a second, a piece every tick; the rest at once when the server stops,
    and nothing more once the client has left."""
    piece = max(1, int(rate * _TICK))
    began, offset = time.monotonic(), 0
    while offset < len(body) - piece and not stopping.is_set():
        if connection is not None and connection.gone():
            return
        await send({"type": "http.response.body", "body": body[offset : offset + piece], "more_body": True})
        offset += piece
        due = began + offset / rate - time.monotonic()
        if due > 0:
            with contextlib.suppress(TimeoutError):  # the next piece is due
                await asyncio.wait_for(stopping.wait(), due)
    await send({"type": "http.response.body", "body": body[offset:]})
