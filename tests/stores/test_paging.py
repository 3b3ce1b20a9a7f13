"""Store.page: newest first by created_at (then creation order), any offset, per-status lists that
follow settlements; on every engine."""

from __future__ import annotations

import itertools

import pytest

from sandbox.models import Charge, Status
from sandbox.stores import Store

pytestmark = pytest.mark.anyio
KEY = "tn_test"
_ids = itertools.count(1)


async def add(store: Store, status: str = "succeeded", created: float = 1_000_000.0, **fields: object) -> Charge:
    charge = Charge(f"ch_{next(_ids)}", 0, 100, "USD", None, {}, Status(status), created, **fields)  # type: ignore[arg-type]
    await store.add_charge(KEY, charge, None, None, [])
    return charge


def ids(rows: list[Charge]) -> list[str]:
    return [c.id for c in rows]


async def test_empty(store: Store) -> None:
    assert await store.page(KEY, None, 20, 0) == ([], 0)


async def test_newest_first(store: Store) -> None:
    made = [await add(store) for _ in range(3)]
    rows, total = await store.page(KEY, None, 20, 0)
    assert ids(rows) == ids(made[::-1])
    assert total == 3


@pytest.mark.parametrize(
    ("limit", "offset"), [(1, 0), (2, 0), (2, 1), (3, 3), (4, 8), (10, 0), (1, 9), (5, 10), (5, 50)]
)
async def test_any_window_matches_slicing_the_newest_first_list(store: Store, limit: int, offset: int) -> None:
    made = [await add(store) for _ in range(10)]
    rows, total = await store.page(KEY, None, limit, offset)
    assert ids(rows) == ids(made[::-1][offset : offset + limit])
    assert total == 10


async def test_status_filter_counts_only_matches(store: Store) -> None:
    ok = [await add(store), await add(store)]
    failed = await add(store, "failed")
    await add(store, "pending")
    assert ids((await store.page(KEY, "succeeded", 1, 0))[0]) == [ok[1].id]
    assert (await store.page(KEY, "succeeded", 1, 0))[1] == 2
    assert ids((await store.page(KEY, "failed", 20, 0))[0]) == [failed.id]
    assert (await store.page(KEY, None, 20, 0))[1] == 4


async def test_back_dated_charges_sit_where_their_dates_put_them(store: Store) -> None:
    new = await add(store, created=2_000_000.0)
    old = await add(store, created=1_000_000.0)
    middle = await add(store, created=1_500_000.5)
    assert ids((await store.page(KEY, None, 20, 0))[0]) == [new.id, middle.id, old.id]
    assert ids((await store.page(KEY, None, 1, 2))[0]) == [old.id]


async def test_settlement_moves_the_charge_keeping_order(store: Store) -> None:
    first = await add(store, "pending", settle_at=1_000_100.0, settle_to="succeeded")
    middle = await add(store)
    last = await add(store, "pending", settle_at=1_000_200.0, settle_to="failed", settle_code="insufficient_funds")
    await store.settle_due(KEY, 1_000_150.0)
    assert ids((await store.page(KEY, "succeeded", 20, 0))[0]) == [middle.id, first.id]
    assert ids((await store.page(KEY, "pending", 20, 0))[0]) == [last.id]
    settled = await store.charge(KEY, first.id)
    assert settled is not None
    assert (settled.status, settled.settled_at, settled.settle_at) == ("succeeded", 1_000_100.0, None)
    await store.settle_due(KEY, 2e9)
    failed = await store.charge(KEY, last.id)
    assert failed is not None
    assert (failed.status, failed.failure_code) == ("failed", "insufficient_funds")
    assert ids((await store.page(KEY, None, 20, 0))[0]) == [last.id, middle.id, first.id]


async def test_next_settlement_is_the_earliest(store: Store) -> None:
    await add(store, "pending", settle_at=300.0, settle_to="succeeded")
    await add(store, "pending", settle_at=100.0, settle_to="succeeded")
    meta = await store.tenant(KEY)
    assert meta is not None
    assert meta.next_settle == 100.0
    await store.settle_due(KEY, 150.0)
    meta = await store.tenant(KEY)
    assert meta is not None
    assert meta.next_settle == 300.0
