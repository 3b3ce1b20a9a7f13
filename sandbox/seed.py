"""Realistic fake charges for a tenant, deterministic for a given seed.

The words come from the small lists below rather than from Faker: Faker takes ~0.25 s to import,
and, installed, it registers a pytest plugin with an autouse session fixture in every pytest run of
every project that installs us, which a dependency of a test tool must not do.
"""

from __future__ import annotations

import random

from sandbox.models import Charge, Refund, new_id

# Weighted towards the currencies most apps see, with a zero-decimal one (JPY) in the mix.
_CURRENCIES = ("USD",) * 6 + ("EUR",) * 3 + ("GBP",) * 2 + ("JPY", "CAD", "AUD", "CHF", "SEK")
_DECLINES = ("generic_decline", "insufficient_funds", "expired_card", "incorrect_cvc", "lost_card")
_REASONS = ("requested_by_customer", "duplicate", "fraudulent")
_SPAN = 30 * 24 * 3600.0  # seeded charges are spread over the tenant's last 30 days
# Product names as a shop's catalogue has them; 20 x 20 x 20 combinations.
_STYLES = (
    "Ergonomic", "Rustic", "Handmade", "Sleek", "Refurbished", "Organic", "Vintage", "Compact", "Deluxe", "Modern",
    "Classic", "Portable", "Wireless", "Recycled", "Premium", "Lightweight", "Heavy-duty", "Minimalist", "Smart",
    "Waterproof",
)  # fmt: skip
_MATERIALS = (
    "Cotton", "Steel", "Oak", "Ceramic", "Leather", "Bamboo", "Wool", "Glass", "Copper", "Linen", "Granite", "Walnut",
    "Silk", "Aluminium", "Cork", "Marble", "Denim", "Rubber", "Brass", "Concrete",
)  # fmt: skip
_PRODUCTS = (
    "Chair", "Lamp", "Backpack", "Mug", "Keyboard", "Jacket", "Teapot", "Blanket", "Watch", "Bottle", "Desk", "Scarf",
    "Speaker", "Notebook", "Pillow", "Wallet", "Kettle", "Bicycle Bell", "Plant Pot", "Headphones",
)  # fmt: skip
_FIRST_NAMES = (
    "ana", "ben", "chloe", "david", "emma", "farid", "grace", "hiro", "ines", "jonas", "kofi", "lena", "mateo",
    "nora", "oscar", "priya", "quentin", "rosa", "sven", "yuki",
)  # fmt: skip
_LAST_NAMES = (
    "garcia", "smith", "muller", "rossi", "tanaka", "okafor", "silva", "nowak", "dubois", "kim", "jensen", "haddad",
    "kowalski", "murphy", "novak", "patel", "schmidt", "costa", "berg", "ivanova",
)  # fmt: skip
_MAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.test", "shop.test")


def fake_charges(count: int, seed: int, now: float) -> list[tuple[Charge, Refund | None]]:
    """`count` charges (some failed, some pending, some refunded), each with its refund if any, dated
    over the 30 days before `now`. The same seed gives the same charges; their ids are new every
    time, so seeding twice never collides. A pure function, so that the control API can run it on a
    worker thread; `Payments.add_seeded` numbers and stores the result."""
    rng = random.Random(seed)
    times = sorted(now - rng.random() * _SPAN for _ in range(count))
    made: list[tuple[Charge, Refund | None]] = []
    for created in times:
        currency = rng.choice(_CURRENCIES)
        amount = rng.choice((rng.randint(100, 9_999), rng.randint(1_000, 99_999), rng.randint(10_000, 2_500_000)))
        if currency == "JPY":
            amount = max(amount // 100, 50)
        roll = rng.random()
        status = "failed" if roll < 0.12 else "pending" if roll < 0.17 else "succeeded"
        charge = Charge(
            id=new_id("ch_"),
            seq=0,
            amount=amount,
            currency=currency,
            description=f"Order #{rng.randint(1000, 99999)}: {_product(rng)}",
            metadata={"order_id": f"ORD-{rng.randint(10000, 99999)}", "customer_email": _email(rng)},
            status=status,
            created=created,
            failure_code=rng.choice(_DECLINES) if status == "failed" else None,
        )
        if status == "pending":
            charge.settle_at = now + rng.randint(30, 600)
            charge.settle_to = "succeeded" if rng.random() < 0.8 else "failed"
            charge.settle_code = "insufficient_funds" if charge.settle_to == "failed" else None
        refund = None
        if status == "succeeded" and rng.random() < 0.2:
            refunded = amount if rng.random() < 0.5 else rng.randint(1, amount)
            refund = Refund(
                new_id("rf_"), charge.id, refunded, rng.choice(_REASONS), {}, min(created + rng.randint(60, 86400), now)
            )
            charge.amount_refunded = refunded
        made.append((charge, refund))
    return made


def _product(rng: random.Random) -> str:
    return f"{rng.choice(_STYLES)} {rng.choice(_MATERIALS)} {rng.choice(_PRODUCTS)}"


def _email(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST_NAMES)}.{rng.choice(_LAST_NAMES)}{rng.randint(1, 99)}@{rng.choice(_MAIL_DOMAINS)}"
