"""The `Store` interface: every piece of state, as the atomic operations the business rules need.

A tenant is created only by a write (`create=True`, a claimed key, a mark, a charge, a seed, a clock
move, uploaded rules); reads create none. Every engine keeps at most `settings.max_tenants` tenants
(dropping the least recently used to make room) and at most `MAX_UPLOADED_RULES` uploaded rules in
all, and a journal of at most `settings.journal_size` entries.

Each method is one atomic step: what it reads and what it writes are seen together by every process
sharing the store. Callers hold nothing read from one step across an `await` into another and write
it back; the one read-check-write the rules need on a stored record, a refund, is `refund`, which
runs the caller's pure `decide` inside the engine's transaction (and may run it again on a retry).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, Protocol, TypeVar

from sandbox.errors import StoreUnavailable
from sandbox.models import Charge, Entry, Event, Refund, Reply, Saved, Summary
from sandbox.settings import Settings

MAX_UPLOADED_RULES = 50_000  # scenario rules uploaded for tenants, all together (~2 KB each)
EVENTS_KEPT = 1_000  # events kept per tenant, the oldest dropped first
ATTEMPTS_KEPT = 100  # webhook delivery attempts kept per endpoint, the oldest dropped first
T = TypeVar("T")
__all__ = ["ATTEMPTS_KEPT", "EVENTS_KEPT", "MAX_UPLOADED_RULES", "Store", "StoreUnavailable", "TenantMeta"]


class TenantMeta(Protocol):
    """What every request reads of its tenant first."""

    @property
    def key(self) -> str: ...

    @property
    def clock_offset(self) -> float: ...

    @property
    def rules_version(self) -> str | None:
        """Changes whenever the tenant's uploaded rules do; None without any."""

    @property
    def next_settle(self) -> float | None:
        """The sandbox time of the earliest pending settlement, if any."""

    @property
    def hooks(self) -> int:
        """How many webhook endpoints the tenant has registered (so a tenant without any never
        reads them)."""


