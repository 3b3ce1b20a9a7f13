"""Webhooks: the endpoints a tenant registers, and the signed delivery of its events to them.

Every event (payments.py makes them) is queued in the store as one job per endpoint that wants it,
due at a real time; each process runs one `Deliverer` loop that takes due jobs (a job goes to one
taker, whatever the number of processes) and POSTs them, at most SENDING at once, each endpoint's
in the order they came due. A non-2xx answer, a timeout or a refused connection queues the next
attempt after RETRY_AFTER[n] seconds; a job's due time follows the tenant's clock (advancing the
clock brings its jobs forward, store.advance_clock), so a test never waits for a retry. An API
request only queues: a slow or dead endpoint costs it nothing.

A pending charge of a tenant with endpoints also queues a settle job, due when the charge settles:
taking it settles the tenant (whose events then go out) without waiting for a client to look.

Outbound requests go only to loopback addresses unless --webhook-allow-hosts names the host: a
sandbox that posts wherever a tenant says would let anyone reach the network it sits in.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from sandbox.errors import InvalidRequest, NotFound
from sandbox.models import EVENT_KINDS, EVENT_TYPES, Event, Misdelivery, event_matches, new_id, rfc3339
from sandbox.outbound import refusal, sign
from sandbox.settings import Settings
from sandbox.stores import Store, TenantMeta

if TYPE_CHECKING:
    from sandbox.deliverer import Deliverer

__all__ = ["MAX_HOOKS", "MAX_QUEUED", "RETRY_AFTER", "TIMEOUT", "Hook", "Job", "Webhooks", "refusal", "sign"]
_log = logging.getLogger("sandbox")
RETRY_AFTER = (10, 60, 300, 1800, 7200, 21600, 54000)  # seconds: 8 attempts over 23 h 36 min 10 s
TIMEOUT = 10.0  # seconds for an endpoint's whole answer
MAX_HOOKS = 16  # endpoints per tenant
MAX_QUEUED = 1000  # jobs waiting per tenant; beyond, an event is not delivered (its attempt log says so)
FULL_FOR = 1.0  # seconds this process offers no jobs to a tenant it found with a full queue
_AS_IS = Misdelivery()


@dataclass(frozen=True)
class Hook:
    """An endpoint: where a tenant's events go, which of them, and the secret that signs them."""

    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    created: float
    source: str = "api"  # or "cli": --webhook-url, for every tenant

    def wants(self, kind: str) -> bool:
        return any(event_matches(pattern, kind) for pattern in self.events)

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "secret": self.secret,
            "created_at": rfc3339(self.created),
            "source": self.source,
        }

    def dumps(self) -> bytes:
        return orjson.dumps([self.id, self.url, self.events, self.secret, self.created])

    @classmethod
    def loads(cls, raw: bytes) -> Hook:
        id_, url, events, secret_, created = orjson.loads(raw)
        return cls(id_, url, tuple(events), secret_, created)


@dataclass(frozen=True)
class Job:
    """A queued delivery of an event to an endpoint (`hook`), or, with no hook, a settle job: the
    tenant's due charges are settled (and `event`, a pending charge's event held back by an
    out-of-order rule, goes out after theirs)."""

    id: str
    hook: str
    event: bytes  # Event.dumps(), or empty
    attempt: int = 1
    forged: bool = False

    def dumps(self) -> bytes:
        return orjson.dumps([self.id, self.hook, self.attempt, self.forged]) + b"\n" + self.event

    @classmethod
    def loads(cls, raw: bytes) -> Job:
        head, _, event = raw.partition(b"\n")
        id_, hook, attempt, forged = orjson.loads(head)
        return cls(id_, hook, event, attempt, forged)


def cli_hooks(settings: Settings) -> tuple[Hook, ...]:
    """The endpoints --webhook-url registers for every tenant, with ids every worker agrees on."""
    secret = settings.webhook_secret or ""
    return tuple(
        Hook("we_cli_" + hashlib.sha256(f"{n}:{url}".encode()).hexdigest()[:16], url, ("*",), secret, 0.0, "cli")
        for n, url in enumerate(settings.webhook_urls)
    )


