"""The only state: per-tenant charges, refunds, idempotency results, clocks and overrides, and the
bounded journal of API calls.

Everything runs on one event loop and every method here is synchronous, so no locks are needed:
callers must not hold a value read here across an `await` and write it back afterwards.

Memory is bounded by settings, whatever clients send: at most `max_tenants` tenants (the least
recently used is dropped to make room, and only writes create a tenant), at most `MAX_UPLOADED_RULES`
uploaded scenario rules in all (the least recently used tenants holding some are dropped to make
room), per tenant at most `idempotency_keys` saved keys and as many fail-first marks, and a journal
of at most `journal_size` entries of bounded size. Stored charges and refunds are the one thing
that grows with use, as in a real backend; a reset frees them.
"""

from __future__ import annotations

import bisect
import heapq
import json
import logging
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from sandbox.models import Charge, Refund, rfc3339

STATUSES = ("succeeded", "pending", "failed")
MAX_UPLOADED_RULES = 50_000  # scenario rules uploaded for tenants, all together (~2 KB each)
_log = logging.getLogger("sandbox")


def _newest_last(charge: Charge) -> tuple[int, int]:
    """Where a charge sits in a list: by `created_at` (whole seconds, as shown), then creation order."""
    return int(charge.created), charge.seq


@dataclass
class Saved:
    """An idempotency key's result; `reply` is None while the first request is still in flight."""

    fingerprint: str
    created: float
    reply: Any = None


@dataclass
class Tenant:
    key: str
    clock_offset: float = 0.0
    charges: dict[str, Charge] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    refunds_of: dict[str, list[Refund]] = field(default_factory=dict)
    idempotency: OrderedDict[str, Saved] = field(default_factory=OrderedDict)
    failed_once: dict[str, None] = field(default_factory=dict)  # an ordered set, oldest first
    rules: Any = None  # this tenant's own scenario rules (control API), ahead of the files
    uploaded: int = 0  # how many of those rules were uploaded for this tenant (the rest are the files')
    # Charges oldest first by `_newest_last`, overall and per status: a page at any offset is one slice.
    _all: list[Charge] = field(default_factory=list)
    _by_status: dict[str, list[Charge]] = field(default_factory=lambda: {s: [] for s in STATUSES})
    _settlements: list[tuple[float, int, str]] = field(default_factory=list)

    def now(self) -> float:
        return time.time() + self.clock_offset

    def add_charge(self, charge: Charge) -> None:
        self.charges[charge.id] = charge
        second = int(charge.created)
        for rows in (self._all, self._by_status[charge.status]):
            # A charge made through the API is the newest (its seq is the highest), so this is an
            # append; a back-dated (seeded) one is inserted where its date puts it.
            if not rows or int(rows[-1].created) <= second:
                rows.append(charge)
            else:
                bisect.insort(rows, charge, key=_newest_last)
        if charge.settle_at is not None:
            heapq.heappush(self._settlements, (charge.settle_at, charge.seq, charge.id))

    def add_charges(self, charges: list[Charge]) -> None:
        """Many charges at once (a seed): one merge per list instead of an insertion each."""
        for charge in charges:
            self.charges[charge.id] = charge
            if charge.settle_at is not None:
                heapq.heappush(self._settlements, (charge.settle_at, charge.seq, charge.id))
        # Both runs are sorted, so this sort is a linear merge.
        self._all = sorted(self._all + sorted(charges, key=_newest_last), key=_newest_last)
        for status, rows in self._by_status.items():
            mine = [c for c in charges if c.status == status]
            if mine:
                self._by_status[status] = sorted(rows + sorted(mine, key=_newest_last), key=_newest_last)

    def set_status(self, charge: Charge, status: str) -> None:
        old = self._by_status[charge.status]
        del old[bisect.bisect_left(old, _newest_last(charge), key=_newest_last)]
        bisect.insort(self._by_status[status], charge, key=_newest_last)
        charge.status = status

    def counts(self) -> dict[str, int]:
        """Charges per status."""
        return {status: len(rows) for status, rows in self._by_status.items()}

    def fail_once(self, marker: str, limit: int) -> None:
        """Remember that the first attempt of a fail-first request (by key or body) has failed."""
        self.failed_once[marker] = None
        while len(self.failed_once) > limit:
            del self.failed_once[next(iter(self.failed_once))]

    def due_settlements(self, now: float) -> list[Charge]:
        """Pending charges whose settlement time has come, oldest first, removed from the queue."""
        due = []
        while self._settlements and self._settlements[0][0] <= now:
            due.append(self.charges[heapq.heappop(self._settlements)[2]])
        return due

    def next_settlement(self) -> float | None:
        """When the earliest pending charge comes due (tenant time), or None; a read-only peek, so
        the dashboard can tell whether reading a tenant would settle something."""
        return self._settlements[0][0] if self._settlements else None

    def page(self, status: str | None, limit: int, offset: int) -> tuple[list[Charge], int]:
        """Newest first; costs O(limit) at any offset."""
        rows = self._all if status is None else self._by_status[status]
        total = len(rows)
        end = max(total - offset, 0)
        return rows[max(end - limit, 0) : end][::-1], total

    def add_refund(self, refund: Refund) -> None:
        self.refunds[refund.id] = refund
        self.refunds_of.setdefault(refund.charge_id, []).append(refund)

    def save(self, key: str, saved: Saved, limit: int) -> None:
        self.idempotency[key] = saved
        self.idempotency.move_to_end(key)
        while len(self.idempotency) > limit:
            self.idempotency.popitem(last=False)

    def forget_expired(self, now: float, ttl: float) -> None:
        # Keys are kept in creation order and the clock only moves forward, so expired ones
        # are all at the front.
        while self.idempotency:
            saved = next(iter(self.idempotency.values()))
            if now - saved.created < ttl or saved.reply is None:
                break
            self.idempotency.popitem(last=False)