class Store(ABC):
    """The state of a sandbox: tenants (charges, refunds, keys, marks, clock, rules) and the journal."""

    kind: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.max_tenants = settings.max_tenants

    # -- lifecycle --------------------------------------------------------------------------
    @abstractmethod
    async def close(self) -> None:
        """Let go of connections and files."""

    @abstractmethod
    async def check(self) -> None:
        """A cheap round trip: StoreUnavailable when the store cannot be reached."""

    # -- tenants ----------------------------------------------------------------------------
    @abstractmethod
    async def tenant(self, key: str, *, create: bool = False) -> TenantMeta | None:
        """The tenant (now the most recently used), created if asked; None if absent and not asked."""

    @abstractmethod
    async def advance_clock(self, key: str, seconds: float, real_now: float, last: float) -> TenantMeta | None:
        """Move the tenant's clock forward, and its queued jobs' due times back by as much (they follow
        the tenant's clock), unless its time (`real_now` + offset) would pass `last`: then nothing
        changes and the answer is None."""

    @abstractmethod
    async def rules(self, key: str) -> tuple[str, str] | None:
        """The tenant's uploaded rules as (version, JSON document), or None without any."""

    @abstractmethod
    async def set_rules(self, key: str, document: str, uploaded: int, version: str) -> None:
        """Give the tenant these uploaded rules (`uploaded` of them), replacing what it had; to stay
        within MAX_UPLOADED_RULES, drop the least recently used other tenants holding some."""

    @abstractmethod
    async def reset(self, key: str | None) -> None:
        """Forget one tenant (charges, refunds, keys, marks, clock, rules, events, webhook endpoints,
        queued jobs, attempts, journal entries), or all (and the count of dropped tenants). A tenant
        dropped to make room loses the same."""

    @abstractmethod
    async def summary(self, key: str) -> Summary | None:
        """One tenant's counts."""

    @abstractmethod
    async def summaries(self, offset: int, limit: int) -> tuple[list[Summary], int]:
        """A page of tenants, most recently used first, and how many there are."""

    @abstractmethod
    async def drops(self) -> tuple[int, tuple[str, float, str] | None]:
        """How many tenants were dropped to make room (since the store was made or last reset in
        whole), and the last: (key, when, why)."""

    # -- charges and refunds ------------------------------------------------------------------
    @abstractmethod
    async def settle_due(self, key: str, now: float) -> list[Charge]:
        """Settle every pending charge of the tenant whose time (`settle_at`) is `now` or before:
        each becomes `settle_to` (with `settle_code` as its failure code when it fails). The charges
        this call settled, as they are now: only one of several processes settling at once gets each."""

    @abstractmethod
    async def add_events(self, key: str, events: list[Event]) -> None:
        """Append events to the tenant's (creating none: a tenant without data keeps no events);
        beyond EVENTS_KEPT the oldest go. A reset of the tenant drops them."""

    @abstractmethod
    async def events(self, key: str) -> list[Event]:
        """The tenant's events, oldest first."""

    @abstractmethod
    async def charge(self, key: str, charge_id: str) -> Charge | None:
        """One charge of the tenant."""

    @abstractmethod
    async def page(self, key: str, status: str | None, limit: int, offset: int) -> tuple[list[Charge], int]:
        """Charges newest first by `created_at` (whole seconds), then by creation; `limit` from
        `offset`, at a cost that does not grow with the offset; and how many match."""

    @abstractmethod
    async def refunds(self, key: str, charge_id: str) -> list[Refund]:
        """A charge's refunds, oldest first."""

    @abstractmethod
    async def add_charge(
        self, key: str, charge: Charge, idempotency_key: str | None, reply: Reply | None, events: list[Event]
    ) -> None:
        """Store a new charge (numbering it: `charge.seq`), with a key the reply it is saved under,
        and the events that tell of it, together."""

    @abstractmethod
    async def refund(
        self,
        key: str,
        charge_id: str,
        decide: Callable[[Charge | None], tuple[Refund | None, T]],
        idempotency_key: str | None,
        reply_of: Callable[[T], Reply | None],
    ) -> T:
        """Read the charge, let `decide` judge it (raising an ApiError to refuse), and store what it
        decided together: the refund (adding its amount to the charge's `amount_refunded`) and,
        with a key, `reply_of` its verdict. `decide` is pure: it may be run again on a retry."""

    @abstractmethod
    async def add_seeded(self, key: str, made: list[tuple[Charge, Refund | None]]) -> list[Charge]:
        """Store fake charges and their refunds (numbering them) in one step."""

    # -- idempotency keys and fail-first marks --------------------------------------------------
    @abstractmethod
    async def saved(self, key: str, idempotency_key: str, now: float, ttl: float) -> Saved | None:
        """What the key holds, unless it expired (finished more than `ttl` seconds before `now`)."""

    @abstractmethod
    async def claim(self, key: str, idempotency_key: str, saved: Saved, limit: int, ttl: float) -> Saved | None:
        """Hold the key for a request in flight; None when claimed, else what an earlier request
        left there. At most `limit` keys per tenant: the oldest finished ones go first."""

    @abstractmethod
    async def save_reply(self, key: str, idempotency_key: str, reply: Reply | None) -> None:
        """What the key replays from now on; None releases it."""

    @abstractmethod
    async def mark(self, key: str, marker: str, limit: int) -> bool:
        """Mark a fail-first request's first attempt; True when it was not marked before."""

    @abstractmethod
    async def unmark(self, key: str, marker: str) -> None:
        """Forget the mark (the retry got through)."""

    # -- webhooks (webhooks.py): endpoints, a queue of jobs due at real times, attempts ----------
    @abstractmethod
    async def add_hook(self, key: str, hook_id: str, raw: bytes, limit: int) -> bool:
        """Register an endpoint (`raw`, its JSON) for the tenant, creating the tenant; False, and
        nothing stored, when the tenant holds `limit` already."""

    @abstractmethod
    async def hooks(self, key: str) -> list[bytes]:
        """The tenant's endpoints, oldest first."""

    @abstractmethod
    async def remove_hook(self, key: str, hook_id: str) -> bool:
        """Forget an endpoint and its attempts (its queued jobs stay, and find it gone); False when
        the tenant had no such endpoint."""

    @abstractmethod
    async def queue(self, key: str, jobs: list[tuple[str, float, bytes]], limit: int) -> int:
        """Queue jobs `(id, due, raw)` for the tenant, `due` a real (unix) time, creating no tenant
        (none is queued for an absent one). At most `limit` jobs wait per tenant: those beyond are
        not queued. How many were."""

    @abstractmethod
    async def take(self, now: float, limit: int) -> list[tuple[str, bytes]]:
        """Remove and return up to `limit` jobs due at real time `now` or before, of any tenant,
        earliest first, as (tenant, raw): each job goes to one caller, however many processes take
        at once."""

    @abstractmethod
    async def log_attempt(self, key: str, hook_id: str, raw: bytes) -> None:
        """Add a delivery attempt (`raw`, its JSON) to the endpoint's log, creating no tenant;
        beyond ATTEMPTS_KEPT the oldest go."""

    @abstractmethod
    async def attempts(self, key: str, hook_id: str) -> list[bytes]:
        """The endpoint's logged attempts, oldest first."""

    # -- the request journal ----------------------------------------------------------------------
    @abstractmethod
    async def record(self, entry: Entry) -> None:
        """Add an API call; the oldest go beyond `settings.journal_size`."""

    @abstractmethod
    async def entries(self, tenant: str | None, limit: int | None = None) -> list[Entry]:
        """The newest calls first (of one tenant, or of all), at most `limit`."""

    @abstractmethod
    async def entries_after(self, cursor: str) -> list[Entry] | None:
        """The calls recorded after the one with id `cursor`, newest first; None when that one is gone."""

    @abstractmethod
    async def journal_stats(self, tenant: str | None) -> tuple[int, float | None, str]:
        """How many calls the journal holds (of one tenant, or all), when the newest of them
        started, and the id of the newest call of all ("" when empty)."""

    @abstractmethod
    async def forget(self, tenant: str | None) -> None:
        """Drop one tenant's calls from the journal, or every call."""
