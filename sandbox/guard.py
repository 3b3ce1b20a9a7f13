"""What keeps a browser from being a way in: the Host check and the cross-site check.

A sandbox on a developer's laptop listens on 127.0.0.1 next to their browser. Two kinds of page on
another site could reach it:

- *DNS rebinding*: a page at evil.example re-points its own name at 127.0.0.1 and then reads the
  sandbox as if it were its own origin. Its requests carry `Host: evil.example`, so while the
  sandbox listens on a loopback address it answers only the Host names it is known by (421
  otherwise). `--allowed-hosts` adds names (a docker-compose service name, say); bound to any
  other address, every Host is answered unless `--allowed-hosts` is given.
- *Cross-site writes*: a page anywhere can auto-submit a form to `/__sandbox/reset`. A browser
  marks such a request (`Sec-Fetch-Site`, `Origin`), and a form can only send a form or
  `text/plain` body, never `application/json` without the sandbox agreeing to a CORS preflight
  (it never does). So state-changing control calls refuse what a browser marks as cross-site and
  any body that is not JSON (YAML too, for scenarios); curl, httpx and the pytest plugin send
  neither mark and JSON bodies, and keep working.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from sandbox.errors import Forbidden

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def is_loopback(host: str) -> bool:
    """Whether binding `host` (as given to --host) exposes the sandbox to this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bracketed(host: str) -> str:
    """The --host value as it appears in a Host header: IPv6 literals in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host.lower()


class HostCheck:
    """Which `Host` headers the sandbox answers."""

    _CACHE_LIMIT = 256

    def __init__(self, bind_host: str, allowed: tuple[str, ...]) -> None:
        self.names: frozenset[str] | None
        if "*" in allowed or (not allowed and not is_loopback(bind_host)):
            self.names = None  # every Host
        else:
            self.names = frozenset({*LOOPBACK_NAMES, _bracketed(bind_host), *allowed})
        self._seen: dict[bytes, bool] = {}  # header value -> verdict; a handful of values in practice

    def allows(self, header: bytes | None) -> bool:
        """Whether a request with this `Host` header value (None: no header, as HTTP/1.0) is answered."""
        if self.names is None or header is None:
            return True
        verdict = self._seen.get(header)
        if verdict is None:
            verdict = self.host_name(header) in self.names
            if len(self._seen) >= self._CACHE_LIMIT:
                self._seen.clear()  # a client cycling Host values cannot grow this
            self._seen[header] = verdict
        return verdict

    @staticmethod
    def host_name(header: bytes) -> str:
        """The name in a Host header, without the port: `[::1]:8000` -> `[::1]`."""
        text = header.decode("latin-1").strip().lower()
        if text.startswith("["):
            return text[: text.find("]") + 1] if "]" in text else text
        return text.rsplit(":", 1)[0] if text.count(":") == 1 else text

    def describe(self) -> str:
        shown = ", ".join(sorted(self.names or ()))
        return f"This sandbox answers the Host names {shown}"


def refuse_cross_site(headers: Mapping[str, str]) -> None:
    """Forbidden when a browser marks the request as sent by a page of another site."""
    site = headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site"):
        raise Forbidden(
            "cross_site_request",
            f"A page of another site sent this request (Sec-Fetch-Site: {site}); the sandbox's state can "
            "only be changed by its own pages and by clients that are not browsers.",
        )
    origin = headers.get("origin")
    if origin is not None and not _same_origin(origin, headers.get("host")):
        raise Forbidden(
            "cross_site_request",
            f"A page of another origin ({origin[:100]}) sent this request; the sandbox's state can only be "
            "changed by its own pages and by clients that are not browsers.",
        )


def _same_origin(origin: str, host: str | None) -> bool:
    if host is None or origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


def require_body_type(headers: Mapping[str, str], body: bytes, accepted: tuple[str, ...] = JSON_TYPES) -> None:
    """Forbidden when a non-empty body is not of an accepted type: a form cannot send JSON or YAML."""
    if not body.strip():
        return
    given = headers.get("content-type", "")
    media = given.partition(";")[0].strip().lower()
    if media not in accepted:
        raise Forbidden(
            "unsupported_body_type",
            f"Send the body with Content-Type: {' or '.join(accepted[:2])} (got {given[:60]!r}); a page of "
            "another site can make a browser send other types, so they are refused.",
        )
