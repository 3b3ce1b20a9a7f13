"""Every knob of the sandbox, in one frozen dataclass. Only cli.py reads flags and env vars."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _bundled(name: str) -> Path:
    # In a wheel the contract and scenarios are force-included into the package; in a source
    # checkout they sit at the top level, beside sandbox/.
    inside = PACKAGE_DIR / name
    return inside if inside.exists() else PACKAGE_DIR.parent / name


BUNDLED_SPEC = _bundled("openapi.json")
DEFAULT_SCENARIOS = _bundled("scenarios") / "default.yaml"
CHAOS_PROFILES = _bundled("scenarios") / "chaos"  # <name>.yaml for each `--chaos` profile


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    spec: Path = BUNDLED_SPEC
    log_level: str = "info"
    scenarios: tuple[Path, ...] = ()
    default_scenarios: bool = True
    jwt_secret: str | None = None
    control_token: str | None = None
    journal_size: int = 10_000
    idempotency_keys: int = 10_000
    max_body_bytes: int = 1024 * 1024
    # Where state lives (stores/): memory, sqlite:///path or redis://host:port/db; and how many
    # worker processes share it.
    store: str = "memory"
    workers: int = 1
    # Exposure (guard.py): extra Host names, on top of the loopback names and --host.
    allowed_hosts: tuple[str, ...] = ()
    max_tenants: int = 10_000
    limit_concurrency: int = 1000
    header_timeout: float = 10.0
    # JWT verification (auth.py): a shared secret (HS256) and/or a local JSON Web Key Set.
    jwks: Path | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway: float = 0.0
    # Seeded chaos (chaos.py): a built-in profile's rules after every other rule, and the seed of
    # every tenant's draws for rules with a probability.
    chaos: str | None = None
    chaos_seed: int = 0
    # Webhooks (webhooks.py): endpoints for every tenant and the secret that signs deliveries to
    # them; hosts besides loopback ones that deliveries may go to.
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str | None = None
    webhook_allow_hosts: tuple[str, ...] = ()

    def scenario_files(self) -> tuple[Path, ...]:
        """Scenario files in precedence order: the user's first, the built-in pack, the chaos profile."""
        profile = (CHAOS_PROFILES / f"{self.chaos}.yaml",) if self.chaos else ()
        return self.scenarios + ((DEFAULT_SCENARIOS,) if self.default_scenarios else ()) + profile
