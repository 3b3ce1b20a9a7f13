"""A real `payments-sandbox serve` process for the suites that need one, started by `sandbox.launcher`.

`start_sandbox(log_dir, *args)` returns a healthy `SandboxProcess`: the launcher's `ServerProcess`
(base URL, log, memory from /proc, stop) plus an httpx client per tenant.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from sandbox.launcher import HOST, ServerProcess, free_port, run_cli

__all__ = ["API", "HOST", "SandboxProcess", "free_port", "run_cli", "start_sandbox"]

API = "/v1/payments"


class SandboxProcess(ServerProcess):
    def client(self, token: str | None = None, headers: dict[str, str] | None = None) -> httpx.Client:
        """A client of this server, as the tenant named by `token` when one is given."""
        merged = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
        return httpx.Client(base_url=self.base_url, headers=merged, trust_env=False, timeout=30.0)


def start_sandbox(log_dir: Path, *args: str, env: dict[str, str] | None = None) -> SandboxProcess:
    """`payments-sandbox serve --log-level warning ARGS...` (with `env` added to the environment), healthy."""
    return SandboxProcess.start(["--log-level", "warning", *args], env=env, log_dir=log_dir)
