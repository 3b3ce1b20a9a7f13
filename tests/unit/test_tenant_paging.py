"""store.Tenant.page: newest first, any offset, per-status lists that follow status changes."""

from __future__ import annotations

import itertools

import pytest

from sandbox.models import Charge
from sandbox.store import Tenant

_seq = itertools.count(1)


def add(tenant: Tenant, status: str = "succeeded") -> Charge:
    seq = next(_seq)
    charge = Charge(f"ch_{seq}", seq, 100, "USD", None, {}, status, 0.0)
    tenant.add_charge(charge)
    return charge


def ids(rows: list[Charge]) -> list[str]:
    return [c.id for c in rows]


@pytest.fixture
def tenant() -> Tenant:
    return Tenant("tn_test")


def test_empty(tenant):
    assert tenant.page(None, 20, 0) == ([], 0)


def test_newest_first(tenant):
    made = [add(tenant) for _ in range(3)]
    rows, total = tenant.page(None, 20, 0)
    assert ids(rows) == ids(made[::-1])
    assert total == 3


@pytest.mark.parametrize(
    ("limit", "offset"), [(1, 0), (2, 0), (2, 1), (3, 3), (4, 8), (10, 0), (1, 9), (5, 10), (5, 50)]
)
def test_any_window_matches_slicing_the_newest_first_list(tenant, limit, offset):
    made = [add(tenant) for _ in range(10)]
    rows, total = tenant.page(None, limit, offset)
    assert ids(rows) == ids(made[::-1][offset : offset + limit])
    assert total == 10


def test_status_filter_counts_only_matches(tenant):
    ok = [add(tenant), add(tenant)]
    failed = add(tenant, "failed")
    add(tenant, "pending")
    assert tenant.page("succeeded", 1, 0) == ([ok[1]], 2)
    assert tenant.page("failed", 20, 0) == ([failed], 1)
    assert tenant.page(None, 20, 0)[1] == 4


def test_status_change_moves_the_charge_keeping_order(tenant):
    first = add(tenant, "pending")
    middle = add(tenant)
    last = add(tenant, "pending")
    tenant.set_status(first, "succeeded")
    assert first.status == "succeeded"
    assert tenant.page("succeeded", 20, 0) == ([middle, first], 2)
    assert tenant.page("pending", 20, 0) == ([last], 1)
    assert ids(tenant.page(None, 20, 0)[0]) == ids([last, middle, first])


def test_settlements_come_due_in_time_order(tenant):
    late = Charge("ch_late", next(_seq), 100, "USD", None, {}, "pending", 0.0, settle_at=200.0)
    early = Charge("ch_early", next(_seq), 100, "USD", None, {}, "pending", 0.0, settle_at=100.0)
    tenant.add_charge(late)
    tenant.add_charge(early)
    assert tenant.due_settlements(50.0) == []
    assert tenant.due_settlements(150.0) == [early]
    assert tenant.due_settlements(1e9) == [late]
    assert tenant.due_settlements(1e9) == []
