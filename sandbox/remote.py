"""A running sandbox seen from a test: `Tenant` is one tenant's view of it with the helpers a test
needs, on top of the control API (control_client.py); `JournalEntry` is one recorded API call.

Both ways of getting a sandbox build on `Tenant`, so the helpers exist once: the pytest fixture's
`PaymentsSandbox` (a tenant per test on the session's server) and `Sandbox` (a server of its own,
local.py). Importing this module costs next to nothing, which matters as the plugin imports it in
every pytest run of every project that installs us: httpx is imported only when a test asks for a
client.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import quote

from sandbox.control_client import ControlClient

if TYPE_CHECKING:
    import ssl

    import httpx

    from sandbox.receiver import Receiver

__all__ = ["Coverage", "Finding", "JournalEntry", "Met", "Tenant", "describe", "describe_finding"]


class JournalEntry(TypedDict):
    """One API call of a tenant, as `GET /__sandbox/requests` lists it (oldest first in `requests()`).

    A dict, so `entry["status"]` reads it; typed, so a checker knows each key."""

    id: str
    tenant: str
    method: str
    path: str  # the full path, /v1/payments/charge
    query: str
    status: int
    idempotency_key: str | None
    scenario: str | None  # the rule that decided the answer, if any
    request_body: Any
    response_body: Any
    started_at: str
    duration_ms: float


class Finding(TypedDict):
    """Something the client got wrong, as `GET /__sandbox/findings` lists it (oldest first).

    `requests` are journal ids, earliest first: the last is the call that showed it."""

    code: str  # retry_without_idempotency_key, idempotency_key_reused, retry_after_ignored, ...
    tenant: str
    at: str  # RFC 3339 time of the call that showed it
    requests: list[str]
    advice: str  # one line


class Met(TypedDict):
    """What a client met of one kind of thing, and what it never did; both sorted."""

    met: list[str]
    missing: list[str]


class Coverage(TypedDict):
    """What a client has met, as `GET /__sandbox/coverage` gives it."""

    scenarios: Met  # rule names
    error_codes: Met
    faults: Met


class Tenant:
    """One tenant of a running sandbox: point the code under test at `base_url` with `headers` (or
    `token`); inspect and steer the tenant with the methods below. Nothing here touches any other
    tenant. `close()` closes the clients it handed out."""

    def __init__(self, control: ControlClient, token: str) -> None:
        self.control = control
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}
        self._clients: list[httpx.Client] = []
        self._async_clients: list[httpx.AsyncClient] = []

    @property
    def url(self) -> str:
        """The sandbox's root, `http://127.0.0.1:PORT` (the dashboard is at `url + "/__sandbox/"`)."""
        return self.control.url

    @property
    def base_url(self) -> str:
        """The API's base URL, `http://127.0.0.1:PORT/v1/payments`: what the app under test is given."""
        return self.control.base_url

    # -- clients --------------------------------------------------------------------------
    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client pointed at this tenant's API (`base_url`, `headers`; `headers=` adds to
        them), closed by `close()` if the test has not closed it. Cheap over plain http: see
        `_verify`."""
        import httpx

        client = httpx.Client(**self._client_options(kwargs))
        # Forget the ones closed already, so that a long-lived Sandbox does not collect them.
        self._clients = [*(c for c in self._clients if not c.is_closed), client]
        return client

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """`client()` for async code. It keeps no connection between requests unless `limits=` says
        so: `close()` runs after the test's event loop has ended, and a kept connection belongs to
        that loop (close such a client in the test, `async with`)."""
        import httpx

        kwargs.setdefault("limits", httpx.Limits(max_keepalive_connections=0))
        client = httpx.AsyncClient(**self._client_options(kwargs))
        self._async_clients = [*(c for c in self._async_clients if not c.is_closed), client]
        return client

    def _client_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        headers = {**self.headers, **dict(kwargs.pop("headers", None) or {})}
        return {"base_url": self.base_url, "headers": headers, "verify": _verify(self.base_url), **kwargs}

    def close(self) -> None:
        """Close every client `client()` and `async_client()` handed out that is still open."""
        clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        async_clients, self._async_clients = self._async_clients, []
        failures = [failure for c in async_clients if (failure := _close_outside_a_loop(c)) is not None]
        if failures:
            import warnings

            warnings.warn(
                f"payments-sandbox: could not close an async_client() after its test ({failures[0]!r}); "
                "close it in the test (async with ...)",
                ResourceWarning,
                stacklevel=2,
            )

    # -- the journal ----------------------------------------------------------------------
    def requests(
        self, method: str | None = None, path: str | None = None, status: int | None = None
    ) -> list[JournalEntry]:
        """This tenant's API calls, oldest first; filter by method, path or status. `path` may be
        relative to `base_url` (`/charge`), a full path (`/v1/payments/charge`) or a URL."""
        query = {"method": method, "path": self._api_path(path) if path else None, "status": status}
        wanted = {k: v for k, v in query.items() if v is not None}
        entries: list[JournalEntry] = self.control.call("GET", "/requests", self.token, query=wanted)["requests"]
        return entries

    def assert_called(
        self, method: str, path: str, *, count: int | None = None, status: int | None = None
    ) -> list[JournalEntry]:
        """Assert that the API got `METHOD path` (answered with `status`, when given) `count` times,
        or at least once when `count` is None; returns the matching calls. Fails with every call of
        this tenant listed, the matching ones marked, so the difference is plain to see."""
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        method, full = method.upper(), self._api_path(path)
        calls = self.requests()
        hits = [e for e in calls if e["method"] == method and e["path"] == full and status in (None, e["status"])]
        if len(hits) == count or (count is None and hits):
            return hits
        wanted = f"{method} {full}" + (f" -> {status}" if status is not None else "")
        expected = "at least once" if count is None else _times(count)
        ids = {e["id"] for e in hits}
        listed = "\n".join(f"{'>' if e['id'] in ids else ' '} {describe(e)}" for e in calls) or "  (no calls at all)"
        raise AssertionError(
            f"expected {wanted} {expected}, it was called {_times(len(hits))}.\n"
            f"This tenant's API calls, oldest first ('>' marks a match):\n{listed}"
        )

    def _api_path(self, path: str) -> str:
        """The journal's path for `path`: a URL loses its root, a path outside the API is taken as
        relative to `base_url`."""
        if path.startswith(self.url + "/"):
            path = path[len(self.url) :]
        api = self.control.api_path
        if api and (path == api or path.startswith(api + "/")):
            return path
        return api + "/" + path.lstrip("/")

    # -- what the client did wrong, and what it met ---------------------------------------
    def findings(self, code: str | None = None) -> list[Finding]:
        """What this tenant's client got wrong so far (of one `code`, when given), oldest first."""
        query = {"code": code} if code is not None else None
        found: list[Finding] = self.control.call("GET", "/findings", self.token, query=query)["findings"]
        return found

    def coverage(self) -> Coverage:
        """The scenario rules, error codes and network faults this tenant's client met, and those it
        never did."""
        covered: Coverage = self.control.call("GET", "/coverage", self.token)
        return covered

    def assert_no_findings(self) -> None:
        """Fail, one line per finding (code, advice, the requests involved), if the client got
        anything wrong."""
        __tracebackhide__ = True
        found = self.findings()
        if found:
            lines = "\n".join(describe_finding(f) for f in found)
            raise AssertionError(f"the sandbox found what the client got wrong:\n{lines}")

    # -- state ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget this tenant's charges, refunds, idempotency keys, journal, clock and scenarios."""
        self.control.call("POST", "/reset", self.token)

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move this tenant's clock: pending charges settle, idempotency keys expire. Returns
        `{"now": RFC 3339 time, "offset_seconds": total}`."""
        body = _json({"seconds": seconds})
        moved: dict[str, Any] = self.control.call("POST", "/clock/advance", self.token, body=body)
        return moved

    def seed(self, count: int = 20, seed: int = 0) -> list[str]:
        """Create `count` realistic fake charges (the same ones for the same seed); their ids."""
        made = self.control.call("POST", "/seed", self.token, body=_json({"count": count, "seed": seed}))
        ids: list[str] = made["ids"]
        return ids

    def load_chaos(self, profile: str) -> list[dict[str, Any]]:
        """Load a built-in chaos profile (`flaky-network`, `bad-day`) for this tenant only, after every
        other rule (magic amounts keep their meaning), until it is reset; the profile's rules."""
        answer = self.control.call("POST", "/chaos", self.token, body=_json({"profile": profile}))
        rules: list[dict[str, Any]] = answer["rules"]
        return rules

    def load_scenarios(self, source: str | Path) -> list[dict[str, Any]]:
        """Add scenario rules for this tenant only: a `Path` is a file or a folder of *.yaml files, a
        `str` is YAML (or JSON) text.

        The type decides, not the text: a one-line str naming a file is refused (TypeError) rather
        than guessed at, since sent as YAML it would fail as an unclear scenario error.
        """
        if isinstance(source, Path):
            if source.is_dir():
                return [rule for file in sorted(source.glob("*.y*ml")) for rule in self.load_scenarios(file)]
            text = source.read_bytes()
        elif "\n" not in source and _names_a_file(source):
            raise TypeError(f"load_scenarios() takes YAML text as a str; to load the file pass Path({source!r})")
        else:
            text = source.encode()
        # JSON is YAML too; the control API refuses a body without its type (see guard.py).
        answer = self.control.call("POST", "/scenarios", self.token, body=text, content_type="application/yaml")
        rules: list[dict[str, Any]] = answer["rules"]
        return rules

    # -- events and webhooks ----------------------------------------------------------------
    def events(self, type: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """This tenant's events, oldest first (the first `limit`), of a type or `kind.*` if given."""
        query: dict[str, object] = {"limit": limit, **({"type": type} if type else {})}
        events: list[dict[str, Any]] = self.control.call("GET", "/events", self.token, query=query)["data"]
        return events

    def add_webhook(self, url: str, events: list[str] | None = None) -> dict[str, Any]:
        """Register an endpoint for this tenant's events (all of them, or these types and `kind.*`
        patterns); `{"id", "url", "events", "secret", ...}`: the secret signs every delivery."""
        body = _json({"url": url, **({"events": events} if events is not None else {})})
        hook: dict[str, Any] = self.control.call("POST", "/webhooks", self.token, body=body)
        return hook

    def webhooks(self) -> list[dict[str, Any]]:
        """The endpoints this tenant's events go to (--webhook-url's first)."""
        hooks: list[dict[str, Any]] = self.control.call("GET", "/webhooks", self.token)["data"]
        return hooks

    def delete_webhook(self, webhook_id: str) -> None:
        self.control.call("DELETE", f"/webhooks/{quote(webhook_id, safe='')}", self.token)

    def deliveries(self, webhook_id: str) -> list[dict[str, Any]]:
        """Every attempt to deliver to the endpoint, newest first: status, error, duration, answer."""
        path = f"/webhooks/{quote(webhook_id, safe='')}/deliveries"
        attempts: list[dict[str, Any]] = self.control.call("GET", path, self.token)["data"]
        return attempts

    def redeliver(self, event_id: str, webhook_id: str | None = None) -> list[str]:
        """Send an event again now (to one endpoint, or every one that wants it); the delivery ids."""
        body = _json({"webhook": webhook_id} if webhook_id else {})
        path = f"/events/{quote(event_id, safe='')}/redeliver"
        ids: list[str] = self.control.call("POST", path, self.token, body=body)["deliveries"]
        return ids

    def webhook_receiver(self, events: list[str] | None = None) -> Receiver:
        """A receiver (receiver.py) on 127.0.0.1, registered for this tenant's events, checking their
        signatures with the endpoint's secret; close it when done (the pytest fixture does)."""
        from sandbox.receiver import Receiver

        receiver = Receiver()
        try:
            hook = self.add_webhook(receiver.url, events)
        except BaseException:
            receiver.close()
            raise
        receiver.secret, receiver.webhook_id = hook["secret"], hook["id"]
        return receiver


def describe(entry: JournalEntry) -> str:
    """One line for a journal entry: `POST /v1/payments/charge -> 400 [generic_decline]`."""
    query = f"?{entry['query']}" if entry.get("query") else ""
    scenario = f" [{entry['scenario']}]" if entry.get("scenario") else ""
    return f"{entry['method']} {entry['path']}{query} -> {entry['status']}{scenario}"


def describe_finding(finding: Finding) -> str:
    """One line for a finding: `retried_hard_decline: <advice> (requests req_1, req_2)`."""
    return f"{finding['code']}: {finding['advice']} (requests {', '.join(finding['requests'])})"


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _names_a_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a long line of JSON is too long a file name
        return False


_PLAIN_HTTP: ssl.SSLContext | None = None


def _verify(base_url: str) -> ssl.SSLContext | bool:
    """httpx's `verify=` for a client of `base_url`. httpx builds a TLS context with the CA bundle
    for every client (~50-100 ms), which a plain http URL never uses: such clients share one empty
    context instead (were one redirected to https, verification would fail, never pass). https URLs
    keep httpx's default."""
    global _PLAIN_HTTP
    if not base_url.startswith("http://"):
        return True
    if _PLAIN_HTTP is None:
        import ssl

        _PLAIN_HTTP = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return _PLAIN_HTTP


def _close_outside_a_loop(client: httpx.AsyncClient) -> Exception | None:
    """Close an async client from synchronous code, after the test's event loop may have ended: in a
    loop of its own, on a thread of its own (so that no event loop of the caller's thread is touched).
    Without a kept connection nothing of the old loop is needed; a client that still holds one can
    only be closed in its own loop, and what went wrong is returned."""
    if client.is_closed:
        return None
    import asyncio
    import threading

    failures: list[Exception] = []

    def close() -> None:
        try:
            asyncio.run(client.aclose())
        except Exception as exc:
            failures.append(exc)

    thread = threading.Thread(target=close, name="payments-sandbox-close")
    thread.start()
    thread.join()
    return failures[0] if failures else None
