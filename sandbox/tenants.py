"""The tenant controls that the control API and the dashboard both offer: reset, clock, seed,
uploaded rules, summaries. One implementation and one set of checks for both faces.

Heavy work (parsing 10,000 uploaded rules, making 10,000 fake charges) runs on the worker thread
(worker.py) while the event loop answers other requests; its result is stored in one step.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sandbox.chaos import PROFILES
from sandbox.errors import ConfigError, InvalidRequest
from sandbox.findings import Watcher
from sandbox.models import LAST_INSTANT, Charge, Summary, rfc3339
from sandbox.payments import Payments, now_of
from sandbox.scenarios import RuleSet, parse_rules, rules_from_catalog
from sandbox.stores import Store, TenantMeta
from sandbox.worker import Worker

MAX_CLOCK_ADVANCE = 10 * 365 * 24 * 3600  # seconds in one call
MAX_SEED = 10_000  # fake charges in one call
MAX_TENANT_RULES = 10_000  # scenario rules uploaded for one tenant, all uploads together
UPLOADED = "request:"  # how the source of an uploaded rule begins (`request:<tenant>:<line>`)


class Tenants:
    def __init__(self, payments: Payments, store: Store, worker: Worker, watcher: Watcher) -> None:
        self.payments = payments
        self.store = store
        self.worker = worker
        self.watcher = watcher  # what this process remembers of each tenant's calls (findings.py)

    async def reset(self, key: str | None) -> None:
        """Forget one tenant (charges, refunds, keys, journal, clock, rules), or every tenant."""
        await self.store.reset(key)
        self.watcher.forget(key)
        self.payments.chaos.forget(key)

    async def advance_clock(self, key: str, seconds: Any) -> TenantMeta:
        """Move a tenant's clock forward, settling what becomes due; never past year 9999."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_CLOCK_ADVANCE:
            raise InvalidRequest(
                "parameter_invalid", f"seconds must be a number from 0 to {MAX_CLOCK_ADVANCE}.", "seconds"
            )
        webhooks = self.payments.webhooks
        if webhooks is None:
            moved = await self.store.advance_clock(key, seconds, time.time(), LAST_INSTANT)
        else:
            async with webhooks.deliverer.clock:  # not while a retry of this tenant is being queued
                moved = await self.store.advance_clock(key, seconds, time.time(), LAST_INSTANT)
        if moved is None:
            meta = await self.store.tenant(key)
            shown = rfc3339(now_of(meta)) if meta is not None else "near it"
            raise InvalidRequest(
                "parameter_invalid",
                f"The clock would pass 9999-12-31T23:59:59Z, the last time RFC 3339 can write; it is now "
                f"{shown}. Reset the tenant to start its clock again.",
                "seconds",
            )
        meta = await self.payments.tenant(key)  # settles what came due
        assert meta is not None
        if webhooks is not None:
            webhooks.deliverer.nudge()  # the tenant's retries may be due now
        return meta

    async def seed(self, key: str, count: int, seed: int) -> list[Charge]:
        """Fake charges made on the worker thread, dated over the tenant's last 30 days."""
        from sandbox.seed import fake_charges  # only seeding needs it

        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SEED:
            raise InvalidRequest("parameter_invalid", f"count must be a whole number from 1 to {MAX_SEED}.", "count")
        meta = await self.payments.tenant(key)
        now = now_of(meta) if meta is not None else time.time()
        made = await self.worker.run(lambda: fake_charges(count, seed, now))
        return await self.store.add_seeded(key, made)

    async def add_chaos(self, key: str, profile: Any) -> list[dict[str, Any]]:
        """A built-in chaos profile for this tenant only, after every other rule (as `--chaos` is);
        its rules' catalog entries."""
        if not isinstance(profile, str) or profile not in PROFILES:
            raise InvalidRequest("parameter_invalid", f"profile must be one of {', '.join(PROFILES)}.", "profile")
        path = PROFILES[profile]
        return await self.add_rules(key, path.read_bytes(), str(path.resolve()))

    async def add_rules(self, key: str, raw: bytes, source: str | None = None) -> list[dict[str, Any]]:
        """Rules for this tenant only, ahead of what it had (at most MAX_TENANT_RULES uploaded);
        their catalog entries."""
        try:
            # JSON is a subset of YAML, so one parser takes both; parsing 10,000 rules takes a while,
            # so it runs on the worker thread while the loop answers other requests.
            added = await self.worker.run(lambda: parse_rules(raw, source or f"{UPLOADED}{key}"))
        except ConfigError as exc:
            raise InvalidRequest("invalid_scenarios", str(exc)) from exc
        meta = await self.store.tenant(key)  # after the wait: a reset may have come between
        stored = await self.store.rules(key) if meta is not None else None
        before = rules_from_catalog(json.loads(stored[1])) if stored is not None else []
        mine = {(rule.applies_to, rule.name) for rule in added}
        kept = added + [rule for rule in before if (rule.applies_to, rule.name) not in mine]
        if len(kept) > MAX_TENANT_RULES:
            raise InvalidRequest(
                "invalid_scenarios",
                f"This tenant would hold {len(kept)} uploaded rules, over the limit of {MAX_TENANT_RULES}; "
                "reset it (POST /__sandbox/reset) or upload fewer.",
            )
        document = json.dumps([rule.catalog() for rule in kept])
        await self.store.set_rules(key, document, len(kept), uuid.uuid4().hex)
        return [rule.catalog() for rule in added]

    async def rules(self, key: str | None) -> RuleSet:
        """The rules in effect for a tenant (the files' alone for none or an unknown tenant)."""
        meta = await self.payments.tenant(key) if key is not None else None
        return await self.payments.rules_for(meta)

    async def summary(self, key: str) -> Summary | None:
        meta = await self.payments.tenant(key)  # settles what came due, as the tenant's pages show it
        return await self.store.summary(key) if meta is not None else None

    async def summaries(self, offset: int, limit: int) -> tuple[list[Summary], int]:
        """A page of tenants, most recently used first (listing them does not make them recent)."""
        listed, total = await self.store.summaries(offset, limit)
        for n, summary in enumerate(listed):
            if summary.next_settle is not None and summary.next_settle <= summary.now():
                await self.payments.settle(summary.key, summary.now())
                listed[n] = await self.store.summary(summary.key) or summary
        return listed, total
