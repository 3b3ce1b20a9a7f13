"""findings.Watcher and the reports, with journal entries made here: what the in-process HTTP tests
cannot reach quickly or at all (a 60-second window, faults and timeouts, thousands of tenants)."""

from __future__ import annotations

import asyncio
from email.utils import formatdate
from itertools import count

import pytest

from sandbox.app import create_app
from sandbox.findings import ADVICE, CODES, FAULTS, MAX_POSTS, MAX_TENANTS, Watcher, coverage_of, warning
from sandbox.models import Entry, Finding
from sandbox.settings import Settings
from sandbox.tenants import Tenants
from sandbox.worker import Worker

T0 = 1_700_000_000.0
_ids = count()
DECLINE = b'{"error":{"code":"card_declined","message":"No.","param":null,"retryable":false}}'
LIMITED = b'{"error":{"code":"rate_limited","message":"Wait.","param":null,"retryable":true}}'


def call(
    at: float = 0.0,
    *,
    tenant: str = "t",
    method: str = "POST",
    path: str = "/v1/payments/charge",
    status: int = 200,
    body: bytes | None = b'{"amount":1500,"currency":"USD"}',
    key: str | None = None,
    answer: bytes = b"{}",
    fault: str | None = None,
) -> Entry:
    return Entry(f"req_{next(_ids)}", tenant, method, path, "", status, T0 + at, 0.01, key, None, body, answer, fault)


def codes(watcher: Watcher, entry: Entry, headers: dict[str, str] | None = None) -> list[str]:
    return [finding.code for finding in watcher.observe(entry, headers or {})]


@pytest.mark.parametrize(
    ("status", "fault"), [(0, "connection_reset"), (200, "truncated_body"), (499, None), (502, None), (429, None)]
)
def test_a_fault_a_timeout_a_5xx_or_a_429_makes_a_keyless_repeat_a_retry(status, fault):
    watcher = Watcher()
    failed = call(status=status, fault=fault)
    watcher.observe(failed, {})
    retry = call(30)

    assert watcher.observe(retry, {}) == (Finding("retry_without_idempotency_key", (failed.id, retry.id)),)


def test_a_repeat_after_60_seconds_or_with_a_key_or_of_another_body_is_no_retry():
    watcher = Watcher()
    watcher.observe(call(status=500), {})

    assert codes(watcher, call(1, body=b'{"amount":1600,"currency":"USD"}')) == []
    assert codes(watcher, call(2, key="k")) == []
    assert codes(watcher, call(2, path="/v1/payments/refund")) == []
    assert codes(watcher, call(61.1)) == []


def test_a_retry_that_gets_through_ends_the_watch():
    watcher = Watcher()
    watcher.observe(call(status=503), {})
    assert codes(watcher, call(1)) == ["retry_without_idempotency_key"]
    assert codes(watcher, call(2)) == []  # the retry got through: a third equal POST is a new payment


def test_a_keyless_retry_too_soon_shows_both_findings_in_the_order_of_the_codes():
    watcher = Watcher()
    watcher.observe(call(status=429, answer=LIMITED), {"retry-after": "5"})

    assert codes(watcher, call(2)) == ["retry_without_idempotency_key", "retry_after_ignored"]
    assert CODES.index("retry_without_idempotency_key") < CODES.index("retry_after_ignored")


def test_retry_after_as_an_http_date_is_waited_for_too():
    watcher = Watcher()
    later = formatdate(T0 + 3600, usegmt=True)  # an hour after the answer
    watcher.observe(call(status=503, key="k"), {"Retry-After": later})

    assert codes(watcher, call(1, key="k")) == ["retry_after_ignored"]


def test_a_retry_with_the_key_after_retry_after_is_fine():
    watcher = Watcher()
    watcher.observe(call(status=429, key="k", answer=LIMITED), {"Retry-After": "1"})

    assert codes(watcher, call(1.5, key="k")) == []


