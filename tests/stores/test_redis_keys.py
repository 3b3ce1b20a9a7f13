"""The Redis store's keys: each tenant's under its own hash tag (one cluster slot), the shared ones
under `ps:{global}:`, nothing else; resets and drops leave nothing of a tenant behind and never touch
another application's keys in the same database."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from sandbox.models import Charge, Entry, Refund, Reply, Saved, Status
from sandbox.settings import Settings
from sandbox.stores.redis import RedisStore

pytestmark = pytest.mark.anyio
GLOBAL = {"tenants", "ruled", "stats", "seq", "journal", "jbody", "jof", "jtenants"}
TENANT_FIXED = {"meta", "rules", "all", "s:succeeded", "s:pending", "s:failed", "settle", "later", "keys", "korder"}
TENANT_FIXED |= {"marks"}
FOREIGN = {b"other:app": b"1", b"ps": b"2", b"psx:{tn_a}:meta": b"3", b"PS:{tn_a}:meta": b"4"}


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(f"{redis_url}/3")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def store(redis_url: str, raw: redis.Redis) -> AsyncIterator[RedisStore]:
    made = RedisStore(Settings(store=f"{redis_url}/3", journal_size=20))
    await made.reset(None)
    raw.mset(FOREIGN)
    try:
        yield made
    finally:
        await made.reset(None)
        raw.flushdb()
        await made.close()


def keys(raw: redis.Redis) -> list[str]:
    return sorted(key.decode() for key in raw.scan_iter(match="ps:*", count=1000))


async def busy(store: RedisStore, key: str) -> Charge:
    """Every kind of state for one tenant."""
    charge = Charge(f"ch_{key}", 0, 1000, "USD", None, {}, Status.SUCCEEDED, 1_000_000.0)
    await store.add_charge(key, charge, None, None, [])
    pending = Charge(f"ch_p_{key}", 0, 100, "USD", None, {}, Status.PENDING, 1_000_001.0, settle_at=2e9)
    await store.add_charge(key, pending, None, None, [])
    await store.refund(
        key, charge.id, lambda c: (Refund("rf_1", charge.id, 10, None, {}, 1.0), "ok"), None, lambda v: None
    )
    await store.claim(key, "k", Saved("fp", 1.0), 10, 3600.0)
    await store.save_reply(key, "k", Reply(200, {}))
    await store.mark(key, "m", 10)
    await store.set_rules(key, "[]", 1, "v1")
    await store.advance_clock(key, 5, 1000.0, 1e12)
    await store.record(Entry(f"req_{key}", key, "GET", "/", "", 200, 1.0, 0.1, None, None, None, b"{}"))
    return charge


async def test_every_key_is_a_tenants_or_a_documented_global_one(store: RedisStore, raw: redis.Redis) -> None:
    for key in ("tn_a", "tn_b"):
        await busy(store, key)
    await store.record(Entry("req_none", None, "GET", "/", "", 404, 1.0, 0.1, None, None, None, b""))
    for name in keys(raw):
        tenant = re.fullmatch(r"ps:\{(tn_a|tn_b)\}:(.+)", name)
        if tenant is not None:
            suffix = tenant.group(2)
            assert suffix in TENANT_FIXED or re.fullmatch(r"[cr]:ch_(p_)?tn_[ab]", suffix), name
        else:
            suffix = name.removeprefix("ps:{global}:")
            assert suffix in GLOBAL or suffix in {"jt:tn_a", "jt:tn_b"}, name


async def test_a_reset_tenant_leaves_no_key_behind(store: RedisStore, raw: redis.Redis) -> None:
    await busy(store, "tn_a")
    await busy(store, "tn_b")
    await store.reset("tn_a")
    assert not [name for name in keys(raw) if "tn_a" in name]
    assert [name for name in keys(raw) if name.startswith("ps:{tn_b}:")]
    assert (await store.summaries(0, 10))[1] == 1


async def test_a_dropped_tenant_leaves_no_key_behind(store: RedisStore, raw: redis.Redis) -> None:
    store.max_tenants = 1
    await busy(store, "tn_a")
    await store.tenant("tn_b", create=True)
    assert not [name for name in keys(raw) if name.startswith("ps:{tn_a}:")]
    assert (await store.drops())[0] == 1
    # Its journal entries stay, as on every engine: a drop makes room, it does not rewrite history.
    assert len(await store.entries("tn_a")) == 1


async def test_reset_of_everything_spares_other_applications_keys(store: RedisStore, raw: redis.Redis) -> None:
    await busy(store, "tn_a")
    await store.reset(None)
    assert keys(raw) == []
    assert {key: raw.get(key) for key in FOREIGN} == FOREIGN


async def test_odd_tenant_names_get_a_digest_tag_and_stay_apart(store: RedisStore, raw: redis.Redis) -> None:
    odd = ["a}b", "~x", "global", "", "x" * 300, "tn_é", "a{b"]
    for n, key in enumerate(odd):
        await store.add_charge(
            key, Charge(f"ch_{n}", 0, 100 + n, "USD", None, {}, Status.SUCCEEDED, 1.0), None, None, []
        )
    for n, key in enumerate(odd):
        rows, total = await store.page(key, None, 10, 0)
        assert (total, [c.amount for c in rows]) == (1, [100 + n])
    tags = {re.match(r"ps:\{([^}]*)\}:", name).group(1) for name in keys(raw)}  # type: ignore[union-attr]
    assert tags == {"global", "tn_é", "a{b"} | {tag for tag in tags if re.fullmatch(r"~[0-9a-f]{32}", tag)}
    assert len(tags) == 3 + 5
    listed, total = await store.summaries(0, 10)
    assert total == len(odd)
    assert sorted(s.key for s in listed) == sorted(odd)


async def test_the_index_mends_itself(store: RedisStore, raw: redis.Redis, redis_url: str) -> None:
    # Data the index lost (a write that raced the tenant's drop) is listed again when next read...
    await store.add_charge("tn_a", Charge("ch_1", 0, 1, "USD", None, {}, Status.SUCCEEDED, 1.0), None, None, [])
    raw.zrem("ps:{global}:tenants", "tn_a")
    other = RedisStore(Settings(store=f"{redis_url}/3"))  # another process: it has touched nothing yet
    try:
        assert await other.tenant("tn_a") is not None
    finally:
        await other.close()
    assert raw.zscore("ps:{global}:tenants", "tn_a") is not None
    # ...and a listed tenant without data reads as absent, and is the first to go when room is needed.
    raw.zadd("ps:{global}:tenants", {"tn_ghost": 1})
    assert await store.tenant("tn_ghost") is None
    assert [s.key for s in (await store.summaries(0, 10))[0]] == ["tn_a"]
    raw.zadd("ps:{global}:tenants", {"tn_ghost": 1})  # (reading it made it recent: make it old again)
    store.max_tenants = 2
    await store.tenant("tn_b", create=True)
    assert sorted(s.key for s in (await store.summaries(0, 10))[0]) == ["tn_a", "tn_b"]
    assert (await store.drops())[1] is not None
    assert (await store.drops())[1][0] == "tn_ghost"  # type: ignore[index]
