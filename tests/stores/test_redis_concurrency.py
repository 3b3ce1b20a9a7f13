"""The Redis store's money rules hold across processes: two RedisStore instances (each its own pool
of connections, as two worker processes have) on one database, racing each other."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sandbox.errors import InvalidRequest
from sandbox.models import Charge, Refund, Reply, Saved, Status
from sandbox.settings import Settings
from sandbox.stores.redis import RedisStore

pytestmark = pytest.mark.anyio
KEY = "tn_race"
_n = itertools.count(1)


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    settings = Settings(store=f"{redis_url}/2")
    first, second = RedisStore(settings), RedisStore(settings)
    await first.reset(None)
    try:
        yield first, second
    finally:
        await first.reset(None)
        await first.close()
        await second.close()


def refund_of(amount: int) -> Any:
    def decide(found: Charge | None) -> tuple[Refund | None, str]:
        assert found is not None
        if amount > found.remaining:
            raise InvalidRequest("amount_too_large", "too much")
        return Refund(f"rf_{next(_n)}", found.id, amount, None, {}, 5.0), "ok"

    return decide


async def test_concurrent_refunds_never_refund_more_than_the_charge(pair: tuple[RedisStore, RedisStore]) -> None:
    charge = Charge("ch_big", 0, 1000, "USD", None, {}, Status.SUCCEEDED, 1_000_000.0)
    await pair[0].add_charge(KEY, charge, None, None, [])

    async def one(n: int) -> str:
        try:
            return await pair[n % 2].refund(KEY, charge.id, refund_of(30), None, lambda v: None)
        except InvalidRequest:
            return "refused"

    verdicts = await asyncio.gather(*(one(n) for n in range(50)))
    assert verdicts.count("ok") == 33  # 33 x 30 = 990; the 10 left is less than 30
    stored = await pair[1].charge(KEY, charge.id)
    assert stored is not None
    assert stored.amount_refunded == 990
    assert [r.amount for r in await pair[0].refunds(KEY, charge.id)] == [30] * 33
    summary = await pair[1].summary(KEY)
    assert summary is not None
    assert summary.refunds == 33


async def test_a_refund_saves_its_reply_once_under_its_key(pair: tuple[RedisStore, RedisStore]) -> None:
    charge = Charge("ch_keyed", 0, 100, "USD", None, {}, Status.SUCCEEDED, 1_000_000.0)
    await pair[0].add_charge(KEY, charge, None, None, [])
    await pair[0].claim(KEY, "rk", Saved("fp", 1.0), 10, 3600.0)
    await asyncio.gather(
        *(pair[n % 2].refund(KEY, charge.id, refund_of(10), "rk", lambda v: Reply(200, {"v": v})) for n in range(5))
    )
    saved = await pair[1].saved(KEY, "rk", 2.0, 3600.0)
    assert saved is not None
    assert saved.reply == Reply(200, {"v": "ok"})
    assert (await pair[0].charge(KEY, charge.id)).amount_refunded == 50  # type: ignore[union-attr]


async def test_one_of_many_concurrent_claims_wins(pair: tuple[RedisStore, RedisStore]) -> None:
    results = await asyncio.gather(
        *(pair[n % 2].claim(KEY, "one-key", Saved(f"fp{n}", 100.0 + n), 100, 3600.0) for n in range(20))
    )
    winners = [n for n, found in enumerate(results) if found is None]
    assert len(winners) == 1
    # Everyone else sees the winner's claim, still in flight.
    assert {found.fingerprint for found in results if found is not None} == {f"fp{winners[0]}"}
    assert all(found.reply is None for found in results if found is not None)


async def test_one_of_many_concurrent_marks_is_new(pair: tuple[RedisStore, RedisStore]) -> None:
    results = await asyncio.gather(*(pair[n % 2].mark(KEY, "first-try", 100) for n in range(20)))
    assert results.count(True) == 1


async def test_charges_from_two_processes_are_numbered_apart_and_all_listed(
    pair: tuple[RedisStore, RedisStore],
) -> None:
    made = [Charge(f"ch_{n}", 0, 100, "USD", None, {}, Status.SUCCEEDED, 1_000_000.0) for n in range(40)]
    await asyncio.gather(*(pair[n % 2].add_charge(KEY, charge, None, None, []) for n, charge in enumerate(made)))
    assert len({charge.seq for charge in made}) == 40
    rows, total = await pair[0].page(KEY, None, 100, 0)
    assert total == 40
    # All in one second: newest first is highest number first.
    assert [c.seq for c in rows] == sorted((c.seq for c in made), reverse=True)
    summary = await pair[1].summary(KEY)
    assert summary is not None
    assert (summary.charges, summary.counts["succeeded"]) == (40, 40)


async def test_settlement_happens_once_whoever_asks(pair: tuple[RedisStore, RedisStore]) -> None:
    pending = Charge("ch_p", 0, 100, "USD", None, {}, Status.PENDING, 1_000_000.0, settle_at=1_000_010.0)
    await pair[0].add_charge(KEY, pending, None, None, [])
    await asyncio.gather(*(pair[n % 2].settle_due(KEY, 1_000_020.0) for n in range(10)))
    summary = await pair[0].summary(KEY)
    assert summary is not None
    assert summary.counts == {"succeeded": 1, "pending": 0, "failed": 0}
    assert summary.next_settle is None
