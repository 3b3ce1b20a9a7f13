"""The domain's records and values: charges, refunds, replies, saved idempotency results, journal
entries and tenant summaries, their ids, their typed values and their wire shapes. Every store engine
keeps these and nothing else."""

from __future__ import annotations

import json
import random
import string
import time
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any

import orjson


class Status(StrEnum):
    """A charge's status."""

    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"


STATUSES = tuple(Status)


class Kind(StrEnum):
    """What a write request makes, and what a scenario rule applies to."""

    CHARGE = "charge"
    REFUND = "refund"


class Outcome(StrEnum):
    """What a scenario rule stores: a charge as succeeded, pending or failed, a refund, or nothing."""

    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"
    NONE = "none"


_ALPHABET = string.ascii_letters + string.digits
# Ids need to be unique, not secret: a seeded Mersenne Twister is several times faster than
# `secrets` and 62**16 values a millisecond make a collision practically impossible.
_random = random.Random()
_bits = _random.getrandbits  # randbytes(16) is this and a Python call around it


# Each random byte picks a letter by its value modulo 62: a slight lean towards the first 8 letters
# that costs nothing in uniqueness and makes an id one C call instead of 16 Python ones.
_BYTE_TO_LETTER = bytes(ord(_ALPHABET[i % len(_ALPHABET)]) for i in range(256))
_DIGITS = string.digits + string.ascii_uppercase + string.ascii_lowercase  # in byte order
_stamp = (0, "")  # the last millisecond an id was made in, and its 8 letters


def new_id(prefix: str) -> str:
    """`prefix`, 8 letters or digits counting the milliseconds since 1970, and 16 random ones, never
    from a seeded generator (seeding a tenant twice with one seed must not repeat its ids, see
    seed.py). Why time first: ids made close together sort together, so a store's index on them
    (SQLite's, with a B-tree) takes each new id on the page it took the last one on; 24 random
    letters put every insert on a page of its own, and a group commit wrote them all."""
    global _stamp
    now = int(time.time() * 1000)
    if now != _stamp[0]:
        digits, value = [], now
        for _ in range(8):
            value, digit = divmod(value, 62)
            digits.append(_DIGITS[digit])
        _stamp = (now, "".join(reversed(digits)))
    return prefix + _stamp[1] + _bits(128).to_bytes(16, "little").translate(_BYTE_TO_LETTER).decode()


