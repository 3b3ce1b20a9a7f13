"""What the client got wrong: findings made from each tenant's traffic, and what it has met.

`Watcher.observe` runs on every API call, as the call is journaled: it remembers a little of each
tenant's recent calls (bounded: see the limits below) and names the findings the call shows, which
the journal entry keeps and the answer carries in `Sandbox-Warning`. `findings_of` lists them for
GET /__sandbox/findings, adding `pending_never_resolved`, which only the journal and the store can
tell once time has passed; `coverage_of` answers GET /__sandbox/coverage.

Each process watches the calls it serves: with several workers a retry that lands on another
worker than the call it repeats is not seen as one (`idempotency_key_reused` is still found, from
the answer itself).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import orjson

from sandbox.models import Entry, FaultKind, Finding, Status, rfc3339

if TYPE_CHECKING:  # tenants.py imports this module
    from sandbox.tenants import Tenants

# Every code, in the order a call's findings are listed, and the one line of advice each gets.
ADVICE = {
    "retry_without_idempotency_key": "send an Idempotency-Key with every POST so a retry cannot charge twice",
    "idempotency_key_reused": "use a new Idempotency-Key for each payment and reuse one only to retry that payment",
    "retry_after_ignored": "wait the seconds the Retry-After header names before retrying",
    "retried_hard_decline": "do not retry a decline marked retryable false; ask the customer for another card",
    "pending_never_resolved": "read a pending charge again (GET /charge/{id}) until it is no longer pending",
    "hammering": "wait between identical GETs (at most 10 a second) or keep the answer you got",
}
CODES = tuple(ADVICE)
FAULTS = tuple(sorted(kind.value for kind in FaultKind))
# Codes of the API's own errors a client can meet on the four operations (rule sets add theirs).
API_ERROR_CODES = frozenset(
    {
        "amount_too_large",
        "charge_already_refunded",
        "charge_not_refundable",
        "idempotency_conflict",
        "idempotency_error",
        "parameter_invalid",
        "parameter_missing",
        "resource_missing",
    }
)

RETRY_WINDOW = 60.0  # seconds after a failed or declined POST in which the same POST counts as its retry
HAMMER_CALLS = 10  # identical GETs allowed in HAMMER_SECONDS; one more is hammering
HAMMER_SECONDS = 1.0
HAMMER_QUIET = 60.0  # seconds before hammering on the same path is reported again
# Memory limits: tenants remembered (least recently seen forgotten first; as many as the store keeps,
# --max-tenants), items of each kind per tenant (oldest forgotten first), and items in all (whole
# tenants forgotten, least recent first).
MAX_TENANTS = 10_000  # the default of --max-tenants
MAX_KEYS = 64
MAX_POSTS = 32
MAX_PATHS = 16
MAX_ITEMS = 100_000  # about 200 bytes each: 20 MB at worst


class _Post:
    """A failed or declined POST, kept while a repeat of it would be a retry."""

    __slots__ = ("at", "failed", "hard", "id", "not_before")

    def __init__(self, id: str, at: float, failed: bool, hard: bool, not_before: float) -> None:
        self.id, self.at, self.failed, self.hard, self.not_before = id, at, failed, hard, not_before


class _Memory:
    """One tenant's recent calls: only what a later call needs to be judged by."""

    __slots__ = ("gets", "keys", "posts", "reported", "waits", "weight")

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}  # Idempotency-Key -> the first call that used it
        self.waits: dict[str, tuple[str, float]] = {}  # Idempotency-Key -> (call, not before) from Retry-After
        self.posts: dict[bytes, _Post] = {}  # path and canonical body -> the last failed or declined POST
        self.gets: dict[str, deque[tuple[float, str]]] = {}  # path?query -> its latest GETs (started, id)
        self.reported: dict[str, float] = {}  # path -> when hammering on it was last reported
        self.weight = 0  # items held, as the watcher last counted them

    def count(self) -> int:
        gets = len(self.gets) * (HAMMER_CALLS + 1)
        return len(self.keys) + len(self.waits) + len(self.posts) + gets + len(self.reported)


class Watcher:
    """Each tenant's recent calls in this process, enough to tell a finding when a call shows one."""

    def __init__(self, max_tenants: int = MAX_TENANTS) -> None:
        self.max_tenants = max_tenants
        self.tenants: OrderedDict[str, _Memory] = OrderedDict()
        self.items = 0

    def observe(self, entry: Entry, headers: Mapping[str, str]) -> tuple[Finding, ...]:
        """The findings `entry` (about to be journaled; `headers` are the ones its answer carries)
        shows, in the order of CODES."""
        tenant = entry.tenant
        if tenant is None:
            return ()
        memory = self.tenants.get(tenant)
        if memory is None:
            memory = self.tenants[tenant] = _Memory()
        else:
            self.tenants.move_to_end(tenant)
        found: tuple[Finding, ...] = ()
        if entry.method == "GET":
            target = f"{entry.path}?{entry.query}" if entry.query else entry.path
            calls = memory.gets.get(target)
            if calls is None:  # a path not watched yet
                memory.gets[target] = deque([(entry.started, entry.id)], maxlen=HAMMER_CALLS + 1)
                _trim(memory.gets, MAX_PATHS)
            else:
                calls.append((entry.started, entry.id))
                found = _hammering(memory, entry, calls)
                if not found:
                    return found  # the usual GET: nothing more is remembered, nothing to count or drop
        elif entry.method == "POST":
            found = _post(memory, entry, headers)
        else:
            return ()
        weight = memory.count()
        if weight != memory.weight:
            self.items += weight - memory.weight
            memory.weight = weight
        while len(self.tenants) > self.max_tenants or self.items > MAX_ITEMS:
            self.items -= self.tenants.popitem(last=False)[1].weight
        return found

    def forget(self, tenant: str | None) -> None:
        """Drop what is remembered of one tenant (reset), or of every tenant."""
        if tenant is None:
            self.tenants.clear()
            self.items = 0
        else:
            memory = self.tenants.pop(tenant, None)
            self.items -= memory.weight if memory is not None else 0