class Webhooks:
    """Registration, queueing and delivery of one process (see the module's docstring)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.allowed = settings.webhook_allow_hosts
        self.fixed = cli_hooks(settings)
        self.settle: Callable[[str], Awaitable[object]] | None = None  # set by the app: settles a tenant
        from sandbox.deliverer import Deliverer  # which imports this module's Hook and Job

        self.deliverer: Deliverer = Deliverer(self)
        self._full: OrderedDict[str, float] = OrderedDict()  # tenant -> until when its queue counts as full
        self._dropped, self._noted = 0, -60.0

    # -- endpoints ---------------------------------------------------------------------------
    async def register(self, key: str, body: dict[str, Any]) -> Hook:
        url, events = body.get("url"), body.get("events", ["*"])
        if url is None:
            raise InvalidRequest("parameter_missing", "url is required: where to POST this tenant's events.", "url")
        if not isinstance(url, str):
            raise InvalidRequest(
                "parameter_invalid", "url must be a string, such as http://127.0.0.1:9000/hook.", "url"
            )
        why = refusal(url, self.allowed)
        if why is not None:
            raise InvalidRequest("url_not_allowed", why, "url")
        known = (*EVENT_TYPES, *EVENT_KINDS, "*")
        if (
            not isinstance(events, list)
            or not 1 <= len(events) <= 20
            or not all(isinstance(e, str) and e in known for e in events)
        ):
            raise InvalidRequest(
                "parameter_invalid", f"events must be a list of 1 to 20 of {', '.join(known)}.", "events"
            )
        unknown = set(body) - {"url", "events"}
        if unknown:
            name = sorted(unknown)[0][:40]
            raise InvalidRequest("parameter_unknown", f"Unknown field {name!r}; a webhook has url and events.", name)
        hook = Hook(new_id("we_"), url, tuple(dict.fromkeys(events)), "whsec_" + secrets.token_hex(24), time.time())
        if not await self.store.add_hook(key, hook.id, hook.dumps(), MAX_HOOKS):
            raise InvalidRequest(
                "too_many_webhooks", f"This tenant has {MAX_HOOKS} webhook endpoints already; delete one first."
            )
        return hook

    async def hooks(self, key: str, meta: TenantMeta | None = None) -> list[Hook]:
        """The tenant's endpoints: --webhook-url's, then its own, oldest first."""
        stored = await self.store.hooks(key) if meta is None or meta.hooks else []
        return [*self.fixed, *(Hook.loads(raw) for raw in stored)]

    async def hook(self, key: str, hook_id: str) -> Hook:
        found = next((h for h in await self.hooks(key) if h.id == hook_id), None)
        if found is None:
            raise_missing(hook_id)
        return found

    async def remove(self, key: str, hook_id: str) -> None:
        if any(h.id == hook_id for h in self.fixed):
            raise InvalidRequest(
                "parameter_invalid", "This endpoint was registered by --webhook-url; restart without it.", "id"
            )
        if not await self.store.remove_hook(key, hook_id):
            raise_missing(hook_id)

    async def attempts(self, key: str, hook_id: str) -> list[dict[str, Any]]:
        """The endpoint's delivery attempts, newest first."""
        await self.hook(key, hook_id)
        return [orjson.loads(raw) for raw in reversed(await self.store.attempts(key, hook_id))]

    async def attempts_by_event(self, key: str) -> dict[str, list[dict[str, Any]]]:
        """Every logged attempt of the tenant's endpoints, by event id, oldest first, each with its
        endpoint's id and URL (what the dashboard shows under an event)."""
        found: dict[str, list[dict[str, Any]]] = {}
        for hook in await self.hooks(key):
            for raw in await self.store.attempts(key, hook.id):
                attempt = orjson.loads(raw) | {"webhook": hook.id, "url": hook.url}
                found.setdefault(attempt["event"], []).append(attempt)
        for attempts in found.values():
            attempts.sort(key=lambda a: (a["at"], a["attempt"]))
        return found

    async def delivered(self, key: str, types: tuple[str, ...]) -> set[str]:
        """The ids of the objects an event of these types told of, that an endpoint of the tenant
        answered 2xx: what the client has heard of by webhook."""
        return {
            attempt["object"]
            for attempts in (await self.attempts_by_event(key)).values()
            for attempt in attempts
            if attempt["type"] in types and 200 <= (attempt["status"] or 0) < 300
        }

    # -- queueing ----------------------------------------------------------------------------
    def wanted(self, meta: TenantMeta) -> bool:
        """Whether the tenant's events go anywhere: the cheap check every charge makes."""
        return bool(self.fixed) or meta.hooks > 0

    async def publish(
        self,
        meta: TenantMeta,
        events: list[Event],
        misdelivery: Misdelivery | None = None,
        settle_at: float | None = None,
    ) -> None:
        """Queue `events` (made by one request, oldest first) for every endpoint that wants them, as
        the rule's `misdelivery` says; with `settle_at` (the sandbox time a pending charge settles),
        a settle job too."""
        if not self.wanted(meta):
            return
        now, offset, key = time.time(), meta.clock_offset, meta.key
        full = self._full.get(key)
        if full is not None:
            if now < full:  # found full a moment ago: not worth building jobs the store would refuse
                self._dropped += len(events)
                return
            del self._full[key]
        faults = misdelivery or _AS_IS
        hooks = await self.hooks(key, meta)
        held = b""
        if faults.out_of_order:
            events = events[::-1]
            if settle_at is not None and events and events[0].type == "charge.pending":
                held, events = events[0].dumps(), events[1:]  # goes out after the settlement's event
        due = now + faults.delay_seconds
        jobs: list[tuple[str, float, bytes]] = []
        for event in events:
            raw = event.dumps()
            for hook in hooks:
                if hook.wants(event.type):
                    for _ in range(faults.duplicate):
                        job = Job(new_id("dlv_"), hook.id, raw, forged=faults.bad_signature)
                        jobs.append((job.id, due + len(jobs) / 1000, job.dumps()))  # queue order is send order
        if settle_at is not None:
            job = Job(new_id("dlv_"), "", held, forged=faults.bad_signature)
            jobs.append((job.id, max(settle_at - offset, due + len(jobs) / 1000), job.dumps()))
        await self.queue(meta.key, jobs)

    async def queue(self, key: str, jobs: list[tuple[str, float, bytes]]) -> None:
        queued = await self.store.queue(key, jobs, MAX_QUEUED) if jobs else 0
        if queued < len(jobs):
            await self._refused(key, jobs[queued:])
        if queued:
            self.deliverer.wake()

    async def _refused(self, key: str, dropped: list[tuple[str, float, bytes]]) -> None:
        """Jobs over MAX_QUEUED: not delivered. A full queue is met by every charge while an endpoint
        is down under load, so this costs little: the tenant is left alone for FULL_FOR seconds, each
        endpoint's log gets one `queue_full` attempt, and the process's log one line a minute."""
        now = time.time()
        self._full[key] = now + FULL_FOR
        while len(self._full) > 10_000:
            self._full.popitem(last=False)
        self._dropped += len(dropped)
        noted: set[str] = set()
        for _, _, raw in dropped:
            job = Job.loads(raw)
            if job.hook and job.hook not in noted:
                noted.add(job.hook)
                await self.store.log_attempt(
                    key, job.hook, attempt_record(job, Event.loads(job.event), error="queue_full")
                )
        if now - self._noted >= 60:
            _log.warning(
                "webhooks: %d deliveries dropped since the last such line: a tenant had %d waiting (the latest %s)",
                self._dropped, MAX_QUEUED, key,
            )  # fmt: skip
            self._noted, self._dropped = now, 0

    async def redeliver(self, key: str, event: Event, hook_id: str | None) -> list[str]:
        """Queue the event again, now, for one endpoint or every one that wants it; the delivery ids."""
        hooks = (
            [await self.hook(key, hook_id)] if hook_id else [h for h in await self.hooks(key) if h.wants(event.type)]
        )
        jobs = [Job(new_id("dlv_"), hook.id, event.dumps()) for hook in hooks]
        now = time.time()
        await self.queue(key, [(job.id, now + n / 1000, job.dumps()) for n, job in enumerate(jobs)])
        return [job.id for job in jobs]

    async def close(self) -> None:
        await self.deliverer.stop()


def raise_missing(hook_id: str) -> NoReturn:
    raise NotFound("resource_missing", f"No such webhook endpoint: {hook_id[:64]!r}.", "id")


def attempt_record(
    job: Job,
    event: Event,
    *,
    status: int | None = None,
    error: str | None = None,
    seconds: float = 0.0,
    body: str = "",
    retry_at: float | None = None,
) -> bytes:
    return orjson.dumps(
        {
            "id": job.id,
            "event": event.id,
            "type": event.type,
            "object": orjson.loads(event.data).get("id"),  # the charge or refund it tells of
            "attempt": job.attempt,
            "at": rfc3339(time.time()),
            "status": status,
            "error": error,
            "duration_ms": round(seconds * 1000, 1),
            "response_body": body,
            "signature": "forged" if job.forged else "valid",
            "next_attempt_at": rfc3339(retry_at) if retry_at is not None else None,
        }
    )