def json_bytes(value: Any) -> bytes:
    """JSON as the SQLite and Redis stores keep it: orjson, or the standard library for what orjson
    refuses (a lone surrogate, an integer over 64 bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()


LAST_INSTANT = 253402300799  # 9999-12-31T23:59:59Z: a sandbox clock never passes it


def rfc3339(ts: float) -> str:
    return _rfc3339(int(ts))


@lru_cache(maxsize=4096)  # strftime is a tenth of the cost of reading a charge
def _rfc3339(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass(slots=True)
class Charge:
    id: str
    seq: int
    amount: int
    currency: str
    description: str | None
    metadata: dict[str, str]
    status: str
    created: float
    amount_refunded: int = 0
    failure_code: str | None = None
    scenario: str | None = None
    settle_at: float | None = None  # when a pending charge settles
    settled_at: float | None = None  # when it did
    settle_to: str | None = None
    settle_code: str | None = None

    @property
    def remaining(self) -> int:
        return self.amount - self.amount_refunded

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "amount": self.amount,
            "currency": self.currency,
            "description": self.description,
            "metadata": self.metadata,
            "status": self.status,
            "amount_refunded": self.amount_refunded,
            "refunded": self.amount_refunded == self.amount,
            "failure_code": self.failure_code,
            "created_at": rfc3339(self.created),
        }


@dataclass(slots=True)
class Refund:
    id: str
    charge_id: str
    amount: int
    reason: str | None
    metadata: dict[str, str]
    created: float
    status: str = "succeeded"
    scenario: str | None = None

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "charge_id": self.charge_id,
            "amount": self.amount,
            "status": self.status,
            "reason": self.reason,
            "metadata": self.metadata,
            "created_at": rfc3339(self.created),
        }


@dataclass
class Reply:
    """An answer of the API: status, JSON body, extra headers, the scenario rule behind it, and the
    network fault it is sent with (never saved under an idempotency key: a replay is sent whole)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    scenario: str | None = None
    fault: Fault | None = None
    raw: bytes | None = None  # `body` as JSON when it was already made (a new charge's, by its event)

    def dumps(self) -> str:
        return json.dumps([self.status, self.body, self.headers, self.scenario], separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> Reply:
        status, body, headers, scenario = json.loads(text)
        return cls(status, body, headers, scenario)


class FaultKind(StrEnum):
    """A network fault a scenario rule can send instead of a whole answer (faults.py sends them)."""

    CONNECTION_RESET = "connection_reset"  # an RST: not a byte of the answer
    EMPTY_RESPONSE = "empty_response"  # the connection closed without a byte
    TRUNCATED_BODY = "truncated_body"  # the head and half the body, then the connection closed
    MALFORMED_JSON = "malformed_json"  # a whole answer whose body is not JSON
    SLOW_BODY = "slow_body"  # the body at `bytes_per_second`


@dataclass(frozen=True)
class Fault:
    """A rule's `then.fault`: which fault, and whether the charge or refund is stored before it."""

    kind: FaultKind
    commit: bool
    bytes_per_second: int = 100


@dataclass(frozen=True)
class Misdelivery:
    """A rule's `then.webhooks`: what goes wrong with the webhook deliveries of its events."""

    duplicate: int = 1  # each event is delivered this many times
    delay_seconds: float = 0.0  # the first delivery waits this long on the tenant's clock
    out_of_order: bool = False  # newest first (a pending charge's charge.pending after its settlement)
    bad_signature: bool = False  # signed with a secret that is not the endpoint's


@dataclass
class Saved:
    """An idempotency key's result; `reply` is None while the first request is still in flight."""

    fingerprint: str
    created: float
    reply: Reply | None = None


@dataclass(slots=True)
class Entry:
    """One API call in the request journal. Bodies are kept as the bytes that crossed the wire (at
    most 8 KiB each) and the texts cut to 255 characters, so an entry is bounded in size."""

    id: str
    tenant: str | None
    method: str
    path: str
    query: str
    status: int
    started: float
    duration: float
    idempotency_key: str | None
    scenario: str | None
    request_body: bytes | None
    response_body: bytes
    fault: str | None = None  # the network fault the client got instead of a whole answer (faults.py)
    findings: tuple[Finding, ...] = ()  # what this call showed the client doing wrong (findings.py)

    def view(self) -> dict[str, Any]:
        """What the control API and the dashboard show: bodies parsed (or as text when cut short or
        not JSON), times formatted."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "idempotency_key": self.idempotency_key,
            "scenario": self.scenario,
            "request_body": _decoded(self.request_body),
            "response_body": _decoded(self.response_body),
            "started_at": rfc3339(self.started),
            "duration_ms": round(self.duration * 1000, 3),
            "fault": self.fault,
            "findings": [finding.view() for finding in self.findings],
        }

    def notes(self) -> str | None:
        """The fault and findings as one JSON text (how the SQLite and Redis stores keep them)."""
        if self.fault is None and not self.findings:
            return None
        return json.dumps([self.fault, [[f.code, list(f.requests)] for f in self.findings]], separators=(",", ":"))

    @staticmethod
    def noted(text: str | None) -> tuple[str | None, tuple[Finding, ...]]:
        """`notes()` back: the fault and the findings."""
        if not text:
            return None, ()
        fault, findings = json.loads(text)
        return fault, tuple(Finding(code, tuple(requests)) for code, requests in findings)


EVENT_TYPES = (
    "charge.succeeded", "charge.failed", "charge.pending", "charge.refunded", "refund.succeeded", "refund.failed",
)  # fmt: skip
EVENT_KINDS = tuple(dict.fromkeys(t.split(".")[0] + ".*" for t in EVENT_TYPES))  # charge.*, refund.*


def event_matches(pattern: str, kind: str) -> bool:
    """Whether an event type is the one `pattern` names, or of the object `charge.*`/`refund.*` names
    (`*`: every type)."""
    return pattern == kind or pattern == "*" or (pattern.endswith(".*") and kind.startswith(pattern[:-1]))


@dataclass(slots=True)  # not frozen: a frozen dataclass costs twice as much to make, on every charge
class Event:
    """A state change of a charge or refund, as a client polling GET /__sandbox/events (or, later, a
    webhook endpoint) sees it: `data` is the object's JSON as the API showed it at that moment.
    Never changed once made."""

    id: str
    type: str  # charge.succeeded | charge.failed | charge.pending | charge.refunded | refund.succeeded | refund.failed
    created: float  # the tenant's sandbox time
    data: bytes

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "created_at": rfc3339(self.created),
            "data": {"object": json.loads(self.data)},
            "livemode": False,
        }

    def dumps(self) -> bytes:
        """One line: how the SQLite and Redis stores keep an event."""
        return orjson.dumps([self.id, self.type, self.created]) + b"\n" + self.data

    @classmethod
    def loads(cls, raw: bytes) -> Event:
        head, _, data = raw.partition(b"\n")
        id_, type_, created = json.loads(head)
        return cls(id_, type_, created, data)


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a call showed the client doing wrong: a code (findings.py names them all) and the
    journal ids of the calls involved, earliest first; the last is the call that showed it."""

    code: str
    requests: tuple[str, ...]

    def view(self) -> dict[str, Any]:
        return {"code": self.code, "requests": list(self.requests)}


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


@dataclass
class Summary:
    """A tenant as lists show it: counted, never walked."""

    key: str
    charges: int
    counts: dict[str, int]
    refunds: int
    clock_offset: float
    has_rules: bool
    next_settle: float | None = None

    def now(self) -> float:
        return time.time() + self.clock_offset
