"""Charge and Refund: the domain records, their ids, and their wire shape."""

from __future__ import annotations

import random
import string
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_ALPHABET = string.ascii_letters + string.digits
# Ids need to be unique, not secret: a seeded Mersenne Twister is several times faster than
# `secrets` and 62**24 values make a collision practically impossible.
_random = random.Random()


# Each random byte picks a letter by its value modulo 62: a slight lean towards the first 8 letters
# that costs nothing in uniqueness and makes an id one C call instead of 24 Python ones.
_BYTE_TO_LETTER = bytes(ord(_ALPHABET[i % len(_ALPHABET)]) for i in range(256))


def new_id(prefix: str, rng: random.Random | None = None) -> str:
    return prefix + (rng or _random).randbytes(24).translate(_BYTE_TO_LETTER).decode()


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
