"""The handler (webhook_handler.py) served by uvicorn on a thread of the test process, and
`RunningHandler`, what a test knows of one: its URL, its endpoint at the sandbox, and its table as
its read-only endpoints show it. conftest.py's fixtures start them."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

HOST = "127.0.0.1"
STARTUP = 10.0  # seconds uvicorn may take to start listening
WAIT = 5.0  # seconds a test waits for the handler to see what the sandbox sent


@dataclass
class RunningHandler:
    """A handler being served: its root URL, its endpoint's id and secret at the sandbox, and a
    client of its own read-only endpoints."""

    url: str
    hook_id: str
    secret: str
    client: httpx.Client

    def charge(self, charge_id: str) -> dict[str, Any] | None:
        """What the handler's table holds for the charge, or None if it has never heard of it."""
        response = self.client.get(f"/charges/{charge_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        record: dict[str, Any] = response.json()
        return record

    def outcomes(self) -> dict[str, int]:
        """How the handler answered the deliveries so far: applied, duplicate, stale, rejected, ..."""
        outcomes: dict[str, int] = self.client.get("/stats").json()["outcomes"]
        return outcomes

    def wait_for_status(self, charge_id: str, status: str, timeout: float = WAIT) -> dict[str, Any]:
        """The charge's record once the handler holds it with `status`; fails after `timeout` s."""
        deadline = time.monotonic() + timeout
        while (record := self.charge(charge_id)) is None or record["status"] != status:
            assert time.monotonic() < deadline, f"the handler holds {record} for {charge_id}, not {status!r}"
            time.sleep(0.05)
        return record


@contextlib.contextmanager
def serving(app: Starlette, sock: socket.socket) -> Iterator[None]:
    """Serve `app` on the bound socket `sock` with uvicorn, on a thread, until the block ends."""
    config = uvicorn.Config(app, lifespan="off", ws="none", log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="webhook-handler", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped before it started serving"
            assert time.monotonic() < deadline, f"uvicorn did not start within {STARTUP:g} s"
            time.sleep(0.01)
        yield
    finally:
        server.should_exit = True  # uvicorn's own graceful shutdown: stop listening, finish, close
        thread.join(timeout=STARTUP)
        assert not thread.is_alive(), "uvicorn did not shut down"
