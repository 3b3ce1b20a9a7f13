"""The control API (/__sandbox/*) of a running sandbox, called over HTTP: what every helper of
`Tenant` (remote.py) goes through.

Standard library only (http.client, json, imported when first called): the pytest plugin imports
this module in every pytest run of every project that installs us, and under pytester a
re-imported httpx no longer recognises its own exceptions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

__all__ = ["DEFAULT_API", "ControlClient", "ControlError"]

DEFAULT_API = "/v1/payments"  # until the health check says otherwise (a --spec of another server URL)


class ControlError(RuntimeError):
    """The control API answered with an error (`status`); the message carries its body, and
    `reason` the error envelope's message when there is one."""

    def __init__(self, message: str, status: int, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason or message


class ControlClient:
    """The control API of the sandbox whose root (scheme, host, port and any path a proxy adds) is
    `url`. One short connection per call: a test makes few of them, and a connection the server
    closed while a test slept can then never be reused by mistake."""

    def __init__(
        self, url: str, control_token: str | None = None, *, api_path: str = DEFAULT_API, timeout: float = 30.0
    ) -> None:
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        self.url = url.rstrip("/")
        self.control_token = control_token
        self.api_path = api_path
        self.timeout = timeout
        self._https, self._netloc, self._root_path = parts.scheme == "https", parts.netloc, parts.path

    @property
    def base_url(self) -> str:
        """Where the API is: the root plus the contract's path, `http://127.0.0.1:PORT/v1/payments`."""
        return self.url + self.api_path

    @classmethod
    def find(cls, url: str, control_token: str | None = None) -> ControlClient:
        """The sandbox at `url`, which may be its root or its API's base URL (`.../v1/payments`): the
        root is the longest leading part of `url` whose `/__sandbox/health` answers. Raises
        ControlError when none does, or when `url` is neither the root nor the API; OSError when
        nothing answers at all."""
        parts = urlsplit(url.rstrip("/"))
        origin = f"{parts.scheme}://{parts.netloc}"
        segments = [s for s in parts.path.split("/") if s]
        for keep in range(len(segments), -1, -1):
            root_path = "".join("/" + s for s in segments[:keep])
            control = cls(origin + root_path, control_token)
            try:
                control.health()
            except ControlError as exc:
                if exc.status == 404 and keep:
                    continue  # a path under the root (the API answers 404 for its own /__sandbox)
                raise
            rest = parts.path.rstrip("/")[len(root_path) :]
            if rest not in ("", control.api_path):
                raise ControlError(f"{url} is neither a sandbox's root nor its API ({control.base_url})", 404)
            return control
        raise AssertionError("unreachable: the root itself answers or raises")

    def health(self) -> dict[str, Any]:
        """GET /__sandbox/health (no control token needed); learns the API's path from it."""
        body: dict[str, Any] = self.call("GET", "/health")
        self.api_path = str(body.get("api", self.api_path)).rstrip("/")
        return body

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        *,
        query: Mapping[str, object] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """`METHOD /__sandbox{path}` for the tenant of `token` (every tenant when None, where the
        endpoint allows it); the parsed JSON answer, or ControlError."""
        import http.client

        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if self.control_token:
            headers["Sandbox-Control-Token"] = self.control_token
        if body is not None:
            headers["Content-Type"] = content_type
        target = f"{self._root_path}/__sandbox{path}" + (f"?{urlencode(query)}" if query else "")
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = kind(self._netloc, timeout=self.timeout)
        try:
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            status, raw = response.status, response.read()
        finally:
            conn.close()
        if status >= 300:
            text = raw.decode("utf-8", "replace")[:2000]
            raise ControlError(f"payments-sandbox {method} /__sandbox{path} -> {status}: {text}", status, _reason(raw))
        try:
            return json.loads(raw)
        except ValueError:
            raise ControlError(f"payments-sandbox {method} /__sandbox{path} -> {status}: not JSON", status) from None


def _reason(raw: bytes) -> str | None:
    """The message of an error envelope, if `raw` is one."""
    try:
        error = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        return None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else None
