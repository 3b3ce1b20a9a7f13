"""payments-sandbox: a stateful sandbox server for the Payments API.

The public API for tests, imported on first use so that `import sandbox` stays cheap (pytest
imports the plugin, and so this package, in every run of every project that installs us; the
server imports it too):

- `Sandbox`: a real `payments-sandbox serve` process with the helpers below (local.py);
- `PaymentsSandbox`: what the pytest fixture `payments_sandbox` gives a test (pytest_plugin.py);
- `Tenant`: the helpers both share, for one tenant; `JournalEntry`: one recorded API call (remote.py);
- `create_app(Settings(...))`: the ASGI app itself, to drive in-process with `httpx.ASGITransport`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["JournalEntry", "PaymentsSandbox", "Sandbox", "Settings", "Tenant", "__version__", "create_app"]

_HOMES = {
    "JournalEntry": "sandbox.remote",
    "PaymentsSandbox": "sandbox.pytest_plugin",
    "Sandbox": "sandbox.local",
    "Settings": "sandbox.settings",
    "Tenant": "sandbox.remote",
    "create_app": "sandbox.app",
}

if TYPE_CHECKING:
    from sandbox.app import create_app
    from sandbox.local import Sandbox
    from sandbox.pytest_plugin import PaymentsSandbox
    from sandbox.remote import JournalEntry, Tenant
    from sandbox.settings import Settings


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
