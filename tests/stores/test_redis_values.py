"""What the Redis store keeps comes back exactly: bytes bodies, odd text, every float's last digit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sandbox.models import Charge, Entry, Reply, Saved, Status
from sandbox.settings import Settings
from sandbox.stores.memory import MemoryStore
from sandbox.stores.redis import RedisStore

pytestmark = pytest.mark.anyio
KEY = "tn_values"
ODD = 'é \u2028 \\ " \n {} \ud800 end'  # a lone surrogate, as a client's JSON escape can make one


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    made = RedisStore(Settings(store=f"{redis_url}/4", journal_size=10))
    await made.reset(None)
    try:
        yield made
    finally:
        await made.reset(None)
        await made.close()


@pytest.mark.parametrize(
    ("request_body", "response_body"),
    [(None, b""), (b"", b"{}"), (b"\x00\xff\n\r\n", b"\n\n"), (bytes(range(256)) * 32, b'{"a":1}')],
)
async def test_entries_keep_their_bytes(store: RedisStore, request_body: bytes | None, response_body: bytes) -> None:
    made = Entry("req_1", ODD, "POST", "/p\n", "q=\ud800", 201, 1.1 / 3, 1e-7, ODD, ODD, request_body, response_body)
    await store.record(made)
    assert await store.entries(None) == [made]
    assert await store.entries(ODD) == [made]
    assert await store.journal_stats(ODD) == (1, 1.1 / 3, "req_1")


async def test_charges_keep_odd_text_and_exact_floats(store: RedisStore) -> None:
    made = Charge("ch_odd", 0, 10**15, "USD", ODD, {ODD: ODD, "1": ""}, Status.PENDING, 1_700_000_000.123456)
    made.settle_at, made.settle_to, made.settle_code = 1_700_000_000.987654, "failed", None
    await store.add_charge(KEY, made, None, None, [])
    stored = await store.charge(KEY, made.id)
    assert stored == made
    meta = await store.tenant(KEY)
    assert meta is not None
    assert meta.next_settle == made.settle_at
    await store.settle_due(KEY, made.settle_at)
    settled = await store.charge(KEY, made.id)
    assert settled is not None
    assert (settled.status, settled.failure_code, settled.settled_at, settled.settle_at) == (
        "failed",
        "generic_decline",
        made.settle_at,
        None,
    )


async def test_saved_keys_keep_odd_fingerprints_and_replies(store: RedisStore) -> None:
    reply = Reply(402, {"error": {"message": ODD}}, {"X-A": ODD}, ODD)
    assert await store.claim(KEY, ODD, Saved(ODD, 0.1 + 0.2), 10, 3600.0) is None
    await store.save_reply(KEY, ODD, reply)
    assert await store.saved(KEY, ODD, 1.0, 3600.0) == Saved(ODD, 0.1 + 0.2, reply)


async def test_the_clock_adds_up_exactly_as_in_memory(store: RedisStore) -> None:
    memory = MemoryStore(Settings())
    for seconds in (0.1, 0.2, 1e-9, 3, 7.7):
        mine = await store.advance_clock(KEY, seconds, 1_700_000_000.5, 1e12)
        theirs = await memory.advance_clock(KEY, seconds, 1_700_000_000.5, 1e12)
        assert mine is not None
        assert theirs is not None
        assert mine.clock_offset == theirs.clock_offset
    # Refused at exactly the same instant: 1e12 - real_now - offset is the most that still fits.
    meta = await store.tenant(KEY)
    assert meta is not None
    last = 1_700_000_000.5 + meta.clock_offset + 10.0
    assert await store.advance_clock(KEY, 10.0, 1_700_000_000.5, last) is not None
    assert await store.advance_clock(KEY, 1e-6, 1_700_000_000.5, last) is None
