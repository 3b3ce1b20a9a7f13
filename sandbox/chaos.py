"""Seeded chaos: which probabilistic rule fires, reproducibly, and the built-in chaos profiles.

A rule with `probability: p` fires for a request it matches when the tenant's next draw is below p.
Each tenant draws from its own generator seeded with `--chaos-seed` (0 unless given), so a tenant's
n-th draw is the same in every run with that seed, whatever other tenants do: the same client, in
the same order, meets the same faults. A reset tenant starts its draws again. The draws live in
the process: with `--workers N` each worker draws for the requests it serves.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from pathlib import Path

from sandbox.errors import ConfigError
from sandbox.settings import CHAOS_PROFILES

_TENANTS_KEPT = 10_000  # generators kept, least recently used dropped (it starts again if it comes back)
PROFILES: dict[str, Path] = {path.stem: path for path in sorted(CHAOS_PROFILES.glob("*.yaml"))}


def profile_path(name: str) -> Path:
    """The scenario file of the built-in chaos profile `name`."""
    if name not in PROFILES:
        raise ConfigError(f"--chaos {name}: no chaos profile {name!r}; use one of {', '.join(PROFILES)}.")
    return PROFILES[name]


class Chaos:
    """Every tenant's draws, from one seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._draws: OrderedDict[str, random.Random] = OrderedDict()

    def fires(self, tenant: str, probability: float | None) -> bool:
        """Whether a rule of this probability (None: always) fires for the tenant's request."""
        if probability is None:
            return True
        draws = self._draws.get(tenant)
        if draws is None:
            draws = self._draws[tenant] = random.Random(self.seed)
            if len(self._draws) > _TENANTS_KEPT:
                self._draws.popitem(last=False)
        else:
            self._draws.move_to_end(tenant)
        return draws.random() < probability

    def forget(self, tenant: str | None) -> None:
        """Start one tenant's draws again (a reset), or every tenant's."""
        if tenant is None:
            self._draws.clear()
        else:
            self._draws.pop(tenant, None)