def test_a_hard_decline_repeated_within_60_seconds_is_retried_hard_decline_and_later_is_not():
    watcher = Watcher()
    declined = call(status=400, answer=DECLINE)
    watcher.observe(declined, {})

    assert codes(watcher, call(59, status=400, answer=DECLINE)) == ["retried_hard_decline"]
    assert codes(watcher, call(59 + 61)) == []


def test_hammering_is_more_than_ten_identical_gets_within_one_second_reported_once_a_minute():
    watcher = Watcher()

    def gets(start: float, spacing: float, path: str = "/v1/payments/charge/ch_1") -> list[list[str]]:
        return [codes(watcher, call(start + n * spacing, method="GET", path=path, body=None)) for n in range(11)]

    assert gets(0, 0.1) == [[]] * 11  # 11 calls over exactly one second
    assert gets(10, 0.09)[-1] == ["hammering"]
    assert gets(20, 0.01) == [[]] * 11  # reported already this minute
    assert gets(20, 0.01, "/v1/payments/charge/ch_2")[-1] == ["hammering"]
    assert gets(71, 0.01)[-1] == ["hammering"]


def test_forgetting_a_tenant_or_all_drops_what_a_retry_would_repeat():
    watcher = Watcher()
    for tenant in ("a", "b", "c"):
        watcher.observe(call(status=500, tenant=tenant), {})

    watcher.forget("a")
    assert codes(watcher, call(1, tenant="a")) == []
    assert codes(watcher, call(1, tenant="b")) == ["retry_without_idempotency_key"]
    watcher.forget(None)
    assert codes(watcher, call(2, tenant="c")) == []


@pytest.mark.parametrize("limit", [MAX_TENANTS, 50])
def test_the_least_recently_seen_tenant_is_forgotten_past_the_limit(limit):
    watcher = Watcher(limit)
    watcher.observe(call(status=500, tenant="first"), {})
    watcher.observe(call(status=500, tenant="second"), {})
    for n in range(limit - 2):
        watcher.observe(call(tenant=f"t{n}"), {})
    assert codes(watcher, call(1, tenant="second")) == ["retry_without_idempotency_key"]  # now the most recent

    watcher.observe(call(tenant="one more"), {})

    assert codes(watcher, call(2, tenant="first")) == []
    watcher.observe(call(3, status=500, tenant="second"), {})
    assert codes(watcher, call(4, tenant="second")) == ["retry_without_idempotency_key"]


def test_a_tenant_remembers_its_latest_failed_posts_only():
    watcher = Watcher()
    bodies = [f'{{"amount":{n},"currency":"USD"}}'.encode() for n in range(MAX_POSTS + 1)]
    for body in bodies:
        watcher.observe(call(status=500, body=body), {})

    assert codes(watcher, call(1, body=bodies[0])) == []
    assert codes(watcher, call(1, body=bodies[1])) == ["retry_without_idempotency_key"]


def test_the_warning_names_each_finding_with_its_advice_in_one_latin_1_header():
    found = (Finding("retry_without_idempotency_key", ("a", "b")), Finding("retry_after_ignored", ("a", "b")))

    value = warning(found)

    assert value == (
        f"retry_without_idempotency_key: {ADVICE['retry_without_idempotency_key']}, "
        f"retry_after_ignored: {ADVICE['retry_after_ignored']}"
    )
    value.encode("latin-1")
    assert all("," not in advice and "\n" not in advice for advice in ADVICE.values())
    assert set(ADVICE) == set(CODES)


def test_coverage_counts_the_faults_the_journal_shows():
    app = create_app(Settings())
    tenants = Tenants(app.api.payments, app.store, Worker(), Watcher())

    async def faults_met() -> dict[str, list[str]]:
        for fault in ("connection_reset", "slow_body"):
            await app.store.record(call(tenant="t", status=0 if fault == "connection_reset" else 200, fault=fault))
        await app.store.record(call(tenant="u", status=0, fault="empty_response"))
        return (await coverage_of(tenants, "t"))["faults"]

    met = asyncio.run(faults_met())

    assert met == {"met": ["connection_reset", "slow_body"], "missing": sorted(set(FAULTS) - set(met["met"]))}
    assert met["missing"] == ["empty_response", "malformed_json", "truncated_body"]
