"""What the client got wrong: findings made from each tenant's traffic as it happens.

(Interface only; the detection rules are being written. See the issue "Judge the client".)
"""

from __future__ import annotations

from collections.abc import Mapping

from sandbox.models import Entry, Finding


class Watcher:
    """Each tenant's recent calls in this process, enough to tell a finding when a call shows one."""

    def observe(self, entry: Entry, headers: Mapping[str, str]) -> tuple[Finding, ...]:
        """The findings `entry` (about to be journaled; `headers` are the ones its answer carries)
        shows, in the order of the codes' list."""
        return ()

    def forget(self, tenant: str | None) -> None:
        """Drop what is remembered of one tenant (reset), or of every tenant."""


def warning(found: tuple[Finding, ...]) -> str:
    """The `Sandbox-Warning` header's value for a call that showed `found`."""
    return ", ".join(f.code for f in found)
