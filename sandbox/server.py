"""The HTTP server: uvicorn running the app, plus what uvicorn does not do on its own.

- A connection that has not sent a whole request head within `--header-timeout` seconds is closed
  (uvicorn closes idle keep-alive connections, but waits forever for a head sent a byte at a time),
  and a body that has not arrived in full that long after its head is answered 408 by the app.
- Connections over `--limit-concurrency` are answered 503 in the error envelope by the app, which
  is handed uvicorn's own set of open connections (uvicorn's built-in limit answers plain text).
- On SIGTERM/SIGINT, scripted delays end at once, so a request waiting out `delay_ms` (up to
  120 s) is answered before the server stops instead of being cut off; the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import socket
from types import FrameType

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sandbox.api import BODY_STALLED
from sandbox.app import Front
from sandbox.settings import Settings

_log = logging.getLogger("sandbox")


class HeadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose request head does not arrive in time,
    and telling the app (through the scope) when a body stalls."""

    head_timeout = 10.0
    _head_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # the next request on a keep-alive connection

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if any(name in (b"content-length", b"transfer-encoding") for name, _ in self.headers):
            self._body_timer = self.loop.call_later(self.head_timeout, self._body_stalled)

    def on_message_complete(self) -> None:
        self._disarm_body()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_body()
        super().connection_lost(exc)

    def _disarm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_stalled(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.scope[BODY_STALLED] = self.head_timeout  # type: ignore[literal-required]
            cycle.message_event.set()  # wakes the app's read, which sees the mark and answers 408

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            _log.debug("closing a connection that sent no whole request head in %g s", self.head_timeout)
            self.transport.close()


class Server(uvicorn.Server):
    """uvicorn's server, ending scripted delays as soon as it is told to stop."""

    def __init__(self, config: uvicorn.Config, front: Front) -> None:
        super().__init__(config)
        self.front = front
        self.loop: asyncio.AbstractEventLoop | None = None
        front.connections = self.server_state.connections

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.front.api.stopping.set)
        super().handle_exit(sig, frame)


def _allow_open_files(connections: int) -> None:
    """Raise the soft limit on open files so that `connections` sockets fit (within the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections * 2 + 64  # a socket each, and room for over-limit ones being answered 503
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run(app: Front, settings: Settings, access_log: bool) -> int:
    """Serve `app` until SIGTERM/SIGINT; the exit code."""
    protocol = type("Protocol", (HeadTimeoutProtocol,), {"head_timeout": settings.header_timeout})
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol,
        log_level=settings.log_level,
        access_log=access_log,
        lifespan="off",
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    _allow_open_files(settings.limit_concurrency)
    server = Server(config, app)
    # uvicorn re-raises the signal that stopped it once it has shut down; with these handlers in
    # place that re-raise is a no-op, so Ctrl-C and SIGTERM end the process with exit code 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    server.run()
    return 0 if server.started else 1
