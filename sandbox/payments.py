"""Every business rule: charges, refunds, money limits, scenarios, idempotency, settlement.

It talks only to the `Store` interface, one atomic step at a time, and holds nothing read in one
step across an `await` into another. A request that a scenario delays is split in two: `begin`
decides everything it can and returns an `Attempt`; the endpoint sleeps; `finish` commits, reading
again whatever it needs. A refund's check of what is left to refund runs inside the store's own
transaction (`Store.refund`), so two processes can never refund the same money twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import orjson

from sandbox.chaos import Chaos
from sandbox.errors import Conflict, InvalidRequest, NotFound, envelope
from sandbox.models import Charge, Event, Kind, Outcome, Refund, Reply, Saved, Status, new_id
from sandbox.scenarios import Rule, RuleSet, rules_from_catalog
from sandbox.stores import Store, TenantMeta
from sandbox.webhooks import Webhooks

IDEMPOTENCY_TTL = 24 * 3600.0
# 429 and 503 mean the processor turned the request away before doing anything, so, as with
# validation errors, the result is not saved under the idempotency key: the client's retry with
# the same key is processed afresh.
_NOT_SAVED = frozenset({429, 503})
_RULESETS_KEPT = 256  # tenants' rule sets built from the store, by version
_STATUS_OF = {outcome.value: Status(outcome.value) for outcome in Outcome if outcome != Outcome.NONE}


@dataclass
class Attempt:
    """A request accepted by `begin`, waiting out its scenario's delay before `finish`."""

    tenant_key: str
    kind: Kind
    body: dict[str, Any]
    rule: Rule | None
    key: str | None
    marker: str  # what a fail-first rule remembers: the key, or the body without one
    delay: float
    meta: TenantMeta | None  # as `begin` read it; read again after a delay


