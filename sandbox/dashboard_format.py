"""How the dashboard writes values for people: amounts in their currency, times in UTC, JSON indented,
and the steps of a charge's timeline. Pure functions, used as Jinja filters and by the page views.
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

# ISO 4217 minor units of the currencies that do not have 2: amounts are in minor units.
_EXPONENT = {c: 0 for c in ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX")}
_EXPONENT |= {c: 0 for c in ("UYI", "VND", "VUV", "XAF", "XOF", "XPF")}
_EXPONENT |= {c: 3 for c in ("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND")}
_SYMBOL = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "KRW": "₩", "INR": "₹", "CAD": "CA$", "AUD": "A$"}


class Event(NamedTuple):
    """One step of a charge's timeline; `at` is None when the sandbox did not record the time."""

    at: float | None
    what: str
    status: str | None = None
    future: bool = False


def money(amount: int, currency: str) -> str:
    """Minor units as a person reads them: 123456 USD -> $1,234.56 USD; 5000 JPY -> ¥5,000 JPY."""
    exponent = _EXPONENT.get(currency, 2)
    whole, minor = divmod(amount, 10**exponent)
    return f"{_SYMBOL.get(currency, '')}{whole:,}{f'.{minor:0{exponent}d}' if exponent else ''} {currency}"


def utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def pretty(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