class Store:
    """Every tenant, least recently used first, at most `max_tenants` of them."""

    def __init__(self, max_tenants: int = 10_000) -> None:
        self.tenants: OrderedDict[str, Tenant] = OrderedDict()
        self.max_tenants = max_tenants
        self.dropped = 0  # tenants dropped to stay within max_tenants, since start
        self.last_dropped: tuple[str, float, str] | None = None  # (key, when, the limit that made room)
        self.uploaded = 0  # scenario rules uploaded for tenants, all together
        self._last_note = -60.0  # when a drop was last logged, and how many had been dropped then
        self._noted = 0
        self._seq = 0

    def get(self, key: str) -> Tenant | None:
        """The tenant if it exists (a read creates none), now the most recently used."""
        found = self.tenants.get(key)
        if found is not None:
            self.tenants.move_to_end(key)
        return found

    def tenant(self, key: str) -> Tenant:
        """The tenant, created if need be (for a write), now the most recently used."""
        found = self.get(key)
        if found is None:
            found = self.tenants[key] = Tenant(key)
            while len(self.tenants) > self.max_tenants:
                self._drop(next(iter(self.tenants)), f"--max-tenants {self.max_tenants}")
        return found

    def set_rules(self, tenant: Tenant, rules: Any, uploaded: int) -> None:
        """Give a tenant its own rules, `uploaded` of them sent by clients; to stay within
        MAX_UPLOADED_RULES, drop the least recently used other tenants that hold uploaded rules."""
        self.uploaded += uploaded - tenant.uploaded
        tenant.rules, tenant.uploaded = rules, uploaded
        for key in list(self.tenants):
            if self.uploaded <= MAX_UPLOADED_RULES:
                break
            if key != tenant.key and self.tenants[key].uploaded:
                self._drop(key, f"{MAX_UPLOADED_RULES} uploaded scenario rules in all")

    def _drop(self, key: str, limit: str) -> None:
        dropped = self.tenants.pop(key)
        self.uploaded -= dropped.uploaded
        self.dropped += 1
        now = time.time()
        self.last_dropped = (key, now, limit)
        # One line per drop would let a client flood the log at its own pace: at most one a minute.
        if now - self._last_note >= 60:
            unnoted = self.dropped - self._noted
            more = f" (and {unnoted - 1} more since the last such line)" if unnoted > 1 else ""
            _log.warning("dropped tenant %s, the least recently used, to stay within %s%s", key, limit, more)
            self._last_note, self._noted = now, self.dropped

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def reset(self, key: str | None = None) -> None:
        """Forget one tenant (charges, refunds, keys, clock, overrides), or every tenant."""
        if key is None:
            self.tenants.clear()
            self.uploaded = 0
        elif key in self.tenants:
            self.uploaded -= self.tenants.pop(key).uploaded


class Journal:
    """The last `size` API calls, oldest first: a ring buffer, so a long soak cannot exhaust memory.

    An entry keeps the bodies as the bytes that crossed the wire (at most 8 KiB each), so its
    size is bounded in bytes too; `view` turns one into what the control API and dashboard show.
    """

    def __init__(self, size: int) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=size)
        # Per tenant: how many entries, and when the newest started (kept as entries come and go,
        # so the dashboard need not scan the journal).
        self.counts: Counter[str] = Counter()
        self.last_seen: dict[str, float] = {}

    def record(self, entry: dict[str, Any]) -> None:
        if len(self.entries) == self.entries.maxlen:
            self._uncount(self.entries[0])
        self.entries.append(entry)
        tenant = entry["tenant"]
        if tenant is not None:
            self.counts[tenant] += 1
            self.last_seen[tenant] = entry["started"]

    def _uncount(self, entry: dict[str, Any]) -> None:
        tenant = entry["tenant"]
        if tenant is not None:
            self.counts[tenant] -= 1
            if self.counts[tenant] <= 0:
                del self.counts[tenant]
                self.last_seen.pop(tenant, None)

    @staticmethod
    def view(entry: dict[str, Any]) -> dict[str, Any]:
        """An entry with its bodies parsed (or as text when cut short or not JSON) and its times
        formatted."""
        shown = {k: v for k, v in entry.items() if k not in ("started", "duration")}
        shown["started_at"] = rfc3339(entry["started"])
        shown["duration_ms"] = round(entry["duration"] * 1000, 3)
        for name in ("request_body", "response_body"):
            shown[name] = _decoded(entry[name])
        return shown

    def select(
        self, tenant: str | None, method: str | None, path: str | None, status: int | None
    ) -> list[dict[str, Any]]:
        return [
            e
            for e in self.entries
            if (tenant is None or e["tenant"] == tenant)
            and (method is None or e["method"] == method)
            and (path is None or e["path"] == path)
            and (status is None or e["status"] == status)
        ]

    def forget(self, tenant: str | None) -> None:
        if tenant is None:
            self.entries.clear()
            self.counts.clear()
            self.last_seen.clear()
        elif tenant in self.counts:
            kept = [e for e in self.entries if e["tenant"] != tenant]
            self.entries.clear()
            self.entries.extend(kept)
            del self.counts[tenant]
            self.last_seen.pop(tenant, None)


def _decoded(raw: bytes | None) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text, parse_constant=_refuse)
    except (ValueError, RecursionError):
        return text  # not JSON, cut short, NaN or nested too deeply: shown as sent


def _refuse(constant: str) -> Any:
    raise ValueError(constant)
