"""A real sandbox process and a raw HTTP/1.1 client, for the robustness tests.

`SandboxProcess` runs `python -m sandbox serve` on a free port of 127.0.0.1 and reads its memory
from /proc. `exchange` sends bytes exactly as given (httpx refuses to send most of the hostile
corpus: lying Content-Length, broken chunking, invalid UTF-8 in the path...) and reads one
response, or notes that the server closed the connection without one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

HOST = "127.0.0.1"
T = TypeVar("T")
API = "/v1/payments"
HEALTH = "/__sandbox/health"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class SandboxProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    returncode: int | None = field(default=None)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def memory_kb(self, field_name: str = "VmRSS") -> int:
        """A memory figure of the server process from /proc (VmRSS now, VmHWM the peak), in kB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field_name} in /proc/{self.pid}/status")

    def client(self, token: str | None = None, headers: dict[str, str] | None = None) -> httpx.Client:
        """A client of this server, as the tenant named by `token` when one is given."""
        merged = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
        return httpx.Client(base_url=self.base_url, headers=merged, trust_env=False, timeout=30.0)

    def healthy(self) -> bool:
        try:
            return httpx.get(self.base_url + HEALTH, trust_env=False, timeout=10.0).status_code == 200
        except httpx.TransportError:
            return False

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for a process that was already told to stop; its exit code."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
            raise AssertionError(f"the sandbox did not exit within {timeout} s:\n{self.log()}") from None
        return self.returncode

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig` (once), wait for the exit, and return the exit code."""
        if self.returncode is not None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit()


def start_sandbox(log_dir: Path, *args: str) -> SandboxProcess:
    """Start `python -m sandbox serve --port P ARGS...` and wait until its health check answers."""
    port = free_port()
    log_path = log_dir / f"sandbox-{port}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "serve", "--port", str(port), "--log-level", "warning", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = SandboxProcess(proc, port, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the sandbox exited with {proc.returncode} before it was ready:\n{server.log()}")
        if server.healthy():
            return server
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    raise AssertionError(f"the sandbox did not answer {HEALTH} within {START_TIMEOUT} s:\n{server.log()}")


def run_async(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`asyncio.run(scenario())` on a thread of its own.

    A fresh thread has no event loop, whatever the test session left running on the main one
    (Playwright's sync API keeps one there for the whole session, and asyncio.run refuses to
    start beside it).
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(scenario())).result()


# -- raw HTTP -------------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def build_request(
    method: bytes,
    target: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    *,
    content_length: bool = True,
) -> bytes:
    """Request bytes with `Host` and `Connection: close`; Content-Length from `body` unless told not."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: " + HOST.encode(), b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if content_length:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(*parts: bytes) -> bytes:
    """`parts` in chunked transfer coding, with the terminating chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def _parse(data: bytes) -> RawResponse | None:
    """The response in `data` once it is complete, else None."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = data[end + 4 :]
    length = headers.get("content-length")
    if length is None or len(body) < int(length):
        return None
    return RawResponse(status, headers, body[: int(length)])


def exchange(port: int, payload: bytes, *, timeout: float = 20.0) -> RawResponse | None:
    """Send `payload` on a new connection and read one response; None if the server closed first.

    The payload is written from a second thread while this one reads, so a server that answers
    before reading everything (413 on a declared length) is heard before it resets the connection.
    """
    sock = socket.create_connection((HOST, port), timeout=timeout)

    def send() -> None:
        # The server may answer and close before taking everything: the answer is what counts.
        with contextlib.suppress(OSError):
            sock.sendall(payload)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    data = b""
    try:
        while (response := _parse(data)) is None:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        response = _parse(data)
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes a sender blocked on a full buffer
        sock.close()
        sender.join(timeout)
    return response if response is not None else _parse(data)
