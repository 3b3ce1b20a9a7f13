"""One pipelined connection to Redis: commands written as they come, replies handed back in order.

Redis answers the commands of one connection in the order they were sent, so a process needs one
connection: every call made in a turn of the event loop goes out in one write, and each reply, parsed
by hiredis as bytes arrive, goes to the call that is next in line. No task, pool or timer per call:
under load a request's round trip costs this process a packed command, a future and its share of
one write and one read.

A reply that does not come within `timeout` seconds (a frozen or overloaded server) fails every call
waiting on the connection, which is closed: a late reply never reaches the wrong call. A lost
connection fails its waiting calls the same way; the next call connects again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis
from redis.connection import parse_url

__all__ = ["Link", "LinkDown", "ReplyError", "pack"]


class ReplyError(Exception):
    """An error reply, as Redis wrote it ("NOSCRIPT No matching script...")."""

    @property
    def code(self) -> str:
        return str(self.args[0]).partition(" ")[0] if self.args else ""


class LinkDown(Exception):
    """No reply: Redis could not be reached, the connection broke, or the reply took too long
    (`timed_out`: the command may have been carried out)."""

    def __init__(self, detail: str, *, timed_out: bool = False) -> None:
        super().__init__(detail)
        self.timed_out = timed_out


def pack(command: Sequence[Any]) -> bytes:
    """A command in RESP, Redis's wire format: an array of bulk strings. hiredis packs it in C; a
    text it cannot encode (a lone surrogate, kept as the store's `_b` writes names) is packed here."""
    try:
        packed: bytes = hiredis.pack_command(tuple(command))
        return packed
    except UnicodeEncodeError:
        pass
    args = [arg if arg.__class__ is bytes else _arg(arg) for arg in command]
    return b"*%d\r\n" % len(args) + b"".join([b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in args])


def _arg(value: str | int | float) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return b"%d" % value if isinstance(value, int) else repr(value).encode()


class _Call:
    """A call waiting for its replies."""

    __slots__ = ("count", "future", "replies", "sent")

    def __init__(self, count: int, future: asyncio.Future[list[Any]], sent: float) -> None:
        self.count, self.future, self.sent = count, future, sent
        self.replies: list[Any] = []


class _Connection(asyncio.Protocol):
    """One connection's bytes: written in one go each turn, read into hiredis as they arrive."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.waiting: deque[_Call] = deque()
        self.out: list[bytes] = []
        self.timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass of asyncio's

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:  # never from a Redis server: give up this connection
                self.fail(LinkDown(f"Redis sent what is not RESP: {exc}"))
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self.fail(LinkDown("Redis sent a reply nobody was waiting for"))
                return
            call = waiting[0]
            call.replies.append(reply)
            if len(call.replies) == call.count:
                waiting.popleft()
                if not call.future.done():  # a caller that was cancelled meanwhile gets nothing
                    call.future.set_result(call.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(LinkDown(f"the connection to Redis was lost ({exc or 'closed by the server'})"))

    # -- calls ----------------------------------------------------------------------------------
    def send(self, packed: bytes, count: int) -> asyncio.Future[list[Any]]:
        future: asyncio.Future[list[Any]] = self.loop.create_future()
        if self.closed:
            future.set_exception(LinkDown("the connection to Redis was lost"))
            return future
        self.waiting.append(_Call(count, future, self.loop.time()))
        if not self.out:
            self.loop.call_soon(self.flush)
        self.out.append(packed)
        if self.timer is None:
            self.timer = self.loop.call_later(self.timeout, self.check)
        return future

    def flush(self) -> None:
        out, self.out = self.out, []
        if self.transport is not None and not self.closed:
            self.transport.write(b"".join(out))

    def check(self) -> None:
        """Every `timeout` at most while calls wait: the oldest waiting too long fails them all."""
        self.timer = None
        if not self.waiting or self.closed:
            return
        due = self.waiting[0].sent + self.timeout
        if due <= self.loop.time():
            self.fail(LinkDown(f"Redis did not answer within {self.timeout:g} s", timed_out=True))
        else:
            self.timer = self.loop.call_at(due, self.check)

    def fail(self, error: LinkDown) -> None:
        """Close the connection; every waiting call gets `error`."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        waiting, self.waiting = self.waiting, deque()
        for call in waiting:
            if not call.future.done():
                call.future.set_exception(error)


class Link:
    """The process's connection to the Redis of a `redis://` or `rediss://` URL, made on first use
    (no loop or server needed before that) and again after it is lost."""

    def __init__(self, url: str, *, timeout: float, connect_timeout: float) -> None:
        options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        self.host: str = options.get("host") or "localhost"
        self.port: int = int(options.get("port") or 6379)
        self.tls = _tls(options) if url.lower().startswith("rediss:") else None
        hello: list[tuple[Any, ...]] = []
        password, username = options.get("password"), options.get("username")
        if password is not None:
            hello.append(("AUTH", username, password) if username else ("AUTH", password))
        if int(options.get("db") or 0):
            hello.append(("SELECT", int(options["db"])))
        self.hello = hello
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self._connection: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None

    async def call(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The commands' replies (an error reply as a ReplyError), sent together and in order with
        every other call of this turn; LinkDown when there is no reply."""
        connection = self._connection
        if connection is None or connection.closed:
            connection = await self._connect()
        return await connection.send(b"".join([pack(command) for command in commands]), len(commands))

    async def _connect(self) -> _Connection:
        if self._connecting is None:  # the first caller connects; the others wait for it
            self._connecting = asyncio.ensure_future(self._open())
            # Its failure is raised to every caller waiting; retrieved here too, in case none is left.
            self._connecting.add_done_callback(lambda done: done.cancelled() or done.exception())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self.timeout),
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls is not None else None,
                )
            if self.hello:
                for reply in await connection.send(b"".join(map(pack, self.hello)), len(self.hello)):
                    if isinstance(reply, ReplyError):
                        connection.fail(LinkDown(f"Redis refused the connection's set-up: {reply}"))
                        raise LinkDown(f"Redis refused the connection's set-up: {reply}")
        except TimeoutError as exc:
            raise LinkDown(
                f"no connection to Redis at {self.host}:{self.port} within {self.connect_timeout:g} s"
            ) from exc
        except (OSError, ssl.SSLError) as exc:
            raise LinkDown(f"cannot connect to Redis at {self.host}:{self.port}: {exc}") from exc
        self._connection = connection
        return connection

    async def close(self) -> None:
        """Wait for the calls already sent (up to the timeout), then close the connection."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        waiting = [call.future for call in connection.waiting if not call.future.done()]
        if waiting:  # (a cancelled caller's future is done already; its reply still comes in order)
            await asyncio.wait(waiting, timeout=self.timeout)
        connection.fail(LinkDown("the store was closed"))


def _tls(options: dict[str, Any]) -> ssl.SSLContext:
    """The TLS settings of a `rediss://` URL's query (redis-py's names: ssl_cert_reqs, ssl_ca_certs,
    ssl_certfile, ssl_keyfile, ssl_check_hostname)."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    required = str(options.get("ssl_cert_reqs", "required")).lower()
    if options.get("ssl_check_hostname") in (False, "false", "False", "0") or required in ("none", "optional"):
        context.check_hostname = False
    if required == "none":
        context.verify_mode = ssl.CERT_NONE
    elif required == "optional":
        context.verify_mode = ssl.CERT_OPTIONAL
    return context
