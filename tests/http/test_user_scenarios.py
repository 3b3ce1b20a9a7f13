"""User scenario files (`Settings.scenarios`, `serve --scenarios FILE|FOLDER`) add rules ahead of the
built-in pack, a rule with a built-in name replaces it, `default_scenarios=False` drops the pack, and
GET /__sandbox/scenarios lists every loaded rule with its `source` as `<absolute path>:<line>`.

That the flags reach these settings is tested with a real server in tests/process/test_e2e_user_scenarios.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sandbox.app import create_app
from sandbox.settings import Settings

pytestmark = pytest.mark.anyio

DATA = Path(__file__).resolve().parents[1] / "data" / "scenarios"
CUSTOM = DATA / "custom.yaml"
OVERRIDE = DATA / "override.yaml"
SHADOW = DATA / "shadow.yaml"
USER_RULES = {"custom_range_decline", "shadow_insufficient_funds"}


def rule_line(path: Path, name: str) -> int:
    """The 1-based line where the rule called `name` starts in `path`."""
    lines = path.read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.strip() == f"- name: {name}")


def rule_spec(path: Path, name: str) -> dict:
    return next(rule for rule in yaml.safe_load(path.read_text())["rules"] if rule["name"] == name)


@pytest.fixture(scope="module")
def user_app(store_url):
    """The three files, each a kind of user rule: a new range, a built-in name, a range over a built-in."""
    return create_app(Settings(store=store_url, scenarios=(CUSTOM, OVERRIDE, SHADOW)))


@pytest.fixture(scope="module")
def folder_app(store_url):
    return create_app(Settings(store=store_url, scenarios=(DATA,)))


@pytest.fixture(scope="module")
def custom_only_app(store_url):
    return create_app(Settings(store=store_url, scenarios=(CUSTOM,), default_scenarios=False))


@pytest.fixture
def user(user_app, new_tenant):
    return new_tenant(user_app)


@pytest.mark.parametrize("amount", [7000, 7500, 7999])
async def test_custom_rule_applies_across_its_amount_range(user, amount):
    response = await user.post_charge(amount)

    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "custom_declined"
    assert error["decline_code"] == "custom_limit"
    assert response.headers["Sandbox-Scenario"] == "custom_range_decline"
    assert response.headers["X-Custom-Rule"] == "7000-7999"
    assert (await user.get(error["charge"]))["status"] == "failed"


@pytest.mark.parametrize("amount", [6999, 8000])
async def test_amounts_outside_the_custom_range_succeed(user, amount):
    response = await user.post_charge(amount)

    assert response.status_code == 200, response.text
    assert "Sandbox-Scenario" not in response.headers


async def test_custom_rule_can_be_named_in_metadata(user):
    response = await user.post_charge(1500, metadata={"sandbox_scenario": "custom_range_decline"})

    assert response.status_code == 402
    assert response.json()["error"]["code"] == "custom_declined"


async def test_rule_with_a_default_name_replaces_the_default(user):
    response = await user.post_charge(100005)

    assert response.status_code == 402
    error = response.json()["error"]
    assert error["message"] == "Overridden decline from override.yaml."
    assert error["decline_code"] == "do_not_honor"
    assert error["retryable"] is True
    assert response.headers["Sandbox-Scenario"] == "generic_decline"


async def test_default_rules_not_overridden_still_apply(user):
    response = await user.post_charge(100054)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "expired_card"
    assert response.headers["Sandbox-Scenario"] == "expired_card"


@pytest.mark.parametrize("amount", [100050, 100051, 100052])
async def test_user_range_takes_precedence_over_a_default_magic_amount(user, amount):
    response = await user.post_charge(amount)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    assert response.headers["Sandbox-Scenario"] == "shadow_insufficient_funds"
    assert response.headers["X-Shadowed"] == "yes"


async def test_replay_of_a_user_rule_keeps_its_headers(user):
    first = await user.post_charge(7001, key="replay-custom")

    again = await user.post_charge(7001, key="replay-custom")

    assert again.status_code == first.status_code == 402
    assert again.json() == first.json()
    assert again.headers["X-Custom-Rule"] == first.headers["X-Custom-Rule"]
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_catalog_lists_the_custom_rule_with_match_outcome_and_source(user):
    rules = {rule["name"]: rule for rule in await user.scenarios()}

    listed = rules["custom_range_decline"]
    spec = rule_spec(CUSTOM, "custom_range_decline")
    assert listed["applies_to"] == "charge"
    assert listed["when"] == spec["when"] == {"amount": {"min": 7000, "max": 7999}}
    assert listed["then"] == spec["then"]
    assert listed["source"] == f"{CUSTOM}:{rule_line(CUSTOM, 'custom_range_decline')}"


async def test_catalog_lists_only_the_overriding_rule_under_a_replaced_name(user):
    overriding = [rule for rule in await user.scenarios() if rule["name"] == "generic_decline"]

    assert len(overriding) == 1
    assert overriding[0]["source"] == f"{OVERRIDE}:{rule_line(OVERRIDE, 'generic_decline')}"
    assert overriding[0]["then"] == rule_spec(OVERRIDE, "generic_decline")["then"]


async def test_catalog_still_lists_the_other_default_rules(user, api):
    names = [rule["name"] for rule in await user.scenarios()]
    defaults = [rule["name"] for rule in await api.scenarios()]

    assert sorted(names) == sorted({*defaults, *USER_RULES})
    assert len(names) == len(set(names))


async def test_catalog_sources_point_at_each_default_rules_line(api, make_client):
    [pack] = (await make_client().get("/__sandbox/health")).json()["scenarios"]
    path = Path(pack["path"])
    assert path.is_absolute()
    rules = await api.scenarios()

    assert [rule["name"] for rule in rules] == [rule["name"] for rule in yaml.safe_load(path.read_text())["rules"]]
    for rule in rules:
        assert rule["source"] == f"{path}:{rule_line(path, rule['name'])}"
        assert rule["then"] == rule_spec(path, rule["name"])["then"]


async def test_scenarios_folder_loads_every_yaml_file_in_it(folder_app, new_tenant):
    client = new_tenant(folder_app)

    assert (await client.post_charge(7100)).json()["error"]["code"] == "custom_declined"
    assert (await client.post_charge(100005)).json()["error"]["decline_code"] == "do_not_honor"
    sources = {rule["name"]: rule["source"] for rule in await client.scenarios()}
    assert sources["custom_range_decline"].startswith(f"{CUSTOM}:")
    assert sources["generic_decline"].startswith(f"{OVERRIDE}:")
    assert sources["shadow_insufficient_funds"].startswith(f"{SHADOW}:")
    assert (await client.post_charge(100051)).headers["Sandbox-Scenario"] == "shadow_insufficient_funds"


async def test_no_default_scenarios_drops_the_built_in_pack(custom_only_app, new_tenant):
    client = new_tenant(custom_only_app)

    for amount in (100005, 100429, 100504):
        response = await client.post_charge(amount)
        assert response.status_code == 200, response.text
        assert "Sandbox-Scenario" not in response.headers
    assert (await client.post_charge(7000)).status_code == 402
    assert [rule["name"] for rule in await client.scenarios()] == ["custom_range_decline"]
