"""The HTTP server: uvicorn running the app in one process or `--workers N`, plus what uvicorn does
not do on its own.

- A connection that has not sent a whole request head within `--header-timeout` seconds is closed
  (uvicorn waits forever for a head sent a byte at a time), and a body that has not arrived in full
  that long after its head is answered 408 by the app. A keep-alive connection idle for uvicorn's
  keep-alive timeout (5 s) after an answer is closed too, within a second after that. The protocol
  notes when a head, a body or an idle spell began; one sweep a second per process checks the notes.
  uvicorn arms and cancels a timer for every answer instead (~2 us each with uvloop).
- An answer goes out in one write when its body follows its head in the same turn of the event
  loop, as the API's always does: uvicorn writes the head and the body apart, and each write is a
  send on the socket (the costliest step of a small answer here; bench/RESULTS.md). A write held
  back is sent at the end of the loop turn, by one callback for all the connections of that turn.
- Connections over `--limit-concurrency` are answered 503 in the error envelope by the app, which
  is handed uvicorn's own set of open connections (uvicorn's built-in limit answers plain text).
- With `--workers N`, uvicorn's supervisor starts N processes sharing the listening socket; each
  builds its own app from the settings handed down in the environment, and they share state
  through the store (the CLI refuses N > 1 with the memory store).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import resource
import signal
import socket
import struct
import weakref
from collections.abc import Collection
from dataclasses import fields
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sandbox.app import Front
from sandbox.faults import CONNECTION
from sandbox.settings import Settings
from sandbox.wire import BODY_STALLED

_log = logging.getLogger("sandbox")
_SETTINGS_ENV = "PAYMENTS_SANDBOX_WORKER_SETTINGS"  # how worker processes get the parent's settings


class Coalescing:
    """The transport as a request's cycle writes to it: a write is held until the next one, which
    is sent with it, or until the end of the loop turn it was made in, so that the head and body
    of an answer written one after the other go out in one send. Nothing waits longer than the
    turn it was written in, and the order of writes is kept."""

    __slots__ = ("_held", "_transport", "_turn")

    def __init__(self, transport: asyncio.Transport, turn: Turn) -> None:
        self._transport, self._turn = transport, turn
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = data
            self._turn.hold(self)
        else:
            self._held = None
            self._transport.write(held + data)

    def flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


class Turn:
    """The writers that held a write in this turn of an event loop: one callback, at the end of
    the turn, sends what each still holds (a callback per answer cost each answer ~0.5 us)."""

    __slots__ = ("_loop", "_writers")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._writers: list[Coalescing] = []

    def hold(self, writer: Coalescing) -> None:
        if not self._writers:
            self._loop.call_soon(self.flush)
        self._writers.append(writer)

    def flush(self) -> None:
        writers, self._writers = self._writers, []
        for writer in writers:
            writer.flush()  # nothing to send when its next write took the held one along


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Turn] = weakref.WeakKeyDictionary()


def _turn(loop: asyncio.AbstractEventLoop) -> Turn:
    turn = _turns.get(loop)
    if turn is None:
        turn = _turns[loop] = Turn(loop)
    return turn


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, noting when a request head or body began to arrive, and
    writing each answer through `Coalescing`."""

    head_since: float | None = None  # when the connection opened, or its next request began
    body_since: float | None = None  # when the head of a request with a body was complete
    idle_since: float | None = None  # when its last answer went out, until the next request begins
    writer: Coalescing

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.writer = Coalescing(transport, _turn(self.loop))
        self.head_since = self.loop.time()
        front = _front(self.app)
        if front is not None and front.connections is not self.connections:
            # The first connection of this process: hand the app the open connections, and watch them.
            front.connections = self.connections
            front.sweeper = self.loop.create_task(_sweep(self.connections, front.settings.header_timeout))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.idle_since = None
        if self.head_since is None:
            self.head_since = self.loop.time()  # the next request on a keep-alive connection

    def on_headers_complete(self) -> None:
        self.head_since = None
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = self.writer  # type: ignore[assignment]  # writes and closes, as uvicorn's cycle does
            self.cycle.scope[CONNECTION] = self  # type: ignore[literal-required]  # for faults on purpose
        for name, _ in self.headers:
            if name == b"content-length" or name == b"transfer-encoding":
                self.body_since = self.loop.time()
                break

    def on_message_complete(self) -> None:
        self.body_since = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self.pipeline:  # uvicorn starts the request that arrived meanwhile (and arms no timer)
            super().on_response_complete()
            return
        # uvicorn's steps for an answer with nothing after it, a note for the sweep instead of its timer
        self.server_state.total_requests += 1
        if not self.transport.is_closing():
            self.flow.resume_reading()
            self.idle_since = self.loop.time()

    # -- faults.Connection: what a scenario's network fault does to this connection -------------
    def reset(self) -> None:
        sock = self.transport.get_extra_info("socket")
        if sock is not None:  # linger on, timeout 0: closing sends an RST instead of a FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()
        self._gone()

    def hang_up(self) -> None:
        self.writer.flush()
        self.transport.close()  # after the data already queued has been written
        self._gone()

    def gone(self) -> bool:
        return self.transport.is_closing()

    def _gone(self) -> None:
        # uvicorn learns of the close a loop turn later; until then it would answer 500 for an app
        # that returned without a whole answer, so the cycle is told now.
        if self.cycle is not None:
            self.cycle.disconnected = True

    def check_deadlines(self, now: float, timeout: float) -> None:
        """Close the connection if its head is late or it has been idle too long; tell the app if
        its body has stalled."""
        if self.head_since is not None and now - self.head_since > timeout:
            self.head_since = None
            if not self.transport.is_closing():
                _log.debug("closing a connection that sent no whole request head in %g s", timeout)
                self.transport.close()
        if self.idle_since is not None and now - self.idle_since > self.timeout_keep_alive:
            self.idle_since = None
            if not self.transport.is_closing():
                self.transport.close()
        if self.body_since is not None and now - self.body_since > timeout:
            self.body_since = None
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                cycle.scope[BODY_STALLED] = timeout  # type: ignore[literal-required]
                cycle.message_event.set()  # wakes the app's read, which sees the mark and answers 408


