"""The Redis store behaves as the memory store (the reference engine) does: the same long random
sequences of calls, on small bounds so that drops, trims and settlements all happen, get the same
answers from both."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sandbox.errors import InvalidRequest
from sandbox.models import Charge, Entry, Refund, Reply, Saved, Status
from sandbox.settings import Settings
from sandbox.stores import memory as memory_module
from sandbox.stores import redis as redis_module
from sandbox.stores.memory import MemoryStore
from sandbox.stores.redis import RedisStore

pytestmark = pytest.mark.anyio
TENANTS = ["tn_1", "tn_2", "tn_3", "tn_4", "tn_5"]
STATUSES = [Status.SUCCEEDED, Status.SUCCEEDED, Status.PENDING, Status.FAILED]


@pytest.fixture
async def stores(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[MemoryStore, RedisStore]]:
    for module in (memory_module, redis_module):
        monkeypatch.setattr(module, "MAX_UPLOADED_RULES", 10)
    settings = Settings(store=f"{redis_url}/5", journal_size=15, max_tenants=3)
    redis_store = RedisStore(settings)
    await redis_store.reset(None)
    try:
        yield MemoryStore(settings), redis_store
    finally:
        await redis_store.reset(None)
        await redis_store.close()


def plain(value: Any) -> Any:
    """What both engines must agree on: a charge's numbers differ (one counter per engine), its order not."""
    if isinstance(value, Charge):
        return dataclasses.replace(value, seq=0)
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, Saved):
        return (value.fingerprint, value.created, value.reply)
    if hasattr(value, "rules_version"):  # a TenantMeta: each engine has its own class
        return (value.key, value.clock_offset, value.rules_version, value.next_settle)
    return value


def refund_decider(refund_id: str, amount: int) -> Any:
    def decide(found: Charge | None) -> tuple[Refund | None, str]:
        if found is None or found.status != Status.SUCCEEDED:
            raise InvalidRequest("not_refundable", "no")
        if found.remaining == 0:
            return None, "nothing left"
        taken = min(amount, found.remaining)
        return Refund(refund_id, found.id, taken, None, {}, 7.0), f"took {taken}"

    return decide


async def step(store: Any, rng: random.Random, n: int, charge_ids: list[str]) -> Any:
    tenant = rng.choice(TENANTS)
    op = rng.randrange(17)
    if op == 0:
        return await store.tenant(tenant, create=rng.random() < 0.3)
    if op in (1, 2):
        status = rng.choice(STATUSES)
        created = 1000.0 + rng.randrange(5) + rng.random()
        charge = Charge(f"ch_{n}", 0, rng.randrange(1, 500), "USD", None, {"n": str(n)}, status, created)
        if status == Status.PENDING and rng.random() < 0.8:
            charge.settle_at = 1000.0 + rng.randrange(40)
            charge.settle_to = rng.choice([None, "succeeded", "failed"])
            charge.settle_code = rng.choice([None, "insufficient_funds"])
        charge_ids.append(charge.id)
        key = rng.choice([None, "k1", "k2"])
        reply = rng.choice([None, Reply(200, {"id": charge.id})])
        await store.add_charge(tenant, charge, key, reply, [])
        return None
    if op == 3:
        return await store.settle_due(tenant, 1000.0 + rng.randrange(50))
    if op == 4:
        return await store.page(
            tenant, rng.choice([None, "succeeded", "pending", "failed"]), rng.randrange(6), rng.randrange(8)
        )
    if op == 5 and charge_ids:
        charge_id = rng.choice(charge_ids)
        try:
            verdict = await store.refund(
                tenant,
                charge_id,
                refund_decider(f"rf_{n}", rng.randrange(1, 300)),
                rng.choice([None, "k1"]),
                lambda verdict: Reply(200, {"verdict": verdict}),
            )
        except InvalidRequest as exc:
            verdict = exc.code
        return verdict, await store.charge(tenant, charge_id), await store.refunds(tenant, charge_id)
    if op == 6:
        return await store.summary(tenant), await store.summaries(rng.randrange(3), rng.randrange(4))
    if op == 7:
        key = rng.choice(["k1", "k2", "k3"])
        return await store.claim(tenant, key, Saved(f"fp{n % 3}", float(n)), 2, 1e9), await store.saved(
            tenant, key, float(n), 1e9
        )
    if op == 8:
        return await store.save_reply(tenant, rng.choice(["k1", "k2", "k3"]), rng.choice([None, Reply(201, {"n": n})]))
    if op == 9:
        marker = rng.choice(["m1", "m2", "m3"])
        return await (store.mark(tenant, marker, 2) if rng.random() < 0.7 else store.unmark(tenant, marker))
    if op == 10:
        everything = rng.random() < 0.1
        if everything and isinstance(store, MemoryStore):
            # Redis's reset of everything deletes every `ps:*` key, the drop record with them;
            # the memory store counts drops for its process's life.
            store.dropped, store.last_dropped = 0, None
        return await store.reset(None if everything else tenant)
    if op == 11:
        who = rng.choice([*TENANTS, None])
        entry = Entry(f"req_{n}", who, "GET", "/", "", 200, float(n), 0.5, None, None, None, str(n).encode())
        return await store.record(entry)
    if op == 12:
        who = rng.choice([*TENANTS, None])
        limit = rng.choice([None, 0, 1, 3])
        return await store.entries(who, limit), await store.journal_stats(who)
    if op == 13:
        return await store.entries_after(rng.choice(["", f"req_{n - rng.randrange(1, 30)}"]))
    if op == 14:
        return await store.forget(rng.choice([*TENANTS, None]) if rng.random() < 0.3 else tenant)
    if op == 15:
        moved = await store.advance_clock(tenant, rng.choice([0.1, 5, 1e6]), 1000.0, 2e6)
        return moved, await store.rules(tenant)
    uploaded = rng.randrange(0, 7)
    await store.set_rules(tenant, f'["{n}"]', uploaded, f"v{n}")
    count, last = await store.drops()
    return await store.rules(tenant), count, last[0] if last else None, last[2] if last else None


@pytest.mark.parametrize("seed", range(8))
async def test_the_same_calls_get_the_same_answers(stores: tuple[MemoryStore, RedisStore], seed: int) -> None:
    memory, redis_store = stores
    made: dict[int, list[str]] = {0: [], 1: []}
    for n in range(400):
        answers = []
        for index, store in enumerate(stores):
            answers.append(plain(await step(store, random.Random(f"{seed}:{n}"), n, made[index])))
        assert answers[0] == answers[1], f"step {n}"
    assert plain(await memory.summaries(0, 10)) == plain(await redis_store.summaries(0, 10))
    assert await memory.entries(None) == await redis_store.entries(None)
