"""The memory store: state in this process's memory, the default and the fastest engine.

Everything runs on one event loop and no method awaits anything, so each method is atomic as it
stands: no locks. The state is gone when the process ends, and only one process can use it (the CLI
refuses `--workers` above 1 with it).

Per tenant, charges are kept in lists sorted by (`created_at` second, creation order), overall and
per status, so a page at any offset is one slice.

Stored records are long-lived, and the garbage collector's full passes walk every tracked object:
with a million charges a pass took 300 ms, coming back each time the store grew by a quarter. So
every FREEZE_EVERY stored charges the store moves what exists out of the collector's sight
(`gc.freeze`): the records hold no reference cycles, so reference counting still frees them on a
reset, and a full pass walks only what is new.
"""

from __future__ import annotations

import bisect
import gc
import heapq
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sandbox.models import STATUSES, Charge, Entry, Event, Refund, Reply, Saved, Summary
from sandbox.stores.base import ATTEMPTS_KEPT, EVENTS_KEPT, MAX_UPLOADED_RULES, Store

T = TypeVar("T")
_log = logging.getLogger("sandbox")
FREEZE_EVERY = 10_000  # charges stored between two gc.freeze() calls


def _newest_last(charge: Charge) -> tuple[int, int]:
    """Where a charge sits in a list: by `created_at` (whole seconds, as shown), then creation order."""
    return int(charge.created), charge.seq


@dataclass
class Tenant:
    key: str
    clock_offset: float = 0.0
    charges: dict[str, Charge] = field(default_factory=dict)
    refunds_of: dict[str, list[Refund]] = field(default_factory=dict)
    refund_count: int = 0
    idempotency: OrderedDict[str, Saved] = field(default_factory=OrderedDict)
    failed_once: dict[str, None] = field(default_factory=dict)  # an ordered set, oldest first
    rules_version: str | None = None
    rules_document: str = ""
    uploaded: int = 0  # rules uploaded for this tenant
    # Charges oldest first by `_newest_last`, overall and per status: a page at any offset is one slice.
    _all: list[Charge] = field(default_factory=list)
    _by_status: dict[str, list[Charge]] = field(default_factory=lambda: {s: [] for s in STATUSES})
    _settlements: list[tuple[float, int, str]] = field(default_factory=list)
    events: deque[Event] = field(default_factory=lambda: deque(maxlen=EVENTS_KEPT))
    endpoints: dict[str, bytes] = field(default_factory=dict)  # webhook endpoints, oldest first
    jobs: dict[str, tuple[float, bytes]] = field(default_factory=dict)  # queued webhook jobs: id -> (due, raw)
    attempt_logs: dict[str, deque[bytes]] = field(default_factory=dict)  # endpoint id -> its attempts

    @property
    def hooks(self) -> int:
        return len(self.endpoints)

    @property
    def next_settle(self) -> float | None:
        return self._settlements[0][0] if self._settlements else None

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

    def add_refund(self, refund: Refund) -> None:
        self.refunds_of.setdefault(refund.charge_id, []).append(refund)
        self.refund_count += 1

    def settle(self, now: float) -> list[Charge]:
        settled = []
        while self._settlements and self._settlements[0][0] <= now:
            charge = self.charges[heapq.heappop(self._settlements)[2]]
            settled.append(charge)
            to = charge.settle_to or "succeeded"
            if to == "failed":
                charge.failure_code = charge.settle_code or "generic_decline"
            charge.settled_at, charge.settle_at = charge.settle_at, None
            old = self._by_status[charge.status]
            del old[bisect.bisect_left(old, _newest_last(charge), key=_newest_last)]
            bisect.insort(self._by_status[to], charge, key=_newest_last)
            charge.status = to
        return settled

    def page(self, status: str | None, limit: int, offset: int) -> tuple[list[Charge], int]:
        rows = self._all if status is None else self._by_status[status]
        total = len(rows)
        end = max(total - offset, 0)
        return rows[max(end - limit, 0) : end][::-1], total

    def summary(self) -> Summary:
        counts = {status: len(rows) for status, rows in self._by_status.items()}
        return Summary(
            self.key,
            len(self.charges),
            counts,
            self.refund_count,
            self.clock_offset,
            bool(self.uploaded),
            self.next_settle,
        )