def _front(app: Any) -> Front | None:
    """Our app inside whatever uvicorn wrapped it in."""
    while app is not None and not isinstance(app, Front):
        app = getattr(app, "app", None)
    return app


async def _sweep(connections: Collection[Any], timeout: float) -> None:
    # A deadline is met within a quarter of the timeout (at most a second) after it passes.
    interval = min(1.0, max(0.05, timeout / 4))
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        now = loop.time()
        for connection in list(connections):
            if isinstance(connection, DeadlineProtocol):
                connection.check_deadlines(now, timeout)


def _allow_open_files(connections: int) -> None:
    """Raise the soft limit on open files so that `connections` sockets fit (within the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections * 2 + 64  # a socket each, and room for over-limit ones being answered 503
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _collect_less_often() -> None:
    """A serving process's garbage collector looks at young objects every 10,000 allocations
    instead of 700: each answered POST leaves a few records alive (a charge, its event, a journal
    entry), and every pass over the young ones walks all of them; 700 cost a POST ~2.4 us, 10,000
    ~0.9 (bench/RESULTS.md). The records hold no reference cycles, so nothing waits longer to be freed."""
    gc.set_threshold(10_000, 50, 50)


def worker_app() -> Front:
    """The app of one worker process (`--workers N`), from the settings its parent handed down."""
    from sandbox.app import create_app

    _collect_less_often()

    raw = json.loads(os.environ[_SETTINGS_ENV])
    paths = {"spec": Path(raw["spec"]), "scenarios": tuple(Path(p) for p in raw["scenarios"])}
    tuples = {name: tuple(raw[name]) for name in ("allowed_hosts", "webhook_urls", "webhook_allow_hosts")}
    return create_app(Settings(**{**raw, **paths, **tuples}))


def run(app: Front, settings: Settings, access_log: bool) -> int:
    """Serve until SIGTERM/SIGINT; the exit code."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": DeadlineProtocol,
        "log_level": settings.log_level,
        "access_log": access_log,
        "lifespan": "on",
        "proxy_headers": False,  # the sandbox is reached directly; X-Forwarded-* are not trusted
        "timeout_graceful_shutdown": 30,
        "server_header": False,
    }
    _allow_open_files(settings.limit_concurrency * settings.workers)
    # uvicorn re-raises the signal that stopped it once it has shut down; with these handlers in
    # place that re-raise is a no-op, so Ctrl-C and SIGTERM end the process with exit code 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    if settings.workers == 1:
        _collect_less_often()
        server = uvicorn.Server(uvicorn.Config(app, **options))
        server.run()
        return 0 if server.started else 1
    os.environ[_SETTINGS_ENV] = json.dumps({f.name: _plain(getattr(settings, f.name)) for f in fields(settings)})
    config = uvicorn.Config("sandbox.server:worker_app", factory=True, workers=settings.workers, **options)
    from uvicorn.supervisors import Multiprocess

    Multiprocess(config, sockets=[config.bind_socket()]).run()
    return 0


def _plain(value: Any) -> Any:
    """A setting as JSON: paths as text, tuples as lists."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value
