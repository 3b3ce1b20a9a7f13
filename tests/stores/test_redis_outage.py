"""When Redis is away the Redis store answers StoreUnavailable (a 503 to clients), quickly, and it
recovers by itself when Redis is back: on a redis-server of this module's own, stopped, frozen and
restarted on the same port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from sandbox_server import free_port

from sandbox.models import Charge, Status
from sandbox.settings import Settings
from sandbox.stores import StoreUnavailable, open_store
from sandbox.stores.redis import RedisStore, fast_replies, prefix

pytestmark = pytest.mark.anyio
KEY = "tn_outage"


class RedisProcess:
    """A redis-server on 127.0.0.1:`port` that a test can stop, freeze and start again."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [*argv, "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert self.proc.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not answer PING in 10 s"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)  # in case a test froze it
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
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
    assert 4 < time.monotonic() - started < 8  # the 5 s socket timeout, not retried
    # It carries on, and the late reply to the read that timed out (nothing) is read by nobody:
    # the connection it was due on was closed, not handed to the next call.
    found = await store.charge(KEY, made.id)
    assert found is not None
    assert found.id == made.id


async def test_replies_are_read_off_redis_pys_hiredis_reader(store: RedisStore) -> None:
    # The fast path of RedisStore (sandbox.stores.redis._replies) leans on redis-py's hiredis parser;
    # a redis-py that changed it would fall back to read_response, slower but right: this says so.
    await store.check()
    connection = await store._pool.get_connection()
    try:
        assert fast_replies(connection)
    finally:
        await store._pool.release(connection)


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
