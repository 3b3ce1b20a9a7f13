"""Fixtures: the handler (webhook_handler.py) served by uvicorn on a free port of 127.0.0.1
(handler_server.py), registered as a webhook endpoint of the test's tenant.

The port is bound before the endpoint is registered, and the app is made with the secret the
registration returned: the handler is configured the way a deployed app would be, and it is
listening before the test makes its first charge. Each server is stopped, and its thread joined,
when the test ends.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from handler_server import HOST, WAIT, RunningHandler, serving
from webhook_handler import create_app

from sandbox.pytest_plugin import PaymentsSandbox


@pytest.fixture
def start_handler(payments_sandbox: PaymentsSandbox) -> Iterator[Callable[..., RunningHandler]]:
    """Start a handler (`create_app`'s keyword arguments, such as `fail_first=1`) registered for
    every event of the test's tenant; it stops when the test ends."""
    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> RunningHandler:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            url = f"http://{HOST}:{sock.getsockname()[1]}"
            hook = payments_sandbox.add_webhook(f"{url}/webhooks")
            stack.enter_context(serving(create_app(hook["secret"], **options), sock))
            client = stack.enter_context(httpx.Client(base_url=url, trust_env=False, timeout=WAIT))
            return RunningHandler(url, hook["id"], hook["secret"], client)

        yield start


@pytest.fixture
def handler(start_handler: Callable[..., RunningHandler]) -> RunningHandler:
    """A handler that answers every good delivery."""
    return start_handler()
