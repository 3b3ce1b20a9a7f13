"""Webhook state in the Store interface, on every engine: a tenant's endpoints (add_hook, hooks,
remove_hook, TenantMeta.hooks), its queue of jobs (queue, take, moved by advance_clock) and each
endpoint's attempts (log_attempt, attempts); a reset or a drop takes them all, and a queued job is
taken by exactly one of several processes taking at once."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from sandbox.models import LAST_INSTANT
from sandbox.stores import Store
from sandbox.stores.base import ATTEMPTS_KEPT

pytestmark = pytest.mark.anyio
A, B = "tn_a", "tn_b"
T0 = 1_700_000_000.0
_n = itertools.count(1)


def job(due: float, tag: str = "") -> tuple[str, float, bytes]:
    n = next(_n)
    return f"job_{n}", due, f'{{"n": {n}, "tag": "{tag}", "text": "\u00e9\\n"}}'.encode()


async def test_endpoints_are_kept_oldest_first_and_counted_on_the_tenant(store: Store) -> None:
    assert await store.tenant(A) is None
    assert await store.add_hook(A, "we_1", b'{"id": "we_1"}', limit=3)
    assert await store.add_hook(A, "we_2", b'{"id": "we_2"}', limit=3)
    meta = await store.tenant(A)
    assert meta is not None
    assert meta.hooks == 2
    assert await store.hooks(A) == [b'{"id": "we_1"}', b'{"id": "we_2"}']
    assert await store.hooks(B) == []
    assert await store.tenant(B) is None


async def test_an_endpoint_over_the_limit_is_refused_and_not_stored(store: Store) -> None:
    for n in range(2):
        assert await store.add_hook(A, f"we_{n}", b"{}", limit=2)
    assert not await store.add_hook(A, "we_x", b'{"x": 1}', limit=2)
    assert len(await store.hooks(A)) == 2
    meta = await store.tenant(A)
    assert meta is not None
    assert meta.hooks == 2


async def test_removing_an_endpoint_forgets_it_and_its_attempts(store: Store) -> None:
    await store.add_hook(A, "we_1", b"1", limit=5)
    await store.add_hook(A, "we_2", b"2", limit=5)
    await store.log_attempt(A, "we_1", b"try")
    assert await store.remove_hook(A, "we_1")
    assert not await store.remove_hook(A, "we_1")
    assert not await store.remove_hook(B, "we_2")
    assert await store.hooks(A) == [b"2"]
    assert await store.attempts(A, "we_1") == []
    meta = await store.tenant(A)
    assert meta is not None
    assert meta.hooks == 1


async def test_a_tenant_without_endpoints_counts_none(store: Store) -> None:
    meta = await store.tenant(A, create=True)
    assert meta is not None
    assert meta.hooks == 0


async def test_jobs_are_taken_when_due_earliest_first_and_only_once(store: Store) -> None:
    await store.tenant(A, create=True)
    await store.tenant(B, create=True)
    late, early, later = job(T0 + 5, "late"), job(T0 + 1, "early"), job(T0 + 50, "later")
    assert await store.queue(A, [late, early], limit=10) == 2
    assert await store.queue(B, [later], limit=10) == 1
    assert await store.take(T0, 10) == []
    assert await store.take(T0 + 10, 10) == [(A, early[2]), (A, late[2])]
    assert await store.take(T0 + 10, 10) == []
    assert await store.take(T0 + 100, 10) == [(B, later[2])]


async def test_take_answers_at_most_its_limit(store: Store) -> None:
    await store.tenant(A, create=True)
    jobs = [job(T0 + n) for n in range(5)]
    await store.queue(A, jobs, limit=10)
    assert await store.take(T0 + 10, 2) == [(A, jobs[0][2]), (A, jobs[1][2])]
    assert await store.take(T0 + 10, 10) == [(A, j[2]) for j in jobs[2:]]


async def test_a_tenants_queue_is_bounded(store: Store) -> None:
    await store.tenant(A, create=True)
    assert await store.queue(A, [job(T0) for _ in range(3)], limit=4) == 3
    assert await store.queue(A, [job(T0), job(T0)], limit=4) == 1
    assert len(await store.take(T0, 100)) == 4
    assert await store.queue(A, [job(T0), job(T0)], limit=4) == 2  # taking makes room


async def test_jobs_create_no_tenant(store: Store) -> None:
    assert await store.queue(A, [job(T0)], limit=10) == 0
    assert await store.tenant(A) is None
    assert await store.take(T0 + 1, 10) == []


async def test_advancing_a_tenants_clock_brings_its_jobs_forward_and_no_others(store: Store) -> None:
    await store.tenant(A, create=True)
    await store.tenant(B, create=True)
    mine, theirs = job(T0 + 3600), job(T0 + 3600)
    await store.queue(A, [mine], limit=10)
    await store.queue(B, [theirs], limit=10)
    assert await store.advance_clock(A, 3000, T0, LAST_INSTANT) is not None
    assert await store.take(T0 + 599, 10) == []
    assert await store.take(T0 + 601, 10) == [(A, mine[2])]
    assert await store.take(T0 + 3599, 10) == []
    assert await store.take(T0 + 3601, 10) == [(B, theirs[2])]


async def test_a_refused_clock_move_leaves_jobs_where_they_were(store: Store) -> None:
    await store.tenant(A, create=True)
    queued = job(T0 + 100)
    await store.queue(A, [queued], limit=10)
    assert await store.advance_clock(A, 50, LAST_INSTANT - 10, LAST_INSTANT) is None
    assert await store.take(T0 + 99, 10) == []
    assert await store.take(T0 + 100, 10) == [(A, queued[2])]


async def test_attempts_are_kept_per_endpoint_oldest_first_up_to_the_cap(store: Store) -> None:
    await store.add_hook(A, "we_1", b"{}", limit=5)
    await store.add_hook(A, "we_2", b"{}", limit=5)
    for n in range(ATTEMPTS_KEPT + 5):
        await store.log_attempt(A, "we_1", f"a{n}".encode())
    await store.log_attempt(A, "we_2", b"other")
    kept = await store.attempts(A, "we_1")
    assert kept == [f"a{n}".encode() for n in range(5, ATTEMPTS_KEPT + 5)]
    assert await store.attempts(A, "we_2") == [b"other"]
    assert await store.attempts(B, "we_1") == []


async def test_attempts_create_no_tenant(store: Store) -> None:
    await store.log_attempt(A, "we_1", b"x")
    assert await store.tenant(A) is None
    assert await store.attempts(A, "we_1") == []


async def test_a_reset_takes_the_tenants_endpoints_jobs_and_attempts_and_only_its(store: Store) -> None:
    for key in (A, B):
        await store.add_hook(key, "we_1", key.encode(), limit=5)
        await store.log_attempt(key, "we_1", key.encode())
        await store.queue(key, [job(T0, key)], limit=10)
    await store.reset(A)
    assert await store.hooks(A) == []
    assert await store.attempts(A, "we_1") == []
    assert [tenant for tenant, _ in await store.take(T0 + 1, 10)] == [B]
    assert await store.hooks(B) == [B.encode()]
    assert await store.attempts(B, "we_1") == [B.encode()]
    await store.queue(B, [job(T0)], limit=10)
    await store.reset(None)
    assert await store.hooks(B) == []
    assert await store.take(T0 + 1, 10) == []


async def test_a_dropped_tenant_leaves_no_endpoints_jobs_or_attempts(store: Store) -> None:
    store.max_tenants = 2
    await store.add_hook(A, "we_1", b"a", limit=5)
    await store.log_attempt(A, "we_1", b"a")
    await store.queue(A, [job(T0)], limit=10)
    await store.tenant("tn_c", create=True)
    await store.tenant("tn_d", create=True)  # A, the least recently used, goes
    assert await store.tenant(A) is None
    assert await store.hooks(A) == []
    assert await store.attempts(A, "we_1") == []
    assert await store.take(T0 + 1, 10) == []
    meta = await store.tenant(A, create=True)
    assert meta is not None
    assert meta.hooks == 0


async def test_two_processes_taking_at_once_get_each_job_once(pair: tuple[Store, Store]) -> None:
    first, second = pair
    await first.tenant(A, create=True)
    await first.tenant(B, create=True)
    queued = [job(T0 + n / 100) for n in range(200)]
    await first.queue(A, queued[:100], limit=1000)
    await second.queue(B, queued[100:], limit=1000)
    now = time.time()
    rounds = await asyncio.gather(*(store.take(now, 7) for _ in range(20) for store in (first, second)))
    taken = [raw for answer in rounds for _, raw in answer]
    while True:  # what the rounds left
        more = await first.take(now, 50)
        if not more:
            break
        taken += [raw for _, raw in more]
    assert sorted(taken) == sorted(raw for _, _, raw in queued)
