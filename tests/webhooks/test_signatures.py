"""`Sandbox-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`, checked as the README shows."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

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


def now_signed(secret: str = SECRET, age: int = 0, body: bytes = BODY) -> str:
    return sign(secret, int(time.time()) - age, body)


@pytest.mark.parametrize(
    ("header", "body"),
    [
        pytest.param(lambda: now_signed("whsec_other"), BODY, id="another secret"),
        pytest.param(now_signed, BODY + b" ", id="another body"),
        pytest.param(lambda: now_signed(age=3600), BODY, id="an old delivery replayed"),
        pytest.param(lambda: "", BODY, id="empty"),
        pytest.param(lambda: "t=abc,v1=00", BODY, id="not a time"),
        pytest.param(lambda: "v1=" + "0" * 64, BODY, id="no time"),
        pytest.param(lambda: None, BODY, id="no header"),
    ],
)
def test_anything_else_does_not(header: Callable[[], str | None], body: bytes) -> None:
    assert not verify(SECRET, header(), body)
