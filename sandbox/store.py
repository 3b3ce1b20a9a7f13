"""The only state: per-tenant charges, refunds, idempotency results, clocks and overrides, and the
bounded journal of API calls.

Everything runs on one event loop and every method here is synchronous, so no locks are needed:
callers must not hold a value read here across an `await` and write it back afterwards.
"""

from __future__ import annotations

import bisect
import heapq
import json
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from sandbox.models import Charge, Refund, rfc3339

STATUSES = ("succeeded", "pending", "failed")
_seq = attrgetter("seq")


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
    failed_once: set[str] = field(default_factory=set)
    rules: Any = None  # this tenant's own scenario rules (control API), ahead of the files
    # Charges in creation order, overall and per status: a page at any offset is one slice.
    _all: list[Charge] = field(default_factory=list)
    _by_status: dict[str, list[Charge]] = field(default_factory=lambda: {s: [] for s in STATUSES})
    _settlements: list[tuple[float, int, str]] = field(default_factory=list)

    def now(self) -> float:
        return time.time() + self.clock_offset

    def add_charge(self, charge: Charge) -> None:
        self.charges[charge.id] = charge
        self._all.append(charge)
        # Sequence numbers only grow, so appending keeps every list sorted.
        self._by_status[charge.status].append(charge)
        if charge.settle_at is not None:
            heapq.heappush(self._settlements, (charge.settle_at, charge.seq, charge.id))

    def set_status(self, charge: Charge, status: str) -> None:
        old = self._by_status[charge.status]
        del old[bisect.bisect_left(old, charge.seq, key=_seq)]
        bisect.insort(self._by_status[status], charge, key=_seq)
        charge.status = status

    def due_settlements(self, now: float) -> list[Charge]:
        """Pending charges whose settlement time has come, oldest first, removed from the queue."""
        due = []
        while self._settlements and self._settlements[0][0] <= now:
            due.append(self.charges[heapq.heappop(self._settlements)[2]])
        return due

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
    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self._seq = 0

    def tenant(self, key: str) -> Tenant:
        found = self.tenants.get(key)
        if found is None:
            found = self.tenants[key] = Tenant(key)
        return found

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def reset(self, key: str | None = None) -> None:
        """Forget one tenant (charges, refunds, keys, clock, overrides), or every tenant."""
        if key is None:
            self.tenants.clear()
        else:
            self.tenants.pop(key, None)


class Journal:
    """The last `size` API calls, oldest first: a ring buffer, so a long soak cannot exhaust memory.

    An entry keeps the bodies as the bytes that crossed the wire (at most 8 KiB each), so its
    size is bounded in bytes too; `view` turns one into what the control API and dashboard show.
    """

    def __init__(self, size: int) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=size)

    def record(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)

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
        else:
            kept = [e for e in self.entries if e["tenant"] != tenant]
            self.entries.clear()
            self.entries.extend(kept)


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