def warning(found: tuple[Finding, ...]) -> str:
    """The `Sandbox-Warning` header's value for a call that showed `found`: `code: advice`, joined
    by ", " (the advice has no commas, and is ASCII)."""
    return ", ".join(f"{f.code}: {ADVICE[f.code]}" for f in found)


# -- judging one call ---------------------------------------------------------------------------
def _hammering(memory: _Memory, entry: Entry, calls: deque[tuple[float, str]]) -> tuple[Finding, ...]:
    """`calls`: the path's latest GETs, `entry` the last of them."""
    if len(calls) <= HAMMER_CALLS or entry.started - calls[0][0] >= HAMMER_SECONDS:
        return ()
    last = memory.reported.get(entry.path)
    if last is not None and entry.started - last < HAMMER_QUIET:
        return ()
    memory.reported[entry.path] = entry.started
    _trim(memory.reported, MAX_PATHS)
    return (Finding("hammering", tuple(call_id for _, call_id in calls)),)


def _post(memory: _Memory, entry: Entry, headers: Mapping[str, str]) -> tuple[Finding, ...]:
    status, key, now = entry.status, entry.idempotency_key, entry.started
    failed = status >= 500 or status in (0, 429, 499) or entry.fault is not None
    error = _error(entry.response_body) if status >= 400 else None
    hard = error is not None and error.get("retryable") is False
    answered = now + entry.duration
    not_before = _not_before(headers, answered) if status >= 400 else 0.0
    found: list[Finding] = []
    first = None
    if key is not None:
        first = memory.keys.get(key)
        if first is None:
            memory.keys[key] = entry.id
            _trim(memory.keys, MAX_KEYS)
    if memory.posts and now - next(reversed(memory.posts.values())).at > RETRY_WINDOW:
        memory.posts.clear()  # even the newest is too old to be retried: no fingerprint needed
    # Only a POST that may be a retry, or that a retry may repeat, needs its body fingerprinted.
    fingerprint = _fingerprint(entry) if memory.posts or failed or hard or not_before > answered else None
    earlier = memory.posts.get(fingerprint) if fingerprint is not None else None
    if earlier is not None and now - earlier.at > RETRY_WINDOW:
        earlier = None
    if earlier is not None and earlier.failed and key is None:
        found.append(Finding("retry_without_idempotency_key", (earlier.id, entry.id)))
    if error is not None and error.get("code") == "idempotency_error":
        found.append(Finding("idempotency_key_reused", (first, entry.id) if first else (entry.id,)))
    waited = memory.waits.pop(key, None) if key is not None and memory.waits else None
    if waited is not None and now < waited[1]:
        found.append(Finding("retry_after_ignored", (waited[0], entry.id)))
    elif earlier is not None and now < earlier.not_before:
        found.append(Finding("retry_after_ignored", (earlier.id, entry.id)))
    if earlier is not None and earlier.hard:
        found.append(Finding("retried_hard_decline", (earlier.id, entry.id)))
    if key is not None and not_before > answered:
        memory.waits[key] = (entry.id, not_before)
        _trim(memory.waits, MAX_KEYS)
    if fingerprint is not None:
        memory.posts.pop(fingerprint, None)  # kept again, as the newest, when this one failed too
        if failed or hard or not_before > answered:
            memory.posts[fingerprint] = _Post(entry.id, answered, failed, hard, not_before)
            _trim(memory.posts, MAX_POSTS)
    return tuple(found)


def _trim(items: dict[Any, Any], limit: int) -> None:
    if len(items) > limit:
        del items[next(iter(items))]  # the oldest: dicts keep insertion order


def _fingerprint(entry: Entry) -> bytes:
    """The path and the body canonicalised (keys sorted, no spaces): a retry serialised another
    way is still the same request; a body that is not JSON counts byte for byte."""
    raw = entry.request_body or b""
    # Not JSON (or integers orjson does not take): compared as sent.
    with contextlib.suppress(orjson.JSONDecodeError, orjson.JSONEncodeError):
        raw = orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(entry.path.encode() + b" " + raw, digest_size=16).digest()


