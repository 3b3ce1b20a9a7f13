"""Every business rule: charges, refunds, money limits, scenarios, idempotency, settlement.

Synchronous on purpose. A request that a scenario delays is split in two: `begin` decides
everything it can and returns an `Attempt` holding what it needs; the endpoint sleeps; `finish`
re-reads the state and commits. Nothing read before the sleep is trusted after it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import Conflict, InvalidRequest, NotFound, envelope
from sandbox.models import LAST_INSTANT, Charge, Refund, new_id, rfc3339
from sandbox.scenarios import Rule, RuleSet
from sandbox.store import Saved, Store, Tenant

IDEMPOTENCY_TTL = 24 * 3600.0
MAX_CLOCK_ADVANCE = 10 * 365 * 24 * 3600  # seconds in one call
MAX_TENANT_RULES = 10_000  # scenario rules uploaded for one tenant, all uploads together
UPLOADED = "request:"  # how the source of an uploaded rule begins (`request:<tenant>:<line>`)
# 429 and 503 mean the processor turned the request away before doing anything, so, as with
# validation errors, the result is not saved under the idempotency key: the client's retry with
# the same key is processed afresh.
_NOT_SAVED = frozenset({429, 503})


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    scenario: str | None = None


@dataclass
class Attempt:
    """A request accepted by `begin`, waiting out its scenario's delay before `finish`."""

    tenant_key: str
    kind: str
    body: dict[str, Any]
    rule: Rule | None
    key: str | None
    fingerprint: str  # of the body, when an idempotency key or a fail-first rule needs it
    marker: str  # what a fail-first rule remembers: the key, or the body without one
    delay: float


