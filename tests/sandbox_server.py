"""A real `payments-sandbox serve` process on a free port of 127.0.0.1, for the tests that need one.

`start_sandbox(log_dir, *args)` starts `python -m sandbox serve --port P ARGS...` and returns once
its health check answers; the `SandboxProcess` it returns knows the base URL, the log, the
process's memory (from /proc) and how to stop it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HOST = "127.0.0.1"
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


def start_sandbox(log_dir: Path, *args: str, env: dict[str, str] | None = None) -> SandboxProcess:
    """Start `python -m sandbox serve --port P ARGS...` (with `env` added to the environment) and
    wait until its health check answers."""
    port = free_port()
    log_path = log_dir / f"sandbox-{port}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "serve", "--port", str(port), "--log-level", "warning", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
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


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run `python -m sandbox ARGS...` to completion (e.g. a `serve` that must refuse to start)."""
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
