"""GET /charges: newest first, paging, totals and the status filter."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio

LIST = "/v1/payments/charges"


async def test_empty_tenant_lists_nothing(api):
    assert await api.list() == {"data": [], "total": 0, "limit": 20, "offset": 0}


async def test_newest_first(api):
    ids = [(await api.charge(amount=100 + n))["id"] for n in range(3)]
    page = await api.list()
    assert [c["id"] for c in page["data"]] == ids[::-1]
    assert page["total"] == 3


async def test_default_limit_is_20(api):
    for _ in range(21):
        await api.charge()
    page = await api.list()
    assert page["limit"] == 20
    assert len(page["data"]) == 20
    assert page["total"] == 21


async def test_limit_and_offset_page_through_everything(api):
    ids = [(await api.charge())["id"] for _ in range(5)]
    seen = []
    for offset in range(0, 5, 2):
        page = await api.list(limit=2, offset=offset)
        assert (page["limit"], page["offset"], page["total"]) == (2, offset, 5)
        seen += [c["id"] for c in page["data"]]
    assert seen == ids[::-1]


async def test_offset_past_the_end_is_empty_but_counts(api):
    await api.charge()
    page = await api.list(offset=5)
    assert page["data"] == []
    assert page["total"] == 1


async def test_limit_bounds_are_inclusive(api):
    await api.charge()
    assert len((await api.list(limit=1))["data"]) == 1
    assert (await api.list(limit=100))["limit"] == 100


@pytest.mark.parametrize(
    ("status", "amount"),
    [("succeeded", 1500), ("failed", 100005), ("pending", 100202)],
)
async def test_status_filter(api, client, status, amount):
    await api.charge(amount=42)  # one succeeded charge that the failed/pending filters must leave out
    made = await client.post("/v1/payments/charge", json={"amount": amount, "currency": "USD"})
    charge_id = made.json().get("id") or made.json()["error"]["charge"]
    page = await api.list(status=status)
    assert charge_id in [c["id"] for c in page["data"]]
    assert all(c["status"] == status for c in page["data"])
    assert page["total"] == len(page["data"]) == (2 if status == "succeeded" else 1)


async def test_total_counts_all_filter_matches_beyond_the_page(api):
    for _ in range(3):
        await api.charge()
    await api.client.post("/v1/payments/charge", json={"amount": 100005, "currency": "USD"})
    page = await api.list(status="succeeded", limit=1)
    assert len(page["data"]) == 1
    assert page["total"] == 3
    assert (await api.list())["total"] == 4


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"status": "refunded"}, "status"),
        ({"status": "SUCCEEDED"}, "status"),
        ({"status": ""}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"offset": "99999999999999999999"}, "offset"),
    ],
)
async def test_bad_query_is_400_naming_the_parameter(api, client, query, param):
    response = await client.get(LIST, params=query)
    api.error(response, 400, code="parameter_invalid", param=param)
