"""`Sandbox`: a real `payments-sandbox serve` process of this machine for tests that do not use the
pytest fixture (unittest, a script, another runner), with the fixture's helpers.

    with Sandbox(scenarios=["house.yaml"]) as sandbox:
        app = MyApp(base_url=sandbox.base_url, token=sandbox.token)
        ...
        sandbox.assert_called("POST", "/charge", count=1)

It is a `Tenant` (remote.py) of the server it starts, so the helpers are the fixture's own code, and
`tenant(token)` views any other tenant. The process is started through launcher.py (free port,
health check, log file) and stopped by `stop()`, by leaving the `with` block (an exception too), at
interpreter exit (atexit), and by Linux when this process dies by a signal (`die_with_parent`).

Why secrets go through the environment: a `--jwt-secret` on the command line is visible to every
user of the machine in `ps`. Why `PAYMENTS_SANDBOX_*` variables of this process are not passed on:
what the constructor is told is what the server runs with, whatever the shell exported.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Self

from sandbox.control_client import ControlClient
from sandbox.launcher import START_TIMEOUT, ServerProcess
from sandbox.remote import Tenant

__all__ = ["Sandbox"]

DEFAULT_TENANT = "sandbox"


class Sandbox(Tenant):
    """A sandbox server of its own, started by the constructor and healthy once it returns.

    `port=0` picks a free port. `scenarios` are files or folders loaded for every tenant, ahead of
    the built-in pack (`default_scenarios=False` drops it); `chaos` names a built-in chaos profile
    for every tenant and `chaos_seed` seeds every tenant's draws. `jwt_secret` makes the server accept
    only JWTs signed with it (HS256); `token` (default: `"sandbox"`, or a JWT whose `sub` is
    `sandbox` when `jwt_secret` is set) names the tenant the helpers act on. `store` and
    `control_token` are the server's flags of those names; `args` adds any other `serve` flag and
    `env` any environment variable. The server's log is `log_path` (in `log_dir`, default the temp
    folder).
    """

    def __init__(
        self,
        *,
        port: int = 0,
        scenarios: Iterable[str | Path] = (),
        jwt_secret: str | None = None,
        token: str | None = None,
        store: str | None = None,
        control_token: str | None = None,
        default_scenarios: bool = True,
        chaos: str | None = None,
        chaos_seed: int | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        log_level: str = "warning",
        log_dir: Path | None = None,
        timeout: float = START_TIMEOUT,
    ) -> None:
        flags = ["--log-level", log_level]
        for path in scenarios:
            flags += ["--scenarios", str(path)]
        if not default_scenarios:
            flags.append("--no-default-scenarios")
        if store:
            flags += ["--store", store]
        if chaos:
            flags += ["--chaos", chaos]
        if chaos_seed is not None:
            flags += ["--chaos-seed", str(chaos_seed)]
        if port:
            flags += ["--port", str(port)]
        secrets = {"PAYMENTS_SANDBOX_JWT_SECRET": jwt_secret, "PAYMENTS_SANDBOX_CONTROL_TOKEN": control_token}
        variables = {**(env or {}), **{k: v for k, v in secrets.items() if v is not None}}
        self.process = ServerProcess.start(
            [*flags, *args],
            port=port or None,
            env=variables,
            inherit_settings=False,
            log_dir=log_dir,
            timeout=timeout,
            die_with_parent=True,
        )
        atexit.register(self.stop)
        self._tenants: list[Tenant] = []
        control = ControlClient(self.process.base_url, control_token)
        try:
            control.health()  # the API's path, from the contract the server loaded
        except BaseException:
            self.stop()
            raise
        super().__init__(control, token or _default_token(jwt_secret))

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def log(self) -> str:
        """The server's output so far (warnings and errors at the default `log_level`)."""
        return self.process.log()

    def running(self) -> bool:
        return self.process.proc.poll() is None

    def tenant(self, token: str) -> Tenant:
        """The same helpers for the tenant of `token` (say the JWT your app sends); its clients are
        closed by `stop()` too."""
        view = Tenant(self.control, token)
        self._tenants.append(view)
        return view

    def stop(self) -> int:
        """Close the clients handed out, then stop the server (SIGTERM; SIGKILL if it has not exited
        20 s later); its exit code, 0 for a clean stop. Calling it again changes nothing."""
        atexit.unregister(self.stop)
        try:
            if hasattr(self, "control"):  # the constructor may have failed before Tenant was set up
                for view in (self, *self._tenants):
                    view.close()
        finally:
            code = self.process.stop()
        return code

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _default_token(jwt_secret: str | None) -> str:
    """`DEFAULT_TENANT`, or with a secret an HS256 JWT whose `sub` is it: what the server then
    requires. Made here with the standard library (no expiry, so it never goes stale in a long run)."""
    if jwt_secret is None:
        return DEFAULT_TENANT

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = part(json.dumps({"sub": DEFAULT_TENANT}).encode())
    key = jwt_secret.encode("utf-8", "surrogateescape")  # the bytes the server's environment holds
    signature = hmac.new(key, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{part(signature)}"
