"""The Store interface's promises, on every engine: tenants, clock, rules, resets, summaries, keys,
marks, refunds, seeds and the journal. (Paging and settlement: test_paging.py.)"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from sandbox.errors import InvalidRequest
from sandbox.models import Charge, Entry, Refund, Reply, Saved, Status
from sandbox.stores import Store

pytestmark = pytest.mark.anyio
A, B = "tn_a", "tn_b"
_n = itertools.count(1)


def charge(amount: int = 1000, status: Status = Status.SUCCEEDED, created: float = 1_000_000.0) -> Charge:
    return Charge(f"ch_{next(_n)}", 0, amount, "USD", "d", {"k": "v"}, status, created)


def entry(tenant: str | None, status: int = 200, path: str = "/v1/payments/charges") -> Entry:
    return Entry(f"req_{next(_n)}", tenant, "GET", path, "", status, 1_000_000.0, 0.001, None, None, None, b"{}")


def reply(status: int = 200, **body: Any) -> Reply:
    return Reply(status, body, {"X-A": "1"}, "rule")


async def test_reads_create_no_tenant(store: Store) -> None:
    assert await store.tenant(A) is None
    assert await store.summary(A) is None
    assert await store.charge(A, "ch_x") is None
    assert await store.page(A, None, 10, 0) == ([], 0)
    assert await store.saved(A, "k", 0.0, 10.0) is None
    assert (await store.summaries(0, 10))[1] == 0
    made = await store.tenant(A, create=True)
    assert made is not None
    assert (made.key, made.clock_offset, made.rules_version, made.next_settle) == (A, 0.0, None, None)
    assert (await store.summaries(0, 10))[1] == 1


async def test_the_least_recently_used_tenant_is_dropped(store: Store) -> None:
    store.max_tenants = 2
    await store.tenant(A, create=True)
    await store.tenant(B, create=True)
    await store.tenant(A)  # A is now the most recently used
    await store.add_charge("tn_c", charge(), None, None, [])
    assert await store.tenant(B) is None
    assert await store.tenant(A) is not None
    count, last = await store.drops()
    assert count == 1
    assert last is not None
    assert last[0] == B
    assert "--max-tenants 2" in last[2]


async def test_summaries_are_most_recently_used_first_with_counts(store: Store) -> None:
    for key in ("tn_1", "tn_2", "tn_3"):
        await store.add_charge(key, charge(), None, None, [])
    await store.add_charge("tn_1", charge(status=Status.FAILED), None, None, [])
    listed, total = await store.summaries(0, 2)
    assert total == 3
    assert [s.key for s in listed] == ["tn_1", "tn_3"]
    assert listed[0].charges == 2
    assert listed[0].counts == {"succeeded": 1, "pending": 0, "failed": 1}
    assert [s.key for s in (await store.summaries(2, 2))[0]] == ["tn_2"]


async def test_the_clock_moves_forward_and_stops_at_the_limit(store: Store) -> None:
    moved = await store.advance_clock(A, 60, 1000.0, 2000.0)
    assert moved is not None
    assert moved.clock_offset == 60
    assert await store.advance_clock(A, 941, 1000.0, 2000.0) is None  # 1000 + 60 + 941 > 2000
    meta = await store.tenant(A)
    assert meta is not None
    assert meta.clock_offset == 60


async def test_rules_are_kept_by_version_and_reset(store: Store) -> None:
    await store.set_rules(A, '[{"x": 1}]', 1, "v1")
    meta = await store.tenant(A)
    assert meta is not None
    assert meta.rules_version == "v1"
    assert await store.rules(A) == ("v1", '[{"x": 1}]')
    assert (await store.summary(A)).has_rules  # type: ignore[union-attr]
    await store.reset(A)
    assert await store.rules(A) is None


async def test_uploaded_rules_in_all_are_bounded(store: Store) -> None:
    from sandbox.stores.base import MAX_UPLOADED_RULES

    await store.set_rules(A, "[]", MAX_UPLOADED_RULES // 2 + 1, "v1")
    await store.set_rules(B, "[]", MAX_UPLOADED_RULES // 2 + 1, "v2")  # over: A, holding some, goes
    assert await store.tenant(A) is None
    assert await store.rules(B) == ("v2", "[]")


async def test_reset_forgets_a_tenant_or_everything(store: Store) -> None:
    await store.add_charge(A, charge(), None, None, [])
    await store.add_charge(B, charge(), None, None, [])
    await store.record(entry(A))
    await store.record(entry(B))
    await store.reset(A)
    assert await store.tenant(A) is None
    assert await store.entries(A) == []
    assert len(await store.entries(B)) == 1
    await store.reset(None)
    assert await store.tenant(B) is None
    assert await store.entries(None) == []
    assert (await store.summaries(0, 10))[1] == 0


async def test_a_charge_and_its_key_are_stored_together(store: Store) -> None:
    assert await store.claim(A, "k1", Saved("fp", 100.0), 10, 3600.0) is None
    in_flight = await store.claim(A, "k1", Saved("fp", 101.0), 10, 3600.0)
    assert in_flight is not None
    assert (in_flight.fingerprint, in_flight.reply) == ("fp", None)
    made = charge()
    await store.add_charge(A, made, "k1", reply(id=made.id), [])
    assert made.seq > 0
    saved = await store.saved(A, "k1", 200.0, 3600.0)
    assert saved is not None
    assert saved.reply == reply(id=made.id)
    stored = await store.charge(A, made.id)
    assert stored is not None
    assert stored.wire() == made.wire()


async def test_keys_expire_after_the_ttl_once_finished(store: Store) -> None:
    await store.claim(A, "done", Saved("fp", 100.0), 10, 3600.0)
    await store.save_reply(A, "done", reply())
    await store.claim(A, "busy", Saved("fp", 100.0), 10, 3600.0)
    assert await store.saved(A, "done", 3699.0, 3600.0) is not None
    assert await store.saved(A, "done", 3700.0, 3600.0) is None
    assert await store.saved(A, "busy", 9999.0, 3600.0) is not None  # in flight: kept
    assert await store.claim(A, "done", Saved("fp2", 3800.0), 10, 3600.0) is None  # expired: claimable


async def test_a_released_key_can_be_claimed_again(store: Store) -> None:
    await store.claim(A, "k", Saved("fp", 1.0), 10, 3600.0)
    await store.save_reply(A, "k", None)
    assert await store.saved(A, "k", 2.0, 3600.0) is None
    assert await store.claim(A, "k", Saved("fp", 2.0), 10, 3600.0) is None


async def test_keys_per_tenant_are_bounded_oldest_first(store: Store) -> None:
    for n in range(5):
        await store.claim(A, f"k{n}", Saved("fp", float(n)), 3, 3600.0)
        await store.save_reply(A, f"k{n}", reply())
    assert [await store.saved(A, f"k{n}", 10.0, 3600.0) is not None for n in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]


async def test_marks_are_set_once_and_bounded(store: Store) -> None:
    assert await store.mark(A, "m1", 2) is True
    assert await store.mark(A, "m1", 2) is False
    await store.unmark(A, "m1")
    assert await store.mark(A, "m1", 2) is True
    assert await store.mark(A, "m2", 2) is True
    assert await store.mark(A, "m3", 2) is True  # m1, the oldest, goes
    assert await store.mark(A, "m1", 2) is True


def refund_of(amount: int) -> Any:
    def decide(found: Charge | None) -> tuple[Refund | None, str]:
        if found is None:
            raise InvalidRequest("resource_missing", "no charge")
        if amount > found.remaining:
            raise InvalidRequest("amount_too_large", "too much")
        return Refund(f"rf_{next(_n)}", found.id, amount, None, {}, 5.0), "ok"

    return decide


async def test_a_refund_takes_from_the_charge_with_its_key(store: Store) -> None:
    made = charge(1000)
    await store.add_charge(A, made, None, None, [])
    await store.claim(A, "rk", Saved("fp", 1.0), 10, 3600.0)
    verdict = await store.refund(A, made.id, refund_of(300), "rk", lambda v: reply(verdict=v))
    assert verdict == "ok"
    stored = await store.charge(A, made.id)
    assert stored is not None
    assert stored.amount_refunded == 300
    refunds = await store.refunds(A, made.id)
    assert [r.amount for r in refunds] == [300]
    saved = await store.saved(A, "rk", 2.0, 3600.0)
    assert saved is not None
    assert saved.reply == reply(verdict="ok")
    assert (await store.summary(A)).refunds == 1  # type: ignore[union-attr]


async def test_a_refused_refund_changes_nothing(store: Store) -> None:
    made = charge(1000)
    await store.add_charge(A, made, None, None, [])
    with pytest.raises(InvalidRequest):
        await store.refund(A, made.id, refund_of(1001), None, lambda v: None)
    with pytest.raises(InvalidRequest):
        await store.refund(A, "ch_missing", refund_of(1), None, lambda v: None)
    with pytest.raises(InvalidRequest):
        await store.refund(B, made.id, refund_of(1), None, lambda v: None)  # another tenant's charge
    stored = await store.charge(A, made.id)
    assert stored is not None
    assert stored.amount_refunded == 0
    assert await store.refunds(A, made.id) == []


async def test_a_refused_refund_among_concurrent_writes_is_undone_alone(store: Store) -> None:
    """Writes made at once may share one transaction (SQLite's group commit): the refused one
    leaves no trace, and every other one is stored as if it had been alone."""
    first = charge(1000)
    await store.add_charge(A, first, None, None, [])
    second, third = charge(500), charge(700)
    answers = await asyncio.gather(
        store.add_charge(A, second, None, None, []),
        store.refund(A, first.id, refund_of(600), None, lambda v: None),
        store.refund(A, first.id, refund_of(600), None, lambda v: None),  # only 400 left: refused
        store.add_charge(A, third, None, None, []),
        store.record(entry(A)),
        return_exceptions=True,
    )
    assert [answers[0], answers[3], answers[4]] == [None, None, None]
    assert sorted(type(a).__name__ for a in answers[1:3]) == ["InvalidRequest", "str"]
    assert (await store.charge(A, first.id)).amount_refunded == 600  # type: ignore[union-attr]
    assert [r.amount for r in await store.refunds(A, first.id)] == [600]
    assert [c.id for c in (await store.page(A, None, 10, 0))[0]] == [third.id, second.id, first.id]
    assert len(await store.entries(A)) == 1
    assert (await store.summary(A)).refunds == 1  # type: ignore[union-attr]


async def test_a_verdict_without_a_refund_stores_only_the_key(store: Store) -> None:
    made = charge(1000)
    await store.add_charge(A, made, None, None, [])
    await store.claim(A, "rk", Saved("fp", 1.0), 10, 3600.0)
    await store.refund(A, made.id, lambda found: (None, "refused"), "rk", lambda v: reply(400, verdict=v))
    assert (await store.charge(A, made.id)).amount_refunded == 0  # type: ignore[union-attr]
    saved = await store.saved(A, "rk", 2.0, 3600.0)
    assert saved is not None
    assert saved.reply == reply(400, verdict="refused")


async def test_seeded_charges_are_numbered_and_kept_with_their_refunds(store: Store) -> None:
    first, second = charge(created=2_000.0), charge(created=1_000.0)
    refund = Refund("rf_seeded", first.id, 100, "duplicate", {}, 2_500.0)
    first.amount_refunded = 100
    made = await store.add_seeded(A, [(first, refund), (second, None)])
    assert [c.id for c in made] == [first.id, second.id]
    assert 0 < first.seq < second.seq
    assert [c.id for c in (await store.page(A, None, 10, 0))[0]] == [first.id, second.id]
    assert await store.refunds(A, first.id) == [refund]


async def test_the_journal_keeps_the_newest_per_tenant(store: Store) -> None:
    first, second, third = entry(A), entry(B), entry(A, 404)
    for e in (first, second, third):
        await store.record(e)
    assert [e.id for e in await store.entries(None)] == [third.id, second.id, first.id]
    assert [e.id for e in await store.entries(A)] == [third.id, first.id]
    assert [e.id for e in await store.entries(A, 1)] == [third.id]
    assert (await store.entries(A))[0] == third
    assert await store.journal_stats(A) == (2, third.started, third.id)
    assert (await store.journal_stats(None))[0] == 3
    assert await store.journal_stats("tn_none") == (0, None, third.id)
    assert [e.id for e in await store.entries_after(first.id) or []] == [third.id, second.id]
    assert await store.entries_after(third.id) == []
    assert await store.entries_after("req_gone") is None
    await store.forget(A)
    assert [e.id for e in await store.entries(None)] == [second.id]


async def test_the_journal_is_bounded(store: Store) -> None:
    size = store.settings.journal_size
    made = [entry(A) for _ in range(size + 5)]
    for e in made:
        await store.record(e)
    kept = await store.entries(None)
    assert len(kept) == size
    assert kept[0].id == made[-1].id
    assert (await store.journal_stats(A))[0] == size
    assert await store.entries_after(made[0].id) is None
    theirs = [entry(B) for _ in range(size)]  # B's entries push A's out, one by one
    for e in theirs[:10]:
        await store.record(e)
    assert [(await store.journal_stats(t))[0] for t in (A, B)] == [size - 10, 10]
    for e in theirs[10:]:
        await store.record(e)
    assert (await store.journal_stats(A))[:2] == (0, None)
    assert await store.entries(A) == []
    assert len(await store.entries(B)) == size
