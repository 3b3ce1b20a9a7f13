"""An endpoint that answers a byte at a time is cut off after 10 s in all (not 10 s per read), its
attempt logged as a timeout, and the API answers as fast as ever meanwhile."""

from __future__ import annotations

import socket
import threading
import time

from helpers import attempts_logged, charge

from sandbox.pytest_plugin import PaymentsSandbox
from sandbox.webhooks import TIMEOUT


def trickle(server: socket.socket, stop: threading.Event) -> None:
    """Accept connections; to each, a head announcing 100 bytes, then a byte every 2 s."""
    server.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        threading.Thread(target=drip, args=(conn, stop), daemon=True).start()


def drip(conn: socket.socket, stop: threading.Event) -> None:
    with conn:
        conn.recv(65536)
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n")
            while not stop.wait(2):
                conn.sendall(b".")
        except OSError:
            return


def test_a_trickling_endpoint_is_cut_off_and_the_api_keeps_its_pace(payments_sandbox: PaymentsSandbox) -> None:
    stop = threading.Event()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        thread = threading.Thread(target=trickle, args=(server, stop), daemon=True)
        thread.start()
        try:
            hook = payments_sandbox.add_webhook(f"http://127.0.0.1:{server.getsockname()[1]}/slow")
            charge(payments_sandbox)
            started = time.monotonic()
            with payments_sandbox.client() as client:
                for n in range(20):  # while the delivery hangs
                    assert client.post("/charge", json={"amount": 100 + n, "currency": "USD"}).status_code == 200
            assert time.monotonic() - started < TIMEOUT / 2
            deadline = time.monotonic() + TIMEOUT + 10
            while not payments_sandbox.deliveries(hook["id"]):
                assert time.monotonic() < deadline, "no attempt was logged"
                time.sleep(0.2)
            first = attempts_logged(payments_sandbox, hook["id"], 1)[-1]
            assert first["status"] is None
            assert first["error"].startswith("timeout")
            # About TIMEOUT: an event loop's timer may fire a fraction of a millisecond early.
            assert (TIMEOUT - 0.5) * 1000 <= first["duration_ms"] < (TIMEOUT + 5) * 1000
        finally:
            stop.set()
            thread.join()
