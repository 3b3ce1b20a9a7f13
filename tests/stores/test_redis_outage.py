"""When Redis is away the Redis store answers StoreUnavailable (a 503 to clients), quickly, and it
recovers by itself when Redis is back: on a redis-server of this module's own, stopped, frozen and
restarted on the same port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis_server import start_redis
from sandbox_server import free_port

from sandbox.models import Charge, Status
from sandbox.settings import Settings
from sandbox.stores import StoreUnavailable, open_store
from sandbox.stores.redis import RedisStore, prefix
from sandbox.stores.redis_link import ReplyError

pytestmark = pytest.mark.anyio
KEY = "tn_outage"


class RedisProcess:
    """A redis-server on 127.0.0.1:`port` that a test can stop, freeze and start again."""

    def __init__(self, folder: Path, *options: str) -> None:
        self.port = free_port()
        self.folder = folder
        self.options = options
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_redis(self.port, self.folder, *self.options)

    def stop(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)  # in case a test froze it
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def store(redis_process: RedisProcess) -> AsyncIterator[RedisStore]:
    made = RedisStore(Settings(store=f"redis://127.0.0.1:{redis_process.port}/0"))
    try:
        yield made
    finally:
        await made.close()


def charge() -> Charge:
    return Charge(f"ch_{time.monotonic_ns()}", 0, 100, "USD", None, {}, Status.SUCCEEDED, 1_000_000.0)


def test_the_store_is_made_without_a_loop_or_a_server() -> None:
    # open_store runs before the server's event loop starts; nothing listens on this port.
    made = open_store(Settings(store=f"redis://127.0.0.1:{free_port()}/0"))
    assert isinstance(made, RedisStore)
    assert made.kind == "redis"


async def test_no_server_is_a_quick_store_unavailable() -> None:
    made = RedisStore(Settings(store=f"redis://127.0.0.1:{free_port()}/0"))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        await made.check()
    with pytest.raises(StoreUnavailable):
        await made.add_charge(KEY, charge(), None, None, [])
    assert time.monotonic() - started < 2
    assert caught.value.status == 503
    assert caught.value.headers == {"Retry-After": "1"}
    await made.close()


async def test_a_restarted_redis_is_used_again(store: RedisStore, redis_process: RedisProcess) -> None:
    await store.add_charge(KEY, charge(), None, None, [])
    assert (await store.page(KEY, None, 10, 0))[1] == 1
    redis_process.stop()
    for call in (
        store.tenant(KEY),
        store.add_charge(KEY, charge(), None, None, []),
        store.entries(None),
        store.check(),
    ):
        with pytest.raises(StoreUnavailable):
            await call
    redis_process.start()  # same port, empty (no persistence), and without the scripts
    made = charge()
    await store.add_charge(KEY, made, None, None, [])
    assert await store.charge(KEY, made.id) is not None
    meta = await store.tenant(KEY)
    assert meta is not None
    assert meta.key == KEY
    await store.check()


async def test_a_frozen_redis_times_out_instead_of_hanging(store: RedisStore, redis_process: RedisProcess) -> None:
    made = charge()
    await store.add_charge(KEY, made, None, None, [])
    assert redis_process.proc is not None
    os.kill(redis_process.proc.pid, signal.SIGSTOP)
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable):
            await store.charge(KEY, "ch_not_there")
    finally:
        os.kill(redis_process.proc.pid, signal.SIGCONT)
    assert 4 < time.monotonic() - started < 8  # the 5 s reply timeout, not retried
    # It carries on, and the late reply to the read that timed out (nothing) is read by nobody:
    # the connection it was due on was closed, not handed to the next call.
    found = await store.charge(KEY, made.id)
    assert found is not None
    assert found.id == made.id


async def test_each_call_gets_its_own_replies_when_many_share_the_connection(store: RedisStore) -> None:
    # Every call of a turn goes out in one write on one connection; the replies come back in order.
    # Calls cancelled while waiting (a client that left) must not shift anyone's replies.
    await store.check()  # connected: the calls below are all written before any reply is read

    async def echo(n: int) -> list[bytes]:
        return list(await store._run([("ECHO", b"a%d" % n), ("ECHO", b"b%d" % n)], read=True))

    calls = [asyncio.ensure_future(echo(n)) for n in range(300)]
    await asyncio.sleep(0)
    for n in range(0, 300, 7):
        calls[n].cancel()
    done = await asyncio.gather(*calls, return_exceptions=True)
    for n, replies in enumerate(done):
        if n % 7 == 0:
            assert isinstance(replies, asyncio.CancelledError)
        else:
            assert replies == [b"a%d" % n, b"b%d" % n]
    assert await store._run([("ECHO", b"after")], read=True) == [b"after"]


async def test_a_connection_the_server_closes_is_made_again(store: RedisStore, redis_process: RedisProcess) -> None:
    made = charge()
    await store.add_charge(KEY, made, None, None, [])
    with redis.Redis(port=redis_process.port) as raw:
        assert raw.client_kill_filter(_type="normal", skipme=True) >= 1  # the store's connection
    # A read and a write after it: the link notices the close and connects again; nothing is lost.
    assert await store.charge(KEY, made.id) is not None
    await store.add_charge(KEY, charge(), None, None, [])
    assert (await store.page(KEY, None, 10, 0))[1] == 2


async def test_an_error_reply_goes_to_its_call_alone(store: RedisStore) -> None:
    async def wrong() -> None:
        await store._run([("ECHO", b"x"), ("NOSUCHCOMMAND",)])

    outcome = await asyncio.gather(wrong(), store._run([("ECHO", b"y")], read=True), return_exceptions=True)
    assert isinstance(outcome[0], ReplyError)
    assert "NOSUCHCOMMAND" in str(outcome[0]) or "unknown command" in str(outcome[0])
    assert outcome[1] == [b"y"]


def test_a_url_with_a_password_and_a_database_is_used_as_given(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path, "--requirepass", "s3cret")
    server.start()
    try:

        async def use(url: str) -> None:
            made = RedisStore(Settings(store=url))
            try:
                await made.add_charge(KEY, charge(), None, None, [])
            finally:
                await made.close()

        asyncio.run(use(f"redis://:s3cret@127.0.0.1:{server.port}/3"))
        asyncio.run(use(f"redis://default:s3cret@127.0.0.1:{server.port}/3"))  # Redis 6's ACL form
        with redis.Redis(port=server.port, password="s3cret", db=3) as raw:
            assert raw.hget(prefix(KEY) + b"meta", "n") == b"2"
        with redis.Redis(port=server.port, password="s3cret", db=0) as raw:
            assert raw.dbsize() == 0
        with pytest.raises(StoreUnavailable, match="set-up"):
            asyncio.run(use(f"redis://:wrong@127.0.0.1:{server.port}/3"))
    finally:
        server.stop()


async def test_scripts_that_redis_forgot_are_loaded_again(store: RedisStore, redis_process: RedisProcess) -> None:
    await store.add_charge(KEY, charge(), None, None, [])
    with redis.Redis(port=redis_process.port) as raw:
        raw.script_flush()
        # One command alone, and commands pipelined with others that must not run twice.
        assert await store.tenant(KEY) is not None
        raw.script_flush()
        await store.add_charge(KEY, charge(), None, None, [])
        assert raw.hget(prefix(KEY) + b"meta", "n") == b"2"  # the charge was stored once
    assert (await store.page(KEY, None, 10, 0))[1] == 2
