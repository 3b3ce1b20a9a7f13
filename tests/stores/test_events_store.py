"""A tenant's events (Store.add_events / Store.events) and what settle_due answers, on every engine:
events come back oldest first, the newest EVENTS_KEPT stay, a reset or drop takes them, each tenant
keeps its own; and each settled charge is answered to exactly one settle_due call, even when two
processes (two store objects on one SQLite file or one Redis database) settle at once."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from sandbox.models import Charge, Event, Status
from sandbox.settings import Settings
from sandbox.stores import Store
from sandbox.stores.base import EVENTS_KEPT
from sandbox.stores.sqlite import SQLiteStore
from sandbox.stores.sqlite_rows import SCHEMA_VERSION, path_of

pytestmark = pytest.mark.anyio
A, B = "tn_a", "tn_b"
_n = itertools.count(1)


def event(kind: str = "charge.succeeded", created: float = 1_000_000.0, **data: object) -> Event:
    n = next(_n)
    body = {"id": f"ch_{n}", "n": n, "text": "é \u2028 \n", **data}
    return Event(f"evt_{n}", kind, created + n / 8, json.dumps(body).encode())


def charge(status: Status = Status.SUCCEEDED, **fields: object) -> Charge:
    return Charge(f"ch_{next(_n)}", 0, 100, "USD", None, {}, status, 1_000_000.0, **fields)  # type: ignore[arg-type]


def pending(settle_at: float, to: str | None = "succeeded", code: str | None = None) -> Charge:
    return charge(Status.PENDING, settle_at=settle_at, settle_to=to, settle_code=code)


# -- events -----------------------------------------------------------------------------------
async def test_a_new_charge_stores_its_events_with_it_even_for_a_new_tenant(store: Store) -> None:
    told = [event(), event("charge.pending")]

    await store.add_charge(A, charge(), None, None, told)

    assert await store.events(A) == told
    assert await store.events(B) == []


async def test_events_come_back_oldest_first_as_they_went_in(store: Store) -> None:
    await store.tenant(A, create=True)
    assert await store.events(A) == []
    first = [event(), event("charge.pending")]
    second = [event("refund.succeeded", refund="rf_1")]
    await store.add_events(A, first)
    await store.add_events(A, [])
    await store.add_events(A, second)
    found = await store.events(A)
    assert found == first + second
    assert found[0].data == first[0].data  # the object's JSON, byte for byte


async def test_beyond_events_kept_the_oldest_go(store: Store) -> None:
    await store.tenant(A, create=True)
    made = [event() for _ in range(EVENTS_KEPT + 30)]
    await store.add_events(A, made[:700])
    await store.add_events(A, made[700:])
    found = await store.events(A)
    assert len(found) == EVENTS_KEPT
    assert found == made[-EVENTS_KEPT:]
    later = event()
    await store.add_events(A, [later])
    found = await store.events(A)
    assert (len(found), found[0], found[-1]) == (EVENTS_KEPT, made[31], later)


async def test_one_call_of_more_than_events_kept_keeps_its_newest(store: Store) -> None:
    await store.tenant(A, create=True)
    made = [event() for _ in range(EVENTS_KEPT + 5)]
    await store.add_events(A, made)
    assert await store.events(A) == made[5:]


async def test_each_tenant_keeps_its_own_events_and_its_own_cap(store: Store) -> None:
    await store.tenant(A, create=True)
    await store.tenant(B, create=True)
    mine, theirs = [], []
    for _ in range(EVENTS_KEPT // 100 + 2):  # interleaved: a shared numbering must not shorten either's cap
        batch_a, batch_b = [event() for _ in range(60)], [event() for _ in range(60)]
        await store.add_events(A, batch_a)
        await store.add_events(B, batch_b)
        mine += batch_a
        theirs += batch_b
    assert await store.events(A) == mine[-EVENTS_KEPT:]
    assert await store.events(B) == theirs[-EVENTS_KEPT:]
    assert await store.events("tn_none") == []


async def test_a_reset_takes_the_tenants_events_and_only_its(store: Store) -> None:
    await store.tenant(A, create=True)
    await store.tenant(B, create=True)
    kept = [event()]
    await store.add_events(A, [event(), event()])
    await store.add_events(B, kept)
    await store.reset(A)
    assert await store.events(A) == []
    assert await store.events(B) == kept
    await store.tenant(A, create=True)  # the same name again starts with none
    assert await store.events(A) == []
    await store.add_events(A, [event()])
    await store.reset(None)
    assert await store.events(A) == []
    assert await store.events(B) == []


async def test_a_dropped_tenant_leaves_no_events(store: Store) -> None:
    store.max_tenants = 2
    await store.tenant(A, create=True)
    await store.add_events(A, [event()])
    await store.tenant(B, create=True)
    await store.add_charge("tn_c", charge(), None, None, [])  # A, the least recently used, goes
    assert await store.tenant(A) is None
    assert await store.events(A) == []
    await store.tenant(A, create=True)
    assert await store.events(A) == []


async def test_events_create_no_tenant(store: Store) -> None:
    await store.add_events(A, [event()])
    assert await store.tenant(A) is None
    assert (await store.summaries(0, 10))[1] == 0


# -- settle_due answers what it settled ---------------------------------------------------------
async def test_settle_due_answers_the_charges_it_settled_once(store: Store) -> None:
    late = pending(1_000_300.0)
    fails = pending(1_000_200.0, "failed", "insufficient_funds")
    first = pending(1_000_100.0, None)
    for made in (late, charge(), fails, first):
        await store.add_charge(A, made, None, None, [])
    assert await store.settle_due(A, 1_000_050.0) == []
    settled = await store.settle_due(A, 1_000_250.0)
    assert [c.id for c in settled] == [first.id, fails.id]  # in the order they fell due
    assert settled == [await store.charge(A, first.id), await store.charge(A, fails.id)]  # as they are now
    ok, failed = settled
    assert (ok.status, ok.settled_at, ok.settle_at, ok.failure_code) == ("succeeded", 1_000_100.0, None, None)
    assert (failed.status, failed.failure_code, failed.settled_at) == ("failed", "insufficient_funds", 1_000_200.0)
    assert (ok.seq, ok.amount, ok.currency) == (first.seq, 100, "USD")
    assert await store.settle_due(A, 1_000_250.0) == []
    assert [c.id for c in await store.settle_due(A, 2e9)] == [late.id]
    assert await store.settle_due(A, 2e9) == []
    assert await store.settle_due("tn_none", 2e9) == []


async def test_settle_due_answers_only_the_tenants_own(store: Store) -> None:
    mine, theirs = pending(10.0), pending(10.0)
    await store.add_charge(A, mine, None, None, [])
    await store.add_charge(B, theirs, None, None, [])
    assert [c.id for c in await store.settle_due(A, 20.0)] == [mine.id]
    assert [c.id for c in await store.settle_due(B, 20.0)] == [theirs.id]


async def test_two_processes_settling_at_once_get_each_charge_once(pair: tuple[Store, Store]) -> None:
    due = [pending(1_000_000.0 + n, "failed" if n % 3 == 0 else "succeeded") for n in range(30)]
    later = pending(3e9)
    for made in [*due, later]:
        await pair[0].add_charge(A, made, None, None, [])
    answers = await asyncio.gather(*(pair[n % 2].settle_due(A, 2e9) for n in range(8)))
    got = [c.id for answer in answers for c in answer]
    assert sorted(got) == sorted(c.id for c in due)  # each due charge exactly once, the later one never
    assert all(c.status in ("succeeded", "failed") and c.settle_at is None for answer in answers for c in answer)
    summary = await pair[1].summary(A)
    assert summary is not None
    assert summary.counts == {"succeeded": 20, "pending": 1, "failed": 10}
    assert await pair[1].settle_due(A, 2e9) == []


async def test_sqlite_processes_in_threads_settle_each_charge_once(tmp_path: Path) -> None:
    """Two SQLite connections in two threads, each with its own event loop, really at once."""
    settings = Settings(store=f"sqlite:///{tmp_path / 'race.db'}")
    stores = [SQLiteStore(settings), SQLiteStore(settings)]
    try:
        due = [pending(float(n)) for n in range(200)]
        for made in due:
            await stores[0].add_charge(A, made, None, None, [])
        got: list[list[str]] = [[], []]
        start = threading.Barrier(2)

        def settle(n: int) -> None:
            async def go() -> None:
                for now in range(0, 201, 5):
                    got[n] += [c.id for c in await stores[n].settle_due(A, float(now))]

            start.wait()
            asyncio.run(go())

        threads = [threading.Thread(target=settle, args=(n,)) for n in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(got[0] + got[1]) == sorted(c.id for c in due)
    finally:
        for opened in stores:
            await opened.close()


# -- an older SQLite file takes the events table ------------------------------------------------
@pytest.mark.parametrize("version", ["1", "2"])
async def test_an_older_sqlite_file_is_upgraded(tmp_path: Path, version: str) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    made = SQLiteStore(Settings(store=url))
    await made.add_charge(A, charge(), None, None, [])
    await made.close()
    db = sqlite3.connect(path_of(url))
    db.execute("DROP TABLE events")
    if version == "1":
        db.execute("ALTER TABLE journal DROP COLUMN notes")
    db.execute("UPDATE meta SET value = ? WHERE name = 'schema'", (version,))
    db.commit()
    db.close()
    upgraded = SQLiteStore(Settings(store=url))
    try:
        assert (await upgraded.page(A, None, 10, 0))[1] == 1
        kept = [event()]
        await upgraded.add_events(A, kept)
        assert await upgraded.events(A) == kept
        (found,) = upgraded._read("SELECT value FROM meta WHERE name = 'schema'")[0]
        assert found == SCHEMA_VERSION
    finally:
        await upgraded.close()