class Payments:
    def __init__(self, store: Store, rules: RuleSet, idempotency_keys: int = 10_000) -> None:
        self.store = store
        self.rules = rules
        self.idempotency_keys = idempotency_keys

    # -- state access ---------------------------------------------------------------------
    def tenant(self, key: str) -> Tenant:
        """The tenant, created if need be (writes only), with pending charges that are due settled."""
        return self._settled(self.store.tenant(key))

    def existing(self, key: str) -> Tenant | None:
        """The tenant if it exists (reads create none), with pending charges that are due settled."""
        tenant = self.store.get(key)
        return self._settled(tenant) if tenant is not None else None

    def _settled(self, tenant: Tenant) -> Tenant:
        for charge in tenant.due_settlements(tenant.now()):
            self._settle(tenant, charge)
        return tenant

    def rules_for(self, tenant: Tenant | None) -> RuleSet:
        return tenant.rules if tenant is not None and tenant.rules is not None else self.rules

    # -- the tenant's sandbox controls (control API and dashboard) ---------------------------
    def reset(self, key: str | None) -> None:
        """Forget one tenant (charges, refunds, keys, clock, overrides), or every tenant."""
        self.store.reset(key)

    def advance_clock(self, key: str, seconds: float) -> Tenant:
        """Move a tenant's clock forward, settling what becomes due; never past year 9999."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_CLOCK_ADVANCE:
            raise InvalidRequest(
                "parameter_invalid", f"seconds must be a number from 0 to {MAX_CLOCK_ADVANCE}.", "seconds"
            )
        tenant = self.store.tenant(key)
        if tenant.now() + seconds > LAST_INSTANT:
            raise InvalidRequest(
                "parameter_invalid",
                f"The clock would pass 9999-12-31T23:59:59Z, the last time RFC 3339 can write; it is now "
                f"{rfc3339(tenant.now())}. Reset the tenant to start its clock again.",
                "seconds",
            )
        tenant.clock_offset += seconds
        return self._settled(tenant)

    def add_rules(self, key: str, rules: RuleSet) -> None:
        """Rules for this tenant only, ahead of what it had; at most MAX_TENANT_RULES uploaded."""
        layered = rules.layered_over(self.rules_for(self.existing(key)))
        uploaded = sum(1 for rule in layered.rules if rule.source.startswith(UPLOADED))
        if uploaded > MAX_TENANT_RULES:
            raise InvalidRequest(
                "invalid_scenarios",
                f"This tenant would hold {uploaded} uploaded rules, over the limit of {MAX_TENANT_RULES}; "
                "reset it (POST /__sandbox/reset) or upload fewer.",
            )
        self.store.set_rules(self.tenant(key), layered, uploaded)

    def clock_of(self, key: str) -> float:
        """The tenant's current sandbox time (real time for a tenant that does not exist yet)."""
        tenant = self.store.get(key)
        return tenant.now() if tenant is not None else time.time()

    def add_seeded(self, key: str, made: list[tuple[Charge, Refund | None]]) -> list[Charge]:
        """Store charges made by `seed.fake_charges` (numbered here, in one step on the loop)."""
        tenant = self.tenant(key)
        charges = []
        for charge, refund in made:
            charge.seq = self.store.next_seq()
            charges.append(charge)
            if refund is not None:
                tenant.add_refund(refund)
        tenant.add_charges(charges)
        return charges

    @staticmethod
    def _settle(tenant: Tenant, charge: Charge) -> None:
        to = charge.settle_to or "succeeded"
        if to == "failed":
            charge.failure_code = charge.settle_code or "generic_decline"
        charge.settled_at, charge.settle_at = charge.settle_at, None
        tenant.set_status(charge, to)

    # -- reads ------------------------------------------------------------------------------
    def get_charge(self, tenant_key: str, charge_id: str) -> dict[str, Any]:
        tenant = self.existing(tenant_key)
        charge = tenant.charges.get(charge_id) if tenant is not None else None
        if charge is None:
            raise NotFound("resource_missing", f"No such charge: {charge_id[:100]!r}.", "id")
        return charge.wire()

    def list_charges(self, tenant_key: str, limit: int, offset: int, status: str | None) -> dict[str, Any]:
        tenant = self.existing(tenant_key)
        rows, total = tenant.page(status, limit, offset) if tenant is not None else ([], 0)
        return {"data": [c.wire() for c in rows], "total": total, "limit": limit, "offset": offset}

    # -- writes -----------------------------------------------------------------------------
    def begin(self, tenant_key: str, kind: str, body: dict[str, Any], key: str | None) -> Reply | Attempt:
        """Everything up to the scenario's delay: a final Reply, or an Attempt to finish. A request
        turned away here creates no tenant; only what must be remembered does."""
        tenant = self.existing(tenant_key)
        _check_metadata(body)
        # What "the same request" means for idempotency and fail-first rules; only they need it.
        fingerprint = ""
        if key is not None:
            fingerprint = _fingerprint(kind, body)
            saved = None
            if tenant is not None:
                tenant.forget_expired(tenant.now(), IDEMPOTENCY_TTL)
                saved = tenant.idempotency.get(key)
            if saved is not None:
                return _replay(saved, fingerprint, key)
        rule = self._match(tenant, kind, body)
        marker = ""
        if rule is not None and rule.fail_first:
            # Per payment: the key names it when there is one, so two payments with equal bodies
            # and their own keys each fail once; without a key, the body is all there is.
            marker = "key:" + key if key is not None else "body:" + _fingerprint(kind, body)
            if tenant is None or marker not in tenant.failed_once:
                self.tenant(tenant_key).fail_once(marker, self.idempotency_keys)
                return _error_reply(rule)
        if key is not None:
            writer = self.tenant(tenant_key)
            writer.save(key, Saved(fingerprint, writer.now()), self.idempotency_keys)
        delay = rule.delay_ms / 1000 if rule else 0.0
        return Attempt(tenant_key, kind, body, rule, key, fingerprint, marker, delay)

    def finish(self, attempt: Attempt) -> Reply:
        # Looked up again: a reset during the delay replaced the tenant, and the charge belongs
        # in the tenant the client reads from next.
        rule = attempt.rule
        retried = rule if rule is not None and rule.fail_first else None
        if retried is not None:
            tenant = self.existing(attempt.tenant_key)
            if tenant is not None:
                tenant.failed_once.pop(attempt.marker, None)
            rule = None  # the retry of a fail-first request is an ordinary success
        try:
            if attempt.kind == "charge":
                committed, reply = self._charge(attempt.tenant_key, attempt.body, rule)
            else:
                committed, reply = self._refund(attempt.tenant_key, attempt.body, rule)
        except Exception:
            self.abandon(attempt)
            raise
        if retried is not None:
            reply.scenario = retried.name  # the client sees which rule let the retry through
        if attempt.key is not None:
            tenant = self.existing(attempt.tenant_key)
            saved = tenant.idempotency.get(attempt.key) if tenant is not None else None
            if tenant is not None and saved is not None:
                if reply.status in _NOT_SAVED:
                    del tenant.idempotency[attempt.key]
                else:
                    # After a commit-then-timeout the key keeps the committed result, so the
                    # client's retry with the same key gets the charge, not another timeout.
                    saved.reply = committed
        return reply

    def abandon(self, attempt: Attempt) -> None:
        """Release the idempotency key of an attempt that never finished."""
        if attempt.key is not None:
            tenant = self.store.tenants.get(attempt.tenant_key)  # None after a reset
            saved = tenant.idempotency.get(attempt.key) if tenant is not None else None
            if tenant is not None and saved is not None and saved.reply is None:
                del tenant.idempotency[attempt.key]

    def _match(self, tenant: Tenant | None, kind: str, body: dict[str, Any]) -> Rule | None:
        rules = self.rules_for(tenant)
        metadata = body.get("metadata") or {}
        named = metadata.get("sandbox_scenario")
        if named is not None and named not in rules.names():
            raise InvalidRequest(
                "unknown_scenario",
                f"No scenario rule named {named[:64]!r}; GET /__sandbox/scenarios lists them.",
                "metadata.sandbox_scenario",
            )
        if kind == "charge":
            return rules.match("charge", body["amount"], body["currency"], metadata)
        charge = tenant.charges.get(body["charge_id"]) if tenant is not None else None
        if charge is None:
            return None  # _refund answers 404
        if named is not None:
            return rules.by_name.get(("refund", named))
        return rules.match("refund", charge.amount, charge.currency, charge.metadata)

    def _charge(self, tenant_key: str, body: dict[str, Any], rule: Rule | None) -> tuple[Reply, Reply]:
        record = rule.record if rule else "succeeded"
        charge = None
        if record != "none":
            tenant = self.tenant(tenant_key)
            now = tenant.now()
            charge = Charge(
                id=new_id("ch_"),
                seq=self.store.next_seq(),
                amount=body["amount"],
                currency=body["currency"],
                description=body.get("description"),
                metadata=body.get("metadata") or {},
                status=record,
                created=now,
                scenario=rule.name if rule else None,
            )
            if record == "failed" and rule and rule.error:
                charge.failure_code = rule.error.get("decline_code") or rule.error["code"]
            if record == "pending" and rule and rule.settle_after is not None:
                charge.settle_at = now + rule.settle_after
                charge.settle_to, charge.settle_code = rule.settle_to, rule.settle_code
            tenant.add_charge(charge)
        if rule is None or rule.error is None:
            reply = Reply(200, charge.wire() if charge else {}, _headers(rule), _name(rule))
            return reply, reply
        failed = _error_reply(rule, charge.id if charge else None)
        committed = Reply(200, charge.wire(), {}, rule.name) if record == "succeeded" and charge else failed
        return committed, failed

    def _refund(self, tenant_key: str, body: dict[str, Any], rule: Rule | None) -> tuple[Reply, Reply]:
        tenant = self.existing(tenant_key)
        charge = tenant.charges.get(body["charge_id"]) if tenant is not None else None
        if tenant is None or charge is None:
            raise NotFound("resource_missing", f"No such charge: {body['charge_id'][:100]!r}.", "charge_id")
        if charge.status != "succeeded":
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
        amount = body.get("amount", remaining)
        if amount > remaining:
            raise InvalidRequest(
                "amount_too_large",
                f"Refund amount {amount} is more than the {remaining} left to refund on {charge.id}.",
                "amount",
            )
        if rule is not None and rule.error is not None and rule.record == "none":
            failed = _error_reply(rule)
            return failed, failed
        refund = Refund(
            id=new_id("rf_"),
            charge_id=charge.id,
            amount=amount,
            reason=body.get("reason"),
            metadata=body.get("metadata") or {},
            created=tenant.now(),
            scenario=rule.name if rule else None,
        )
        charge.amount_refunded += amount
        tenant.add_refund(refund)
        committed = Reply(200, refund.wire(), _headers(rule) if rule and not rule.error else {}, _name(rule))
        return committed, (_error_reply(rule) if rule and rule.error else committed)


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