class Payments:
    def __init__(
        self,
        store: Store,
        rules: RuleSet,
        idempotency_keys: int = 10_000,
        chaos: Chaos | None = None,
        webhooks: Webhooks | None = None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.idempotency_keys = idempotency_keys
        self.chaos = chaos or Chaos(0)
        self.webhooks = webhooks  # where events are queued for delivery; None: they are only stored
        self._rulesets: OrderedDict[str, RuleSet] = OrderedDict()

    # -- state access ---------------------------------------------------------------------
    async def tenant(self, key: str, *, create: bool = False) -> TenantMeta | None:
        """The tenant (created only if asked: writes), with pending charges that are due settled."""
        meta = await self.store.tenant(key, create=create)
        if meta is not None and meta.next_settle is not None and meta.next_settle <= now_of(meta):
            await self.settle(key, now_of(meta), meta)
        return meta

    async def settle(self, key: str, now: float, meta: TenantMeta | None = None) -> None:
        """Settle the tenant's pending charges that are due at `now`, each with its event (only the
        process whose store call settled a charge tells of it, and queues its webhooks)."""
        settled = await self.store.settle_due(key, now)
        if not settled:
            return
        settled.sort(key=lambda c: (c.settled_at or now, c.seq))
        events = [_event(f"charge.{c.status}", c.wire(), c.settled_at or now) for c in settled]
        await self.store.add_events(key, events)
        meta = meta or await self.store.tenant(key)
        if self.webhooks is None or meta is None or not self.webhooks.wanted(meta):
            return
        rules = await self.rules_for(meta)
        for charge, event in zip(settled, events, strict=True):
            rule = rules.by_name.get((Kind.CHARGE, charge.scenario)) if charge.scenario else None
            await self.webhooks.publish(meta, [event], rule.webhooks if rule else None)

    async def rules_for(self, meta: TenantMeta | None) -> RuleSet:
        """The tenant's rule set: its uploaded rules ahead of the files'."""
        version = meta.rules_version if meta is not None else None
        if meta is None or version is None:
            return self.rules
        return self._rulesets.get(version) or await self._load_rules(meta, version)

    async def _load_rules(self, meta: TenantMeta, version: str) -> RuleSet:
        cached = self._rulesets.get(version)
        if cached is None:
            found = await self.store.rules(meta.key)
            if found is None:
                return self.rules
            version, document = found
            cached = RuleSet(rules_from_catalog(json.loads(document))).layered_over(self.rules)
            self._rulesets[version] = cached
            while len(self._rulesets) > _RULESETS_KEPT:
                self._rulesets.popitem(last=False)
        self._rulesets.move_to_end(version)
        return cached

    # -- reads ------------------------------------------------------------------------------
    async def get_charge(self, tenant_key: str, charge_id: str) -> dict[str, Any]:
        meta = await self.tenant(tenant_key)
        charge = await self.store.charge(tenant_key, charge_id) if meta is not None else None
        if charge is None:
            raise NotFound("resource_missing", f"No such charge: {charge_id[:100]!r}.", "id")
        return charge.wire()

    async def list_charges(self, tenant_key: str, limit: int, offset: int, status: str | None) -> dict[str, Any]:
        meta = await self.tenant(tenant_key)
        rows, total = await self.store.page(tenant_key, status, limit, offset) if meta is not None else ([], 0)
        return {"data": [c.wire() for c in rows], "total": total, "limit": limit, "offset": offset}

    # -- writes -----------------------------------------------------------------------------
    async def begin(self, tenant_key: str, kind: Kind, body: dict[str, Any], key: str | None) -> Reply | Attempt:
        """Everything up to the scenario's delay: a final Reply, or an Attempt to finish. A request
        turned away here creates no tenant; only what must be remembered does."""
        meta = await self.tenant(tenant_key)
        _check_metadata(body)
        # What "the same request" means for idempotency and fail-first rules; only they need it.
        fingerprint = _fingerprint(kind, body) if key is not None else ""
        if key is not None and meta is not None:
            saved = await self.store.saved(tenant_key, key, now_of(meta), IDEMPOTENCY_TTL)
            if saved is not None:
                return _replay(saved, fingerprint, key)
        rule = await self._match(tenant_key, meta, kind, body)
        marker = ""
        if rule is not None and rule.fail_first:
            # Per payment: the key names it when there is one, so two payments with equal bodies
            # and their own keys each fail once; without a key, the body is all there is.
            marker = "key:" + key if key is not None else "body:" + _fingerprint(kind, body)
            if await self.store.mark(tenant_key, marker, self.idempotency_keys):
                return _faulted(_error_reply(rule), rule)
        if key is not None:
            now = now_of(meta) if meta is not None else time.time()
            earlier = await self.store.claim(
                tenant_key, key, Saved(fingerprint, now), self.idempotency_keys, IDEMPOTENCY_TTL
            )
            if earlier is not None:  # another process claimed it since we looked
                return _replay(earlier, fingerprint, key)
        delay = rule.delay_ms / 1000 if rule else 0.0
        return Attempt(tenant_key, kind, body, rule, key, marker, delay, None if delay else meta)

    async def finish(self, attempt: Attempt) -> Reply:
        rule = attempt.rule
        retried = rule if rule is not None and rule.fail_first else None
        if retried is not None:
            await self.store.unmark(attempt.tenant_key, attempt.marker)
            rule = None  # the retry of a fail-first request is an ordinary success
        try:
            if attempt.kind == Kind.CHARGE:
                reply = await self._charge(attempt, rule)
            else:
                reply = await self._refund(attempt, rule)
        except Exception:
            await self.abandon(attempt)
            raise
        if retried is not None:
            reply.scenario = retried.name  # the client sees which rule let the retry through
        return _faulted(reply, rule)

    async def abandon(self, attempt: Attempt) -> None:
        """Release the idempotency key of an attempt that never finished."""
        if attempt.key is not None:
            await self.store.save_reply(attempt.tenant_key, attempt.key, None)

    async def _match(self, tenant_key: str, meta: TenantMeta | None, kind: Kind, body: dict[str, Any]) -> Rule | None:
        rules = self.rules if meta is None or meta.rules_version is None else await self.rules_for(meta)
        metadata = body.get("metadata") or {}
        named = metadata.get("sandbox_scenario")
        if named is not None and named not in rules.names():
            raise InvalidRequest(
                "unknown_scenario",
                f"No scenario rule named {named[:64]!r}; GET /__sandbox/scenarios lists them.",
                "metadata.sandbox_scenario",
            )

        def fires(probability: float | None) -> bool:
            return self.chaos.fires(tenant_key, probability)

        if kind == Kind.CHARGE:
            return rules.match(Kind.CHARGE, body["amount"], body["currency"], metadata, fires)
        charge = await self.store.charge(meta.key, body["charge_id"]) if meta is not None else None
        if charge is None:
            return None  # the refund answers 404
        if named is not None:
            return rules.by_name.get((Kind.REFUND, named))
        return rules.match(Kind.REFUND, charge.amount, charge.currency, charge.metadata, fires)

    async def _charge(self, attempt: Attempt, rule: Rule | None) -> Reply:
        record = rule.record if rule else Outcome.SUCCEEDED
        body, charge = attempt.body, None
        if record != Outcome.NONE:
            meta = attempt.meta or await self.tenant(attempt.tenant_key, create=True)
            assert meta is not None
            now = now_of(meta)
            charge = Charge(
                id=new_id("ch_"),
                seq=0,  # numbered by the store
                amount=body["amount"],
                currency=body["currency"],
                description=body.get("description"),
                metadata=body.get("metadata") or {},
                status=_STATUS_OF[record],
                created=now,
                scenario=rule.name if rule else None,
            )
            if record == Outcome.FAILED and rule and rule.error:
                charge.failure_code = rule.error.get("decline_code") or rule.error["code"]
            if record == Outcome.PENDING and rule and rule.settle_after is not None:
                charge.settle_at = now + rule.settle_after
                charge.settle_to, charge.settle_code = rule.settle_to, rule.settle_code
        shown = charge.wire() if charge is not None else None  # the reply's body and the event's object
        if rule is None or rule.error is None:
            reply = committed = Reply(200, shown or {}, _headers(rule), _name(rule))
        else:
            reply = _error_reply(rule, charge.id if charge else None)
            # After a commit-then-timeout the key keeps the committed result, so the client's
            # retry with the same key gets the charge, not another timeout.
            succeeded = record == Outcome.SUCCEEDED and charge
            committed = Reply(200, shown or {}, {}, rule.name) if succeeded and charge else reply
        saved = None if _unsaved(reply, rule) else committed
        if charge is not None:
            told = [_event(f"charge.{charge.status}", charge.wire() if shown is None else shown, now)]
            if reply.body is shown:
                reply.raw = told[0].data  # the same JSON: made once
            await self.store.add_charge(attempt.tenant_key, charge, attempt.key, saved, told)
            if self.webhooks is not None and meta is not None and self.webhooks.wanted(meta):
                settle_at = charge.settle_at if charge.status == Status.PENDING else None
                await self.webhooks.publish(meta, told, rule.webhooks if rule else None, settle_at)
        elif attempt.key is not None:
            await self.store.save_reply(attempt.tenant_key, attempt.key, saved)
        return reply

    async def _refund(self, attempt: Attempt, rule: Rule | None) -> Reply:
        body = attempt.body
        meta = await self.tenant(attempt.tenant_key)
        now = now_of(meta) if meta is not None else time.time()

        told: list[Event] = []  # what the last decision tells of (decide may run again on a retry)

        def decide(charge: Charge | None) -> tuple[Refund | None, tuple[Reply, Reply]]:
            amount = _refundable(charge, body)
            told.clear()
            if rule is not None and rule.error is not None and rule.record == Outcome.NONE:
                failed = _error_reply(rule)
                if charge is not None:  # the refund the processor refused, as it would have been
                    refused = Refund(new_id("rf_"), charge.id, amount, body.get("reason"), body.get("metadata") or {},
                                     now, "failed", rule.name)  # fmt: skip
                    told.append(_event("refund.failed", {**refused.wire(), "failure_code": rule.error["code"]}, now))
                return None, (failed, failed)
            assert charge is not None
            refund = Refund(
                id=new_id("rf_"),
                charge_id=charge.id,
                amount=amount,
                reason=body.get("reason"),
                metadata=body.get("metadata") or {},
                created=now,
                scenario=rule.name if rule else None,
            )
            committed = Reply(200, refund.wire(), _headers(rule) if rule and not rule.error else {}, _name(rule))
            told.append(_event("refund.succeeded", refund.wire(), now))
            if charge.amount_refunded + amount == charge.amount:
                refunded = {**charge.wire(), "amount_refunded": charge.amount, "refunded": True}
                told.append(_event("charge.refunded", refunded, now))
            return refund, (committed, _error_reply(rule) if rule and rule.error else committed)

        def saved(verdict: tuple[Reply, Reply]) -> Reply | None:
            committed, reply = verdict
            return None if _unsaved(reply, rule) else committed

        _, reply = await self.store.refund(attempt.tenant_key, body["charge_id"], decide, attempt.key, saved)
        if told:
            await self.store.add_events(attempt.tenant_key, told)
            if self.webhooks is not None and meta is not None and self.webhooks.wanted(meta):
                await self.webhooks.publish(meta, told, rule.webhooks if rule else None)
        return reply


def _event(kind: str, shown: dict[str, Any], at: float) -> Event:
    """An event telling of `shown` (a charge or refund as the API shows it) at sandbox time `at`."""
    return Event(new_id("evt_"), kind, at, orjson.dumps(shown))


def now_of(meta: TenantMeta) -> float:
    """The tenant's sandbox time."""
    return time.time() + meta.clock_offset


def _refundable(charge: Charge | None, body: dict[str, Any]) -> int:
    """How much this refund takes from the charge, or the error that refuses it."""
    if charge is None:
        raise NotFound("resource_missing", f"No such charge: {body['charge_id'][:100]!r}.", "charge_id")
    if charge.status != Status.SUCCEEDED:
        raise InvalidRequest(
            "charge_not_refundable",
            f"Charge {charge.id} is {charge.status}; only succeeded charges can be refunded.",
            "charge_id",
        )
    remaining = charge.remaining
    if remaining == 0:
        raise InvalidRequest(
            "charge_already_refunded", f"Charge {charge.id} has already been refunded in full.", "charge_id"
        )
    amount: int = body.get("amount", remaining)
    if amount > remaining:
        raise InvalidRequest(
            "amount_too_large",
            f"Refund amount {amount} is more than the {remaining} left to refund on {charge.id}.",
            "amount",
        )
    return amount


def _check_metadata(body: dict[str, Any]) -> None:
    # OpenAPI 3.0 has no `propertyNames`, so this one limit lives here rather than in the contract.
    for name in body.get("metadata") or {}:
        if len(name) > 40:
            raise InvalidRequest(
                "parameter_invalid", f"metadata key {name[:40]!r}... is over 40 characters.", "metadata"
            )


def _fingerprint(kind: str, body: dict[str, Any]) -> str:
    canonical = json.dumps([kind, body], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(saved: Saved, fingerprint: str, key: str) -> Reply:
    if saved.fingerprint != fingerprint:
        return Reply(
            400,
            envelope(
                "idempotency_error",
                f"Keys for idempotent requests can only be used with the same parameters they were first used with; "
                f"this request differs from the first one made with key {key[:64]!r}.",
                "Idempotency-Key",
            ),
        )
    if saved.reply is None:
        raise Conflict(
            "idempotency_conflict",
            f"Another request with Idempotency-Key {key[:64]!r} is still in progress; retry when it has finished.",
            "Idempotency-Key",
        )
    first: Reply = saved.reply
    return Reply(first.status, first.body, {**first.headers, "Idempotent-Replayed": "true"}, first.scenario)


def _unsaved(reply: Reply, rule: Rule | None) -> bool:
    """Whether the result is kept from the idempotency key, so that a retry with it is processed afresh."""
    return reply.status in _NOT_SAVED or (rule is not None and rule.fault is not None and not rule.fault.commit)


def _faulted(reply: Reply, rule: Rule | None) -> Reply:
    """The reply as it goes out: with the rule's network fault, if it has one. (The saved reply,
    a separate object, has none: a replay under the idempotency key is sent whole.)"""
    if rule is None or rule.fault is None:
        return reply
    return replace(reply, fault=rule.fault)


def _name(rule: Rule | None) -> str | None:
    return rule.name if rule else None


def _headers(rule: Rule | None) -> dict[str, str]:
    return dict(rule.headers) if rule else {}


def _error_reply(rule: Rule, charge_id: str | None = None) -> Reply:
    assert rule.error is not None
    extra: dict[str, Any] = {}
    if rule.error.get("decline_code"):
        extra["decline_code"] = rule.error["decline_code"]
    if charge_id:
        extra["charge"] = charge_id
    if rule.retryable is not None:
        extra["retryable"] = rule.retryable
    body = envelope(rule.error["code"], rule.error["message"], None, **extra)
    return Reply(rule.status, body, _headers(rule), rule.name)
