"""Webhook state inside the shared engines: the queue's order across tenants (every engine), an older
SQLite file taking the webhook tables, two SQLite connections in two threads taking at once, and the
Redis keys the state lives in (documented ones, none left behind by a reset or a drop)."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from sandbox.models import Charge, Status
from sandbox.settings import Settings
from sandbox.stores import Store
from sandbox.stores.redis import RedisStore
from sandbox.stores.sqlite import SQLiteStore
from sandbox.stores.sqlite_rows import SCHEMA_VERSION, path_of

pytestmark = pytest.mark.anyio
A, B = "tn_a", "tn_b"
T0 = 1_700_000_000.0


def raw(tag: str) -> bytes:
    return f'{{"job": "{tag}"}}'.encode()


# -- every engine -----------------------------------------------------------------------------
async def test_take_goes_earliest_first_across_tenants_and_as_queued_at_equal_times(store: Store) -> None:
    await store.tenant(A, create=True)
    await store.tenant(B, create=True)
    await store.queue(A, [("j1", T0 + 1, raw("a1")), ("j2", T0 + 5, raw("a5"))], limit=10)
    await store.queue(B, [("j3", T0 + 3, raw("b3")), ("j4", T0 + 3, raw("b3 again"))], limit=10)
    await store.queue(A, [("j5", T0 + 3, raw("a3"))], limit=10)
    taken = await store.take(T0 + 10, 10)
    assert [job for _, job in taken[:1]] == [raw("a1")]
    assert sorted(taken[1:4]) == sorted([(B, raw("b3")), (B, raw("b3 again")), (A, raw("a3"))])
    assert [job for tenant, job in taken[1:4] if tenant == B] == [raw("b3"), raw("b3 again")]
    assert taken[4:] == [(A, raw("a5"))]


async def test_taking_part_of_a_tenants_jobs_leaves_the_rest_due_in_turn(store: Store) -> None:
    await store.tenant(A, create=True)
    await store.tenant(B, create=True)
    await store.queue(A, [(f"a{n}", T0 + 2 * n, raw(f"a{n}")) for n in range(3)], limit=10)
    await store.queue(B, [(f"b{n}", T0 + 2 * n + 1, raw(f"b{n}")) for n in range(3)], limit=10)
    assert await store.take(T0 + 2.5, 2) == [(A, raw("a0")), (B, raw("b0"))]
    assert await store.take(T0 + 2.5, 2) == [(A, raw("a1"))]
    assert await store.take(T0 + 100, 10) == [(B, raw("b1")), (A, raw("a2")), (B, raw("b2"))]


async def test_an_endpoint_added_again_keeps_its_place_and_counts_once(store: Store) -> None:
    await store.add_hook(A, "we_1", b"one", limit=5)
    await store.add_hook(A, "we_2", b"two", limit=5)
    assert await store.add_hook(A, "we_1", b"one again", limit=5)
    assert await store.hooks(A) == [b"one again", b"two"]
    meta = await store.tenant(A)
    assert meta is not None
    assert meta.hooks == 2


# -- SQLite ---------------------------------------------------------------------------------------
async def test_a_version_3_sqlite_file_is_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v3.db'}"
    made = SQLiteStore(Settings(store=url))
    await made.add_charge(A, Charge("ch_1", 0, 100, "USD", None, {}, Status.SUCCEEDED, T0), None, None, [])
    await made.close()
    db = sqlite3.connect(path_of(url))
    for table in ("hooks", "jobs", "attempts"):
        db.execute(f"DROP TABLE {table}")
    db.execute("ALTER TABLE tenants DROP COLUMN hooks")
    db.execute("UPDATE meta SET value = '3' WHERE name = 'schema'")
    db.commit()
    db.close()
    upgraded = SQLiteStore(Settings(store=url))
    try:
        meta = await upgraded.tenant(A)
        assert meta is not None
        assert meta.hooks == 0
        assert (await upgraded.page(A, None, 10, 0))[1] == 1
        assert await upgraded.add_hook(A, "we_1", b"{}", limit=5)
        await upgraded.log_attempt(A, "we_1", b"try")
        assert await upgraded.queue(A, [("j", T0, raw("j"))], limit=5) == 1
        assert await upgraded.take(T0, 5) == [(A, raw("j"))]
        assert await upgraded.attempts(A, "we_1") == [b"try"]
        meta = await upgraded.tenant(A)
        assert meta is not None
        assert meta.hooks == 1
        (found,) = upgraded._read("SELECT value FROM meta WHERE name = 'schema'")[0]
        assert found == SCHEMA_VERSION == "4"
    finally:
        await upgraded.close()


async def test_two_sqlite_connections_in_two_threads_take_each_job_once(tmp_path: Path) -> None:
    settings = Settings(store=f"sqlite:///{tmp_path / 'race.db'}")
    stores = [SQLiteStore(settings), SQLiteStore(settings)]
    try:
        await stores[0].tenant(A, create=True)
        queued = [(f"j{n}", T0 + n, raw(f"j{n}")) for n in range(300)]
        assert await stores[0].queue(A, queued, limit=1000) == 300
        got: list[list[bytes]] = [[], []]
        start = threading.Barrier(2)

        def take(n: int) -> None:
            async def go() -> None:
                while answer := await stores[n].take(T0 + 1000, 3):
                    got[n] += [job for _, job in answer]

            start.wait()
            asyncio.run(go())

        threads = [threading.Thread(target=take, args=(n,)) for n in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(got[0] + got[1]) == sorted(job for _, _, job in queued)
        assert got[0] == sorted(got[0], key=lambda job: int(json.loads(job)["job"][1:]))  # each took earliest first
    finally:
        for opened in stores:
            await opened.close()


# -- Redis ---------------------------------------------------------------------------------------
@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    made = redis.Redis.from_url(f"{redis_url}/4")
    try:
        yield made
    finally:
        made.flushdb()
        made.close()


@pytest.fixture
async def rstore(redis_url: str, client: redis.Redis) -> AsyncIterator[RedisStore]:
    made = RedisStore(Settings(store=f"{redis_url}/4"))
    await made.reset(None)
    try:
        yield made
    finally:
        await made.reset(None)
        await made.close()


def names(client: redis.Redis) -> list[str]:
    return sorted(key.decode() for key in client.scan_iter(match="ps:*", count=1000))


async def webhooks(store: RedisStore, key: str) -> None:
    """Every kind of webhook state for one tenant (with attempts of an endpoint since removed)."""
    await store.add_hook(key, "we_1", b"{}", limit=5)
    await store.add_hook(key, "we_2", b"{}", limit=5)
    await store.log_attempt(key, "we_1", b"try")
    await store.remove_hook(key, "we_2")
    await store.log_attempt(key, "we_2", b"late")  # a delivery that was in flight as it went
    await store.queue(key, [("j", T0, raw(key))], limit=5)


async def test_webhook_state_lives_in_the_documented_keys(rstore: RedisStore, client: redis.Redis) -> None:
    await webhooks(rstore, A)
    found = set(names(client))
    assert {f"ps:{{{A}}}:hooks", f"ps:{{{A}}}:atts", f"ps:{{{A}}}:att:we_1", f"ps:{{{A}}}:att:we_2"} <= found
    assert {f"ps:{{global}}:q:{A}", "ps:{global}:qdue"} <= found
    for name in found:
        assert re.fullmatch(r"ps:\{(global|tn_a)\}:.+", name), name
    assert client.hget(f"ps:{{{A}}}:meta", "hooks") == b"1"


async def test_a_reset_or_a_drop_leaves_no_webhook_key_behind(rstore: RedisStore, client: redis.Redis) -> None:
    await webhooks(rstore, A)
    await webhooks(rstore, B)
    await rstore.reset(A)
    assert not [name for name in names(client) if A in name]
    assert client.zrange("ps:{global}:qdue", 0, -1) == [B.encode()]
    rstore.max_tenants = 1
    await rstore.tenant("tn_c", create=True)  # B goes
    assert not [name for name in names(client) if B in name]
    assert client.zcard("ps:{global}:qdue") == 0
    assert await rstore.take(T0 + 1, 10) == []


async def test_a_drop_for_uploaded_rules_takes_the_queued_jobs(rstore: RedisStore, client: redis.Redis) -> None:
    await webhooks(rstore, A)
    await rstore.set_rules(A, "[]", 30_000, "v1")
    await rstore.set_rules(B, "[]", 30_000, "v1")  # over MAX_UPLOADED_RULES in all: A goes
    assert await rstore.tenant(A) is None
    assert not [name for name in names(client) if A in name]
    assert await rstore.take(T0 + 1, 10) == []


async def test_take_mends_a_wrong_note_of_a_tenants_earliest_job(rstore: RedisStore, client: redis.Redis) -> None:
    await rstore.tenant(A, create=True)
    await rstore.tenant(B, create=True)
    await rstore.queue(A, [("j", T0 + 50, raw("a"))], limit=5)
    await rstore.queue(B, [("j", T0 + 1, raw("b"))], limit=5)
    client.zadd("ps:{global}:qdue", {A: T0, "tn_gone": T0})  # too early, and a tenant without jobs
    assert await rstore.take(T0 + 10, 10) == [(B, raw("b"))]
    assert client.zrange("ps:{global}:qdue", 0, -1, withscores=True) == [(A.encode(), T0 + 50)]
