"""Realistic fake charges for a tenant, made with Faker and deterministic for a given seed."""

from __future__ import annotations

import random

from faker import Faker

from sandbox.models import Charge, Refund, new_id

# Weighted towards the currencies most apps see, with a zero-decimal one (JPY) in the mix.
_CURRENCIES = ("USD",) * 6 + ("EUR",) * 3 + ("GBP",) * 2 + ("JPY", "CAD", "AUD", "CHF", "SEK")
_DECLINES = ("generic_decline", "insufficient_funds", "expired_card", "incorrect_cvc", "lost_card")
_REASONS = ("requested_by_customer", "duplicate", "fraudulent")
_SPAN = 30 * 24 * 3600.0  # seeded charges are spread over the tenant's last 30 days


def fake_charges(count: int, seed: int, now: float) -> list[tuple[Charge, Refund | None]]:
    """`count` charges (some failed, some pending, some refunded), each with its refund if any, dated
    over the 30 days before `now`. The same seed gives the same charges; their ids are new every
    time, so seeding twice never collides. A pure function, so that the control API can run it on a
    worker thread; `Payments.add_seeded` numbers and stores the result."""
    rng = random.Random(seed)
    fake = Faker()
    fake.seed_instance(seed)
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
            description=f"Order #{fake.random_int(1000, 99999)}: {fake.catch_phrase()}"[:1000],
            metadata={"order_id": f"ORD-{fake.random_int(10000, 99999)}", "customer_email": fake.email()},
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
