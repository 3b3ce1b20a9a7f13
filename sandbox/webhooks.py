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

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
import orjson

from sandbox import __version__
from sandbox.errors import InvalidRequest, NotFound, StoreUnavailable
from sandbox.models import EVENT_TYPES, Event, Misdelivery, new_id, rfc3339
from sandbox.settings import Settings
from sandbox.stores import Store, TenantMeta

_log = logging.getLogger("sandbox")
RETRY_AFTER = (10, 60, 300, 1800, 7200, 21600, 54000)  # seconds: 8 attempts over 23 h 36 min 10 s
TIMEOUT = 10.0  # seconds for an endpoint's whole answer
MAX_HOOKS = 16  # endpoints per tenant
MAX_QUEUED = 1000  # jobs waiting per tenant; beyond, an event is not delivered (its attempt log says so)
SENDING = 32  # deliveries in flight per process
BODY_KEPT = 4096  # characters of an endpoint's answer kept in its attempt log
_POLL = 0.5  # seconds between two looks at the queue for jobs queued by other processes, or come due
_IDLE = 60.0  # seconds without a job before a loop started by a request (not by the server) ends
_FORGED = b"whsec_not-your-endpoint-secret"  # signs the deliveries of a `bad_signature` rule
_KINDS = ("*", "charge.*", "refund.*")
MAX_URL = 2048


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
        return any(p == "*" or p == kind or (p.endswith(".*") and kind.startswith(p[:-1])) for p in self.events)

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


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The `Sandbox-Signature` header of a delivery: `t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def refusal(url: str, allowed: tuple[str, ...]) -> str | None:
    """Why the sandbox will not post to `url`, or None: http(s) only, and a loopback host unless
    --webhook-allow-hosts names it (`*` names every host)."""
    if len(url) > MAX_URL:
        return f"url is over {MAX_URL} characters."
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # the port is checked by reading it
    except ValueError as exc:
        return f"url is not a URL ({exc})."
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return "url has a space or a control character; percent-encode it."
    if parts.scheme not in ("http", "https") or not host:
        return "url must be an http:// or https:// URL with a host, such as http://127.0.0.1:9000/webhooks."
    if "*" in allowed or host in allowed or f"[{host}]" in allowed:
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return None
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return (
            f"{host[:100]!r} is not a loopback address; the sandbox posts webhooks only to 127.0.0.1, ::1 and"
            " localhost unless it is started with --webhook-allow-hosts naming the host."
        )
    return None


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
        self.deliverer = Deliverer(self)

    # -- endpoints ---------------------------------------------------------------------------
    async def register(self, key: str, body: dict[str, Any]) -> Hook:
        url, events = body.get("url"), body.get("events", ["*"])
        if not isinstance(url, str):
            raise InvalidRequest("parameter_missing", "url is required: where to POST this tenant's events.", "url")
        why = refusal(url, self.allowed)
        if why is not None:
            raise InvalidRequest("url_not_allowed", why, "url")
        known = (*EVENT_TYPES, *_KINDS)
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
        told: set[str] = set()
        for hook in await self.hooks(key):
            for raw in await self.store.attempts(key, hook.id):
                attempt = orjson.loads(raw)
                if attempt["type"] in types and 200 <= (attempt["status"] or 0) < 300:
                    told.add(attempt["object"])
        return told

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
        faults = misdelivery or Misdelivery()
        hooks = await self.hooks(meta.key, meta)
        now, offset = time.time(), meta.clock_offset
        held = b""
        if faults.out_of_order:
            events = events[::-1]
            if settle_at is not None and events and events[0].type == "charge.pending":
                held, events = events[0].dumps(), events[1:]  # goes out after the settlement's event
        due = now + faults.delay_seconds
        jobs: list[tuple[str, float, bytes]] = []
        for event in events:
            for hook in hooks:
                if hook.wants(event.type):
                    for _ in range(faults.duplicate):
                        job = Job(new_id("dlv_"), hook.id, event.dumps(), forged=faults.bad_signature)
                        jobs.append((job.id, due + len(jobs) / 1000, job.dumps()))  # queue order is send order
        if settle_at is not None:
            job = Job(new_id("dlv_"), "", held, forged=faults.bad_signature)
            jobs.append((job.id, max(settle_at - offset, due + len(jobs) / 1000), job.dumps()))
        await self.queue(meta.key, jobs)

    async def queue(self, key: str, jobs: list[tuple[str, float, bytes]]) -> None:
        queued = await self.store.queue(key, jobs, MAX_QUEUED) if jobs else 0
        if queued < len(jobs):
            _log.warning("tenant %s: %d webhook jobs over the %d queued allowed were dropped", key, len(jobs) - queued,
                         MAX_QUEUED)  # fmt: skip
            for _, _, raw in jobs[queued:]:
                job = Job.loads(raw)
                if job.hook:
                    event = Event.loads(job.event)
                    await self.store.log_attempt(key, job.hook, _attempt(job, event, error="queue_full"))
        if queued:
            self.deliverer.wake()

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


def _attempt(
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


@dataclass
class Deliverer:
    """The loop of one process that takes due jobs and sends them (see the module's docstring)."""

    webhooks: Webhooks
    persistent: bool = False  # started by the server: polls until it stops, not only while busy
    task: asyncio.Task[None] | None = None
    client: httpx.AsyncClient | None = None
    busy: int = 0
    sending: set[asyncio.Task[None]] = field(default_factory=set)
    lines: dict[tuple[str, str], deque[Job]] = field(default_factory=dict)  # (tenant, endpoint) -> jobs
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # Held while a retry's due time is worked out from the tenant's clock and queued, and while this
    # process moves a clock (Tenants.advance_clock): a move lands wholly before or after, never between.
    clock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def start(self, *, persistent: bool = False) -> None:
        self.persistent = self.persistent or persistent
        loop = asyncio.get_running_loop()
        if self.task is not None and self.task.get_loop() is not loop:
            # An app driven in process by one event loop after another (a test client per test):
            # what belonged to the earlier loop is gone with it.
            self.task, self.client, self.busy = None, None, 0
            self._wakeup, self.clock = asyncio.Event(), asyncio.Lock()
            self.lines.clear()
            self.sending.clear()
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._run())

    def nudge(self) -> None:
        """Look at the queue now, if this process has delivered before (a clock moved)."""
        if self.task is not None:
            self.wake()

    def wake(self) -> None:
        self.start()  # first: a new event loop gets a new wake-up event
        self._wakeup.set()

    async def stop(self) -> None:
        """Stop taking jobs; give the deliveries in flight a moment to finish (an endpoint on this
        machine answers in milliseconds), then cut them short (they are not attempted again)."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        if self.sending:
            await asyncio.wait(set(self.sending), timeout=2.0)
            for task in self.sending:
                task.cancel()
        if self.client is not None:
            await self.client.aclose()
            self.client = None
            await asyncio.sleep(0.01)  # a closed connection's socket is let go on a later turn of the loop

    async def _run(self) -> None:
        store, idle_since, sending = self.webhooks.store, time.monotonic(), self.sending
        while True:
            self._wakeup.clear()
            taken: list[tuple[str, bytes]] = []
            if self.busy < SENDING:
                try:
                    taken = await store.take(time.time(), SENDING - self.busy)
                except StoreUnavailable:
                    _log.warning("webhooks: the store cannot be reached; trying again in %g s", _POLL)
            for tenant, raw in taken:
                job = Job.loads(raw)
                self.busy += 1
                line = (tenant, job.hook or job.id)
                if line in self.lines:
                    self.lines[line].append(job)  # after the ones still being sent to that endpoint
                    continue
                self.lines[line] = deque([job])
                task = asyncio.get_running_loop().create_task(self._drain(line))
                sending.add(task)
                task.add_done_callback(sending.discard)
            if taken or self.busy:
                idle_since = time.monotonic()
            elif not self.persistent and time.monotonic() - idle_since > _IDLE:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), _POLL)

    async def _drain(self, line: tuple[str, str]) -> None:
        """Send an endpoint's jobs one after the other, in the order they came due."""
        tenant, jobs = line[0], self.lines[line]
        try:
            while jobs:
                job = jobs.popleft()
                try:
                    await self._handle(tenant, job)
                except StoreUnavailable:
                    _log.warning("webhooks: the store went away while delivering %s", job.id)
                except Exception:  # a bug: logged, and the loop goes on with the next job
                    _log.exception("webhooks: delivering %s failed", job.id)
                finally:
                    self.busy -= 1
        finally:
            del self.lines[line]

    async def _handle(self, tenant: str, job: Job) -> None:
        webhooks = self.webhooks
        if not job.hook:  # a settle job
            if webhooks.settle is not None:
                await webhooks.settle(tenant)
            if job.event:
                meta = await webhooks.store.tenant(tenant)
                if meta is not None:
                    await webhooks.publish(meta, [Event.loads(job.event)], Misdelivery(bad_signature=job.forged))
            return
        meta = await webhooks.store.tenant(tenant)
        hook = next((h for h in await webhooks.hooks(tenant, meta) if h.id == job.hook), None) if meta else None
        if meta is None or hook is None:
            return  # deleted since (or its tenant reset): nothing to deliver to
        # The offset now, as a number: the memory store's tenant is a live object a clock move changes.
        event, started, offset = Event.loads(job.event), time.time(), meta.clock_offset
        status, error, answer, seconds = await self._post(hook, job, event)
        retry_at = None
        if not (status is not None and 200 <= status < 300) and job.attempt <= len(RETRY_AFTER):
            # Due RETRY_AFTER after the attempt began, on the tenant's clock: a clock moved while the
            # endpoint was answering moves the retry too.
            async with self.clock:  # no clock move of this process between the read and the queueing
                now = await webhooks.store.tenant(tenant)
                moved = (now.clock_offset if now is not None else offset) - offset
                retry_at = started + RETRY_AFTER[job.attempt - 1] - moved
                again = Job(job.id, job.hook, job.event, job.attempt + 1, job.forged)
                await webhooks.store.queue(tenant, [(job.id, retry_at, again.dumps())], MAX_QUEUED)
        record = _attempt(job, event, status=status, error=error, seconds=seconds, body=answer, retry_at=retry_at)
        await webhooks.store.log_attempt(tenant, hook.id, record)

    async def _post(self, hook: Hook, job: Job, event: Event) -> tuple[int | None, str | None, str, float]:
        """(status, error, the answer's body cut to BODY_KEPT, seconds taken)."""
        why = refusal(hook.url, self.webhooks.allowed)
        if why is not None:  # --webhook-allow-hosts changed since the endpoint was registered
            return None, f"not allowed: {why}", "", 0.0
        body = orjson.dumps(event.wire())
        signature = sign(_FORGED if job.forged else hook.secret, int(time.time()), body)
        headers = {
            "content-type": "application/json",
            "user-agent": f"payments-sandbox/{__version__}",
            "sandbox-signature": signature,
            "sandbox-event-id": event.id,
            "sandbox-delivery-id": job.id,
            "sandbox-delivery-attempt": str(job.attempt),
        }
        if self.client is None:
            # trust_env off: a proxy named in the environment must not carry a delivery elsewhere.
            # No connection is kept between deliveries: an endpoint is a test's receiver that comes and
            # goes, and a loopback connect costs less than a stale connection's failure.
            limits = httpx.Limits(max_connections=SENDING, max_keepalive_connections=0)
            self.client = httpx.AsyncClient(timeout=TIMEOUT, trust_env=False, limits=limits, follow_redirects=False)
        started = time.monotonic()
        try:
            # One deadline for the whole exchange: httpx's own bounds each read, which an endpoint
            # sending a byte every few seconds would never meet.
            async with asyncio.timeout(TIMEOUT):
                async with self.client.stream("POST", hook.url, content=body, headers=headers) as response:
                    answer = b""
                    async for chunk in response.aiter_raw():
                        answer += chunk[: BODY_KEPT - len(answer)]
                        if len(answer) >= BODY_KEPT:
                            break
            return response.status_code, None, answer.decode("utf-8", "replace"), time.monotonic() - started
        except (TimeoutError, httpx.TimeoutException):
            return None, f"timeout: no whole answer in {TIMEOUT:g} s", "", time.monotonic() - started
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            return None, f"{type(exc).__name__}: {str(exc)[:200]}", "", time.monotonic() - started
