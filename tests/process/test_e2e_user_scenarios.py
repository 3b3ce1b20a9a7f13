"""`serve --scenarios PATH --no-default-scenarios` reaches the server: a path relative to the working
directory loads, is listed by GET /__sandbox/scenarios as an absolute `<path>:<line>`, and the
built-in pack is gone.

What user rules do (ranges, overrides, precedence, folders, the catalog) is tested in process, on
every store: tests/http/test_user_scenarios.py.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "scenarios"
CUSTOM = DATA / "custom.yaml"


def rule_line(path: Path, name: str) -> int:
    """The 1-based line where the rule called `name` starts in `path`."""
    lines = path.read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.strip() == f"- name: {name}")


def test_scenario_flags_reach_the_server(spawn, tenants):
    server = spawn("--no-default-scenarios", "--scenarios", CUSTOM.name, cwd=DATA)
    client = tenants(server.base_url)

    assert client.charge(7000).status_code == 402
    declined = client.charge(100005)
    assert declined.status_code == 200, declined.text
    assert "Sandbox-Scenario" not in declined.headers
    [rule] = client.scenarios()
    assert rule["name"] == "custom_range_decline"
    assert rule["source"] == f"{CUSTOM}:{rule_line(CUSTOM, 'custom_range_decline')}"
