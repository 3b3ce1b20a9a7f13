"""A webhook handler for the Payments API, written as an app's own would be: a Starlette app whose
`POST /webhooks` takes the API's events and keeps a small table of its charges' latest status.

A handler meets everything a network does to webhooks, so it:

- verifies `Sandbox-Signature` (`t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`) with the
  endpoint's secret, comparing in constant time, and refuses a timestamp more than five minutes
  off (a replayed delivery): 400, nothing applied;
- applies each event id once: the same event delivered again is answered 200 and ignored;
- orders each charge's events by `created_at`, so a late older event (`charge.pending` arriving
  after `charge.succeeded`) never moves a charge backwards;
- marks an event as seen only once it has been applied: a delivery it failed to process (answered
  non-2xx) is retried by the sender and must not then be taken for a duplicate.

`GET /charges/{id}` and `GET /stats` show what the handler believes (the tests read them).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOLERANCE = 300  # seconds a signature's timestamp may be off from this machine's clock
SIGNATURE_HEADER = "sandbox-signature"
# A charge only moves forward: pending, then succeeded or failed. `created_at` has whole seconds,
# so two events of one second are ordered by how far along they show the charge.
_PROGRESS = {"pending": 0, "succeeded": 1, "failed": 1}


class InvalidSignature(Exception):
    """The delivery is not signed with our secret, or was signed too long ago."""


def verify_signature(
    secret: str, header: str | None, body: bytes, *, now: float | None = None, tolerance: float = TOLERANCE
) -> None:
    """Raise `InvalidSignature` unless `header` signs exactly `body` with `secret`, within
    `tolerance` seconds of `now`. The header may carry several `v1=` (a secret being rotated)."""
    if not header:
        raise InvalidSignature("no Sandbox-Signature header")
    stamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            stamps.append(value)
        elif name == "v1":
            signatures.append(value)
    if len(stamps) != 1 or not stamps[0].isascii() or not stamps[0].isdigit() or not signatures:
        raise InvalidSignature("malformed Sandbox-Signature header")
    # A future timestamp is refused as well as an old one: a clock that far off is not ours.
    if abs((time.time() if now is None else now) - int(stamps[0])) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance")
    expected = hmac.new(secret.encode(), stamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    # compare_digest takes as long whatever the first wrong character: no timing oracle.
    if not any(hmac.compare_digest(expected.encode(), given.encode()) for given in signatures):
        raise InvalidSignature("signature mismatch")


@dataclass
class ChargeRecord:
    """What the handler knows of one charge: its latest state, as of the event that showed it."""

    id: str
    status: str
    amount_refunded: int
    refunded: bool
    as_of: datetime  # `created_at` of the event that set this state
    events: list[str] = field(default_factory=list)  # ids of the events applied, in the order applied

    def order(self) -> tuple[datetime, int, int]:
        return order_of(self.as_of, self.status, self.amount_refunded)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "amount_refunded": self.amount_refunded,
            "refunded": self.refunded,
            "as_of": self.as_of.isoformat(),
            "events": list(self.events),
        }


def order_of(at: datetime, status: str, amount_refunded: int) -> tuple[datetime, int, int]:
    return at, _PROGRESS.get(status, 0), amount_refunded


class Ledger:
    """The charges' table. `apply` is synchronous: on the app's one event loop nothing runs between
    the duplicate check and the write, so two deliveries of one event cannot both be applied."""

    def __init__(self) -> None:
        self.charges: dict[str, ChargeRecord] = {}
        # A real app keeps these in its database, for longer than the sender retries (a day here).
        self.seen: set[str] = set()
        self.outcomes: Counter[str] = Counter()

    def apply(self, event: dict[str, Any]) -> str:
        """Apply one verified event; the outcome: applied, duplicate, stale or ignored."""
        outcome = self._outcome(event)
        self.outcomes[outcome] += 1
        return outcome

    def _outcome(self, event: dict[str, Any]) -> str:
        event_id = event["id"]
        if event_id in self.seen:
            return "duplicate"
        self.seen.add(event_id)
        if not str(event["type"]).startswith("charge."):
            return "ignored"  # refund.* events: this table is about charges
        charge = event["data"]["object"]
        at = datetime.fromisoformat(event["created_at"])
        known = self.charges.get(charge["id"])
        if known is not None and order_of(at, charge["status"], charge["amount_refunded"]) <= known.order():
            return "stale"  # older news than what the table holds: it must not move the charge back
        record = ChargeRecord(charge["id"], charge["status"], charge["amount_refunded"], charge["refunded"], at)
        record.events = [*(known.events if known else []), event_id]
        self.charges[record.id] = record
        return "applied"


class WebhookHandler:
    """The endpoints, over one `Ledger`, for the endpoint whose signing secret is `secret`.

    `fail_first` is a test switch: the first that many verified deliveries are answered 503, as an
    app whose database is down would, so that a test can watch the sender retry them."""

    def __init__(self, secret: str, ledger: Ledger, *, fail_first: int = 0) -> None:
        self.secret = secret
        self.ledger = ledger
        self.failures_left = fail_first

    async def receive(self, request: Request) -> JSONResponse:
        body = await request.body()  # the raw bytes: the signature is over them, not over re-encoded JSON
        outcomes = self.ledger.outcomes
        try:
            verify_signature(self.secret, request.headers.get(SIGNATURE_HEADER), body)
        except InvalidSignature as exc:
            outcomes["rejected"] += 1
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            event = json.loads(body)
            _check_shape(event)
        except (ValueError, KeyError, TypeError) as exc:
            outcomes["malformed"] += 1
            return JSONResponse({"error": f"not an event: {exc}"}, status_code=400)
        if self.failures_left > 0:
            self.failures_left -= 1
            outcomes["failed"] += 1  # not marked as seen: the retry must be applied
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
        return JSONResponse({"received": True, "outcome": self.ledger.apply(event)})

    async def charge(self, request: Request) -> JSONResponse:
        record = self.ledger.charges.get(request.path_params["charge_id"])
        if record is None:
            return JSONResponse({"error": "no such charge"}, status_code=404)
        return JSONResponse(record.view())

    async def stats(self, request: Request) -> JSONResponse:
        return JSONResponse({"charges": len(self.ledger.charges), "outcomes": dict(self.ledger.outcomes)})


def create_app(secret: str, *, fail_first: int = 0) -> Starlette:
    """The app: `POST /webhooks` takes deliveries; `GET /charges/{id}` and `GET /stats` show the table."""
    handler = WebhookHandler(secret, Ledger(), fail_first=fail_first)
    app = Starlette(
        routes=[
            Route("/webhooks", handler.receive, methods=["POST"]),
            Route("/charges/{charge_id}", handler.charge, methods=["GET"]),
            Route("/stats", handler.stats, methods=["GET"]),
        ]
    )
    app.state.handler = handler
    return app


def _check_shape(event: Any) -> None:
    """Raise unless `event` has what `Ledger.apply` reads (a charge event's object included)."""
    if not isinstance(event, dict) or not isinstance(event["id"], str) or not isinstance(event["type"], str):
        raise TypeError("an event is an object with a string id and type")
    if datetime.fromisoformat(event["created_at"]).tzinfo is None:
        raise ValueError("created_at has no time zone")
    if event["type"].startswith("charge."):
        charge = event["data"]["object"]
        if not isinstance(charge["id"], str) or not isinstance(charge["status"], str):
            raise TypeError("a charge event's object has a string id and status")
        if not isinstance(charge["amount_refunded"], int) or not isinstance(charge["refunded"], bool):
            raise TypeError("a charge event's object has amount_refunded and refunded")