def _error(body: bytes) -> dict[str, Any] | None:
    """The `error` object of an answer's body, if it has one."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else None


def _not_before(headers: Mapping[str, str], answered: float) -> float:
    """When the answer's Retry-After (seconds after the answer, or an HTTP date) lets a retry come;
    0 when it has none: only a Retry-After asks a client to wait (a retry sent while a call it gave
    up on was still being processed ignores nothing)."""
    value = headers.get("Retry-After")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        if value is None:
            return 0.0
    try:
        return answered + max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp(), answered)
    except (TypeError, ValueError):
        return 0.0  # not a Retry-After a client could follow either


# -- the reports --------------------------------------------------------------------------------
async def findings_of(tenants: Tenants, tenant: str | None, code: str | None = None) -> list[dict[str, Any]]:
    """GET /__sandbox/findings: the findings of one tenant or of all, oldest first; of one code
    when `code` is given. The journal holds the ones found as calls came; pending charges are
    judged now, against the store, with each tenant's clock."""
    entries = list(reversed(await tenants.store.entries(tenant)))
    listed: list[tuple[float, dict[str, Any]]] = [
        (entry.started, _view(finding.code, entry, finding.requests))
        for entry in entries
        for finding in entry.findings
        if code is None or finding.code == code
    ]
    if code is None or code == "pending_never_resolved":
        listed += await _unresolved(tenants, entries)
    listed.sort(key=lambda item: item[0])
    return [view for _, view in listed]


def _view(code: str, entry: Entry, requests: Iterable[str]) -> dict[str, Any]:
    return {
        "code": code,
        "tenant": entry.tenant,
        "at": rfc3339(entry.started),
        "requests": list(requests),
        "advice": ADVICE[code],
    }


async def _unresolved(tenants: Tenants, entries: list[Entry]) -> list[tuple[float, dict[str, Any]]]:
    """pending_never_resolved: charges the client was shown pending, never shown settled since,
    that have settled by now, and whose settlement no endpoint of the tenant answered 2xx to."""
    shown: dict[tuple[str, str], list[Entry]] = {}  # (tenant, charge id) -> the calls that showed it pending
    for entry in entries:  # oldest first
        if entry.tenant is None or not 200 <= entry.status < 300:
            continue
        if not shown and b'"pending"' not in entry.response_body:
            continue  # nothing pending seen yet, so nothing this call shows matters
        for shown_charge in _charges(entry.response_body):
            ref = (entry.tenant, shown_charge["id"])
            if shown_charge.get("status") == Status.PENDING:
                shown.setdefault(ref, []).append(entry)
            else:
                shown.pop(ref, None)
    found = []
    heard: dict[str, set[str]] = {}  # tenant -> charges whose settlement its endpoints acknowledged
    webhooks = tenants.payments.webhooks
    for (tenant, charge_id), calls in shown.items():
        await tenants.payments.tenant(tenant)  # settles what is due by the tenant's clock
        charge = await tenants.store.charge(tenant, charge_id)
        if charge is not None and charge.status != Status.PENDING:
            if webhooks is not None and tenant not in heard:
                heard[tenant] = await webhooks.delivered(tenant, ("charge.succeeded", "charge.failed"))
            if charge_id in heard.get(tenant, ()):
                continue  # the client heard of the settlement by webhook

            requests = dict.fromkeys((calls[0].id, calls[-1].id))
            found.append((calls[-1].started, _view("pending_never_resolved", calls[-1], requests)))
    return found


def _charges(body: bytes) -> list[dict[str, Any]]:
    """The charges an answer showed: one charge, or a page of them (a refund has no amount_refunded)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(parsed, dict):
        return []
    data = parsed.get("data")
    items = data if isinstance(data, list) else [parsed]
    return [c for c in items if isinstance(c, dict) and isinstance(c.get("id"), str) and "amount_refunded" in c]


async def coverage_of(tenants: Tenants, tenant: str | None) -> dict[str, dict[str, list[str]]]:
    """GET /__sandbox/coverage: the scenario rules, error codes and faults the journal shows the
    client met (one tenant, or all together), and those of the tenant's rule set and the API it
    never did."""
    rules = await tenants.rules(tenant)
    codes = API_ERROR_CODES | {rule.error["code"] for rule in rules.rules if rule.error}
    scenarios: set[str] = set()
    errors: set[str] = set()
    faults: set[str] = set()
    for entry in await tenants.store.entries(tenant):
        if entry.scenario:
            scenarios.add(entry.scenario)
        if entry.fault:
            faults.add(entry.fault)
        if entry.status >= 400:
            error = _error(entry.response_body)
            if error is not None and isinstance(error.get("code"), str):
                errors.add(error["code"])
    return {
        "scenarios": _split(scenarios, rules.names()),
        "error_codes": _split(errors, codes),
        "faults": _split(faults, set(FAULTS)),
    }


def _split(met: set[str], universe: Iterable[str]) -> dict[str, list[str]]:
    """What was met (whether or not the universe names it) and what of the universe was not."""
    return {"met": sorted(met), "missing": sorted(set(universe) - met)}
