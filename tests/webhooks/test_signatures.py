"""`Sandbox-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`, checked as the README shows."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from sandbox.receiver import verify
from sandbox.webhooks import sign

SECRET = "whsec_test"
BODY = b'{"id": "evt_1", "type": "charge.succeeded"}'


def test_a_signature_is_the_hmac_of_the_timestamp_and_the_body() -> None:
    header = sign(SECRET, 1_700_000_000, BODY)
    digest = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={digest}"


def test_the_right_secret_and_a_recent_time_verify() -> None:
    now = int(time.time())
    assert verify(SECRET, sign(SECRET, now, BODY), BODY)


@pytest.mark.parametrize(
    ("header", "body"),
    [
        (sign("whsec_other", int(time.time()), BODY), BODY),  # another secret
        (sign(SECRET, int(time.time()), BODY), BODY + b" "),  # another body
        (sign(SECRET, int(time.time()) - 3600, BODY), BODY),  # an old delivery replayed
        ("", BODY),
        ("t=abc,v1=00", BODY),
        ("v1=" + "0" * 64, BODY),
        (None, BODY),
    ],
)
def test_anything_else_does_not(header: str | None, body: bytes) -> None:
    assert not verify(SECRET, header, body)
