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


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, noting when a request head or body began to arrive, so that
    `Server`'s sweep can close connections whose head is late and mark bodies that stall. A timer
    per request would cost every request a heap push and a cancellation; a note costs next to nothing."""

    head_since: float | None = None  # when the connection opened, or its next request began
    body_since: float | None = None  # when the head of a request with a body was complete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_since = self.loop.time()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.head_since is None:
            self.head_since = self.loop.time()  # the next request on a keep-alive connection

    def on_headers_complete(self) -> None:
        self.head_since = None
        super().on_headers_complete()
        for name, _ in self.headers:
            if name == b"content-length" or name == b"transfer-encoding":
                self.body_since = self.loop.time()
                break

    def on_message_complete(self) -> None:
        self.body_since = None
        super().on_message_complete()

    def check_deadlines(self, now: float, timeout: float) -> None:
        """Close the connection if its head is late; tell the app if its body has stalled."""
        if self.head_since is not None and now - self.head_since > timeout:
            self.head_since = None
            if not self.transport.is_closing():
                _log.debug("closing a connection that sent no whole request head in %g s", timeout)
                self.transport.close()
        if self.body_since is not None and now - self.body_since > timeout:
            self.body_since = None
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                cycle.scope[BODY_STALLED] = timeout  # type: ignore[literal-required]
                cycle.message_event.set()  # wakes the app's read, which sees the mark and answers 408


class Server(uvicorn.Server):
    """uvicorn's server, sweeping connections for late heads and stalled bodies, and ending
    scripted delays as soon as it is told to stop."""

    def __init__(self, config: uvicorn.Config, front: Front, timeout: float) -> None:
        super().__init__(config)
        self.front = front
        self.timeout = timeout
        self.loop: asyncio.AbstractEventLoop | None = None
        front.connections = self.server_state.connections

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        sweeper = self.loop.create_task(self._sweep())
        try:
            await super().serve(sockets)
        finally:
            sweeper.cancel()

    async def _sweep(self) -> None:
        # A deadline is met within a quarter of the timeout (at most a second) after it passes.
        interval = min(1.0, max(0.05, self.timeout / 4))
        assert self.loop is not None
        while True:
            await asyncio.sleep(interval)
            now = self.loop.time()
            for connection in list(self.server_state.connections):
                if isinstance(connection, DeadlineProtocol):
                    connection.check_deadlines(now, self.timeout)

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
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=DeadlineProtocol,
        log_level=settings.log_level,
        access_log=access_log,
        lifespan="off",
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    _allow_open_files(settings.limit_concurrency)
    server = Server(config, app, settings.header_timeout)
    # uvicorn re-raises the signal that stopped it once it has shut down; with these handlers in
    # place that re-raise is a no-op, so Ctrl-C and SIGTERM end the process with exit code 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    server.run()
    return 0 if server.started else 1
