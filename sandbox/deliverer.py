"""The webhook deliverer: the loop of each process that takes due jobs from the store and POSTs
them (webhooks.py queues them; outbound.py sends them).

At most SENDING deliveries are in flight per process, each endpoint's one after the other in the
order they came due (so a duplicate or a held-back event arrives where the scenario put it). A
started-by-the-server loop polls every _POLL seconds for jobs other processes queued or that came
due; one started by a request in an app driven in process ends after _IDLE seconds without work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field

import orjson

from sandbox import __version__
from sandbox.errors import StoreUnavailable
from sandbox.models import Event, Misdelivery
from sandbox.outbound import BadAnswer, post, refusal, sign
from sandbox.webhooks import MAX_QUEUED, RETRY_AFTER, TIMEOUT, Hook, Job, Webhooks, attempt_record

_log = logging.getLogger("sandbox")
SENDING = 32  # deliveries in flight per process
_POLL = 0.5  # seconds between two looks at the queue for jobs queued by other processes, or come due
_IDLE = 60.0  # seconds without a job before a loop started by a request (not by the server) ends
_FORGED = b"whsec_not-your-endpoint-secret"  # signs the deliveries of a `bad_signature` rule


@dataclass
class Deliverer:
    """The loop of one process that takes due jobs and sends them (see the module's docstring)."""

    webhooks: Webhooks
    persistent: bool = False  # started by the server: polls until it stops, not only while busy
    task: asyncio.Task[None] | None = None
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
            self.task, self.busy = None, 0
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
        await asyncio.sleep(0.01)  # an aborted connection's socket is let go on a later turn of the loop

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
        record = attempt_record(job, event, status=status, error=error, seconds=seconds, body=answer, retry_at=retry_at)
        await webhooks.store.log_attempt(tenant, hook.id, record)

    async def _post(self, hook: Hook, job: Job, event: Event) -> tuple[int | None, str | None, str, float]:
        """(status, error, the answer's first BODY_KEPT bytes as text, seconds taken)."""
        why = refusal(hook.url, self.webhooks.allowed)
        if why is not None:  # --webhook-allow-hosts changed since the endpoint was registered
            return None, f"not allowed: {why}", "", 0.0
        body = orjson.dumps(event.wire())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"payments-sandbox/{__version__}",
            "Sandbox-Signature": sign(_FORGED if job.forged else hook.secret, int(time.time()), body),
            "Sandbox-Event-Id": event.id,
            "Sandbox-Delivery-Id": job.id,
            "Sandbox-Delivery-Attempt": str(job.attempt),
        }
        started = time.monotonic()
        try:
            status, answer, seconds = await post(hook.url, body, headers, TIMEOUT)
        except TimeoutError:
            return None, f"timeout: no whole answer in {TIMEOUT:g} s", "", time.monotonic() - started
        except ConnectionRefusedError:
            return None, "ConnectError: connection refused", "", time.monotonic() - started
        except (OSError, BadAnswer, EOFError, ValueError, UnicodeError) as exc:
            return None, f"{type(exc).__name__}: {str(exc)[:200]}", "", time.monotonic() - started
        return status, None, answer.decode("utf-8", "replace"), seconds