class MemoryStore(Store):
    kind = "memory"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.tenants: OrderedDict[str, Tenant] = OrderedDict()  # least recently used first
        self.uploaded = 0  # rules uploaded for tenants, all together
        self.dropped = 0
        self.last_dropped: tuple[str, float, str] | None = None
        self._last_note, self._noted = -60.0, 0
        self._seq = 0
        self._unfrozen = 0  # charges stored since the last gc.freeze()
        self.journal: deque[Entry] = deque(maxlen=self.settings.journal_size)
        self.journal_counts: Counter[str] = Counter()
        self.last_seen: dict[str, float] = {}
        # Every queued job of every tenant by due time: (due, n, tenant, job id). An entry whose job
        # is gone or now due at another time (a clock moved) is skipped when it comes up.
        self._due: list[tuple[float, int, str, str]] = []
        self._pushed = 0
        self._queued = 0  # jobs queued in all (the heap may hold more entries: skipped ones)

    async def close(self) -> None:
        """Nothing to let go of."""

    async def check(self) -> None:
        """Always reachable."""

    # -- tenants ----------------------------------------------------------------------------
    async def tenant(self, key: str, *, create: bool = False) -> Tenant | None:
        return self._tenant(key) if create else self._existing(key)

    def _existing(self, key: str) -> Tenant | None:
        found = self.tenants.get(key)
        if found is not None:
            self.tenants.move_to_end(key)
        return found

    def _tenant(self, key: str) -> Tenant:
        found = self._existing(key)
        if found is None:
            found = self.tenants[key] = Tenant(key)
            while len(self.tenants) > self.max_tenants:
                self._drop(next(iter(self.tenants)), f"--max-tenants {self.max_tenants}")
        return found

    def _drop(self, key: str, limit: str) -> None:
        dropped = self.tenants.pop(key)
        self._queued -= len(dropped.jobs)
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

    async def advance_clock(self, key: str, seconds: float, real_now: float, last: float) -> Tenant | None:
        tenant = self._tenant(key)
        if real_now + tenant.clock_offset + seconds > last:
            return None
        tenant.clock_offset += seconds
        if tenant.jobs and seconds:
            tenant.jobs = {job_id: (due - seconds, raw) for job_id, (due, raw) in tenant.jobs.items()}
            for job_id, (due, _) in tenant.jobs.items():
                self._push_due(due, key, job_id)
        return tenant

    async def rules(self, key: str) -> tuple[str, str] | None:
        tenant = self.tenants.get(key)
        if tenant is None or tenant.rules_version is None:
            return None
        return tenant.rules_version, tenant.rules_document

    async def set_rules(self, key: str, document: str, uploaded: int, version: str) -> None:
        tenant = self._tenant(key)
        self.uploaded += uploaded - tenant.uploaded
        tenant.rules_version, tenant.rules_document, tenant.uploaded = version, document, uploaded
        for other in list(self.tenants):
            if self.uploaded <= MAX_UPLOADED_RULES:
                break
            if other != key and self.tenants[other].uploaded:
                self._drop(other, f"{MAX_UPLOADED_RULES} uploaded scenario rules in all")

    async def reset(self, key: str | None) -> None:
        if key is None:
            self.tenants.clear()
            self._due.clear()
            self.uploaded = self.dropped = self._queued = 0
            self.last_dropped = None
        elif key in self.tenants:
            gone = self.tenants.pop(key)
            self.uploaded -= gone.uploaded
            self._queued -= len(gone.jobs)
        await self.forget(key)

    async def summary(self, key: str) -> Summary | None:
        tenant = self.tenants.get(key)
        return tenant.summary() if tenant is not None else None

    async def summaries(self, offset: int, limit: int) -> tuple[list[Summary], int]:
        # An OrderedDict cannot be indexed: a page is walked to from the nearer end, so a deep
        # page costs as little as the first.
        total = len(self.tenants)
        if offset >= total:
            return [], total
        if offset <= total // 2:
            it = reversed(self.tenants.values())
            for _ in range(offset):
                next(it)
            listed = [next(it) for _ in range(min(limit, total - offset))]
        else:
            start = max(total - offset - limit, 0)
            it = iter(self.tenants.values())
            for _ in range(start):
                next(it)
            listed = [next(it) for _ in range(total - offset - start)][::-1]
        return [tenant.summary() for tenant in listed], total

    async def drops(self) -> tuple[int, tuple[str, float, str] | None]:
        return self.dropped, self.last_dropped

    # -- charges and refunds ------------------------------------------------------------------
    async def settle_due(self, key: str, now: float) -> list[Charge]:
        tenant = self.tenants.get(key)
        return tenant.settle(now) if tenant is not None else []

    async def add_events(self, key: str, events: list[Event]) -> None:
        tenant = self.tenants.get(key)
        if tenant is not None:  # events come of stored charges and refunds: their tenant exists
            tenant.events.extend(events)

    async def events(self, key: str) -> list[Event]:
        tenant = self.tenants.get(key)
        return list(tenant.events) if tenant is not None else []

    async def charge(self, key: str, charge_id: str) -> Charge | None:
        tenant = self.tenants.get(key)
        return tenant.charges.get(charge_id) if tenant is not None else None

    async def page(self, key: str, status: str | None, limit: int, offset: int) -> tuple[list[Charge], int]:
        tenant = self.tenants.get(key)
        return tenant.page(status, limit, offset) if tenant is not None else ([], 0)

    async def refunds(self, key: str, charge_id: str) -> list[Refund]:
        tenant = self.tenants.get(key)
        return list(tenant.refunds_of.get(charge_id, ())) if tenant is not None else []

    async def add_charge(
        self, key: str, charge: Charge, idempotency_key: str | None, reply: Reply | None, events: list[Event]
    ) -> None:
        tenant = self._tenant(key)
        self._seq += 1
        charge.seq = self._seq
        tenant.add_charge(charge)
        if idempotency_key is not None:
            self._save_reply(tenant, idempotency_key, reply)
        tenant.events.extend(events)
        self._stored(1)

    def _stored(self, count: int) -> None:
        self._unfrozen += count
        if self._unfrozen >= FREEZE_EVERY:
            self._unfrozen = 0
            gc.freeze()

    async def refund(
        self,
        key: str,
        charge_id: str,
        decide: Callable[[Charge | None], tuple[Refund | None, T]],
        idempotency_key: str | None,
        reply_of: Callable[[T], Reply | None],
    ) -> T:
        tenant = self.tenants.get(key)
        charge = tenant.charges.get(charge_id) if tenant is not None else None
        refund, verdict = decide(charge)
        if tenant is not None:
            if refund is not None and charge is not None:
                charge.amount_refunded += refund.amount
                tenant.add_refund(refund)
            if idempotency_key is not None:
                self._save_reply(tenant, idempotency_key, reply_of(verdict))
        return verdict

    async def add_seeded(self, key: str, made: list[tuple[Charge, Refund | None]]) -> list[Charge]:
        tenant = self._tenant(key)
        charges = []
        for charge, refund in made:
            self._seq += 1
            charge.seq = self._seq
            charges.append(charge)
            if refund is not None:
                tenant.add_refund(refund)
        tenant.add_charges(charges)
        self._stored(len(charges))
        return charges

    # -- idempotency keys and fail-first marks --------------------------------------------------
    async def saved(self, key: str, idempotency_key: str, now: float, ttl: float) -> Saved | None:
        tenant = self.tenants.get(key)
        if tenant is None:
            return None
        # Keys are kept in creation order and the clock only moves forward, so expired ones are
        # all at the front.
        while tenant.idempotency:
            first = next(iter(tenant.idempotency.values()))
            if now - first.created < ttl or first.reply is None:
                break
            tenant.idempotency.popitem(last=False)
        return tenant.idempotency.get(idempotency_key)

    async def claim(self, key: str, idempotency_key: str, saved: Saved, limit: int, ttl: float) -> Saved | None:
        tenant = self._tenant(key)
        found = tenant.idempotency.get(idempotency_key)
        if found is not None and not (found.reply is not None and saved.created - found.created >= ttl):
            return found
        tenant.idempotency[idempotency_key] = saved
        tenant.idempotency.move_to_end(idempotency_key)
        while len(tenant.idempotency) > limit:
            tenant.idempotency.popitem(last=False)
        return None

    async def save_reply(self, key: str, idempotency_key: str, reply: Reply | None) -> None:
        tenant = self.tenants.get(key)
        if tenant is not None:
            self._save_reply(tenant, idempotency_key, reply)

    @staticmethod
    def _save_reply(tenant: Tenant, idempotency_key: str, reply: Reply | None) -> None:
        saved = tenant.idempotency.get(idempotency_key)
        if saved is None:
            return  # released meanwhile (a reset, or pushed out by newer keys)
        if reply is None:
            del tenant.idempotency[idempotency_key]
        else:
            saved.reply = reply

    async def mark(self, key: str, marker: str, limit: int) -> bool:
        tenant = self._tenant(key)
        if marker in tenant.failed_once:
            return False
        tenant.failed_once[marker] = None
        while len(tenant.failed_once) > limit:
            del tenant.failed_once[next(iter(tenant.failed_once))]
        return True

    async def unmark(self, key: str, marker: str) -> None:
        tenant = self.tenants.get(key)
        if tenant is not None:
            tenant.failed_once.pop(marker, None)

    # -- webhooks ----------------------------------------------------------------------------
    async def add_hook(self, key: str, hook_id: str, raw: bytes, limit: int) -> bool:
        tenant = self._tenant(key)
        if len(tenant.endpoints) >= limit:
            return False
        tenant.endpoints[hook_id] = raw
        return True

    async def hooks(self, key: str) -> list[bytes]:
        tenant = self.tenants.get(key)
        return list(tenant.endpoints.values()) if tenant is not None else []

    async def remove_hook(self, key: str, hook_id: str) -> bool:
        tenant = self.tenants.get(key)
        if tenant is None or tenant.endpoints.pop(hook_id, None) is None:
            return False
        tenant.attempt_logs.pop(hook_id, None)
        return True

    async def queue(self, key: str, jobs: list[tuple[str, float, bytes]], limit: int) -> int:
        tenant = self.tenants.get(key)
        if tenant is None:
            return 0
        room = jobs[: max(0, limit - len(tenant.jobs))]
        for job_id, due, raw in room:
            tenant.jobs[job_id] = (due, raw)
            self._queued += 1
            self._push_due(due, key, job_id)
        return len(room)

    def _push_due(self, due: float, key: str, job_id: str) -> None:
        self._pushed += 1
        heapq.heappush(self._due, (due, self._pushed, key, job_id))
        if len(self._due) > 2 * self._queued + 1000:  # mostly entries to skip: keep only the live ones
            self._due = [(d, n, k, j) for d, n, k, j in self._due if self._live(k, j, d)]
            heapq.heapify(self._due)

    def _live(self, key: str, job_id: str, due: float) -> bool:
        tenant = self.tenants.get(key)
        found = tenant.jobs.get(job_id) if tenant is not None else None
        return found is not None and found[0] == due

    async def take(self, now: float, limit: int) -> list[tuple[str, bytes]]:
        taken: list[tuple[str, bytes]] = []
        while self._due and self._due[0][0] <= now and len(taken) < limit:
            due, _, key, job_id = heapq.heappop(self._due)
            if self._live(key, job_id, due):
                taken.append((key, self.tenants[key].jobs.pop(job_id)[1]))
                self._queued -= 1
        return taken

    async def log_attempt(self, key: str, hook_id: str, raw: bytes) -> None:
        tenant = self.tenants.get(key)
        if tenant is not None:
            tenant.attempt_logs.setdefault(hook_id, deque(maxlen=ATTEMPTS_KEPT)).append(raw)

    async def attempts(self, key: str, hook_id: str) -> list[bytes]:
        tenant = self.tenants.get(key)
        return list(tenant.attempt_logs.get(hook_id, ())) if tenant is not None else []

    # -- the request journal ----------------------------------------------------------------------
    async def record(self, entry: Entry) -> None:
        journal, tenant = self.journal, entry.tenant
        if len(journal) == journal.maxlen:
            oldest = journal[0]
            if oldest.tenant == tenant:  # one entry of the tenant out, one in: its count stands
                journal.append(entry)
                if tenant is not None:
                    self.last_seen[tenant] = entry.started
                return
            self._uncount(oldest)
        journal.append(entry)
        if tenant is not None:
            self.journal_counts[tenant] += 1
            self.last_seen[tenant] = entry.started

    def _uncount(self, entry: Entry) -> None:
        if entry.tenant is not None:
            self.journal_counts[entry.tenant] -= 1
            if self.journal_counts[entry.tenant] <= 0:
                del self.journal_counts[entry.tenant]
                self.last_seen.pop(entry.tenant, None)

    async def entries(self, tenant: str | None, limit: int | None = None) -> list[Entry]:
        # With a tenant, the walk stops after its last entry: the journal counts each tenant's.
        left = self.journal_counts.get(tenant, 0) if tenant is not None else len(self.journal)
        if limit is not None:
            left = min(left, limit)
        found: list[Entry] = []
        for entry in reversed(self.journal):
            if len(found) >= left:
                break
            if tenant is None or entry.tenant == tenant:
                found.append(entry)
        return found

    async def entries_after(self, cursor: str) -> list[Entry] | None:
        fresh: list[Entry] = []
        for entry in reversed(self.journal):
            if entry.id == cursor:
                return fresh
            fresh.append(entry)
        return None if cursor else fresh

    async def journal_stats(self, tenant: str | None) -> tuple[int, float | None, str]:
        newest = self.journal[-1].id if self.journal else ""
        if tenant is None:
            return len(self.journal), self.journal[-1].started if self.journal else None, newest
        return self.journal_counts.get(tenant, 0), self.last_seen.get(tenant), newest

    async def forget(self, tenant: str | None) -> None:
        if tenant is None:
            self.journal.clear()
            self.journal_counts.clear()
            self.last_seen.clear()
        elif tenant in self.journal_counts:
            kept = [e for e in self.journal if e.tenant != tenant]
            self.journal.clear()
            self.journal.extend(kept)
            del self.journal_counts[tenant]
            self.last_seen.pop(tenant, None)
