"""Numbers written as text (query strings, form fields, flags): ASCII digits only, bounded length.

`str.isdigit()` and `int()` accept far more than a client means by a number: `"²".isdigit()` is
true yet `int("²")` fails, `int("٣")` is 3, `int("+5")` is 5, and a 5,000-digit string raises.
Every number that arrives as text goes through these two functions instead, so that anything but
plain digits is refused by the caller with a 400 (or a usage error), never a 500.
"""

from __future__ import annotations

import re

_WHOLE = re.compile(r"[0-9]{1,18}")
_DECIMAL = re.compile(r"[0-9]{1,18}(?:\.[0-9]{1,9})?")


def whole(text: str | None) -> int | None:
    """`text` as a non-negative whole number, or None when it is anything else."""
    return int(text) if text is not None and _WHOLE.fullmatch(text) else None


def decimal(text: str | None) -> float | None:
    """`text` as a non-negative number with an optional fraction (`60`, `0.5`), or None."""
    return float(text) if text is not None and _DECIMAL.fullmatch(text) else None
