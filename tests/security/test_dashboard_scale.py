"""The dashboard with many tenants, through a real `payments-sandbox serve`: tenants come in pages,
an open tab's polls of an unchanged live region get a bodiless 204, dropped tenants are announced,
and page numbers are ASCII digits or a 400. Behaviour only: the timings are measured elsewhere
(README, "Dashboard"), never asserted."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sandbox_server import SandboxProcess, start_sandbox

from sandbox.auth import tenant_of

HTML = {"Accept": "text/html,application/xhtml+xml"}
ROW = re.compile(r'<th scope="row" data-label="Tenant"><a href="/__sandbox/ui/tenants/(tn_[0-9a-f]+)">')
# A rule of our own: a charge of 4242 is pending and settles a second later, with no request.
SETTLES_SOON = """\
rules:
  - name: settles_soon
    applies_to: charge
    when: {amount: 4242}
    then:
      charge: pending
      settle: {after_seconds: 1, to: succeeded}
"""


@contextmanager
def running(tmp_path: Path, *flags: str) -> Iterator[SandboxProcess]:
    server = start_sandbox(tmp_path, *flags)
    try:
        yield server
    finally:
        assert server.stop() == 0, server.log()


def charge(server: SandboxProcess, token: str, amount: int = 1500) -> str:
    with server.client(token=token) as client:
        made = client.post("/v1/payments/charge", json={"amount": amount, "currency": "USD"})
    assert made.status_code == 200, made.text
    charge_id: str = made.json()["id"]
    return charge_id


def key(token: str) -> str:
    return tenant_of(f"Bearer {token}", None)


def live(ui: httpx.Client, path: str, version: str = "") -> httpx.Response:
    """What the page's script asks for each second: the live region, given the version it shows."""
    return ui.get(path, params={"fragment": "live", "version": version})


def test_tenants_come_in_pages_most_recently_used_first(tmp_path: Path) -> None:
    with running(tmp_path) as server, server.client() as ui:
        tokens = [f"sk_page_{n}" for n in range(60)]
        for token in tokens:
            charge(server, token)
        first = ui.get("/__sandbox/", headers=HTML)
        assert first.status_code == 200
        assert ROW.findall(first.text) == [key(t) for t in reversed(tokens[10:])]
        assert "1\u201350 of 60" in first.text
        assert "Page 1 of 2" in first.text
        older = re.search(r'<a rel="next" href="([^"]+)">', first.text)
        assert older is not None
        assert 'rel="prev"' not in first.text

        second = ui.get(older.group(1), headers=HTML)
        assert ROW.findall(second.text) == [key(t) for t in reversed(tokens[:10])]
        assert "51\u201360 of 60" in second.text
        assert 'rel="next"' not in second.text
        newer = re.search(r'<a rel="prev" href="([^"]+)">', second.text)
        assert newer is not None
        assert ROW.findall(ui.get(newer.group(1), headers=HTML).text) == ROW.findall(first.text)

        beyond = ui.get("/__sandbox/?page=3", headers=HTML)
        assert beyond.status_code == 200
        assert "No tenants on page 3" in beyond.text

        charge(server, tokens[0])  # used again: the oldest becomes the most recent
        assert ROW.findall(ui.get("/__sandbox/", headers=HTML).text)[0] == key(tokens[0])


def test_the_request_filter_suggests_some_tenants_not_all(tmp_path: Path) -> None:
    with running(tmp_path) as server, server.client() as ui:
        for n in range(60):
            charge(server, f"sk_filter_{n}")
        page = ui.get("/__sandbox/ui/requests", headers=HTML).text
        suggested = re.findall(r'<option value="(tn_[0-9a-f]+)">', page)
        assert suggested[0] == key("sk_filter_59")
        assert len(suggested) == 50
        only = ui.get("/__sandbox/ui/requests", params={"tenant": key("sk_filter_3")}, headers=HTML).text
        assert "1 matching request." in only
        assert only.count('<li class="req"') == 1


def test_an_unchanged_live_region_is_a_bodiless_204(tmp_path: Path) -> None:
    with running(tmp_path) as server, server.client() as ui:
        charged = charge(server, "sk_live_a")
        pages = ["/__sandbox/", f"/__sandbox/ui/tenants/{key('sk_live_a')}"]
        pages.append(f"/__sandbox/ui/tenants/{key('sk_live_a')}/charges/{charged}")
        versions = {}
        for path in pages:
            region = live(ui, path)
            assert region.status_code == 200
            assert "<html" not in region.text
            versions[path] = region.headers["sandbox-version"]
            full = ui.get(path, headers=HTML).text
            assert f'data-version="{versions[path]}"' in full  # the page starts the script off with it
            unchanged = live(ui, path, versions[path])
            assert unchanged.status_code == 204
            assert unchanged.content == b""
            assert unchanged.headers["cache-control"] == "no-store"
            assert "frame-ancestors 'none'" in unchanged.headers["content-security-policy"]

        with server.client(token="sk_live_a") as client:
            assert client.post("/v1/payments/refund", json={"charge_id": charged, "amount": 100}).status_code == 200
        for path in pages:  # a refund shows on all three: each region is sent again, with a new version
            region = live(ui, path, versions[path])
            assert region.status_code == 200, path
            assert region.headers["sandbox-version"] != versions[path]
            assert live(ui, path, region.headers["sandbox-version"]).status_code == 204
        assert "partially refunded" in live(ui, pages[2]).text

        tenants = live(ui, pages[0])
        charge(server, "sk_live_b")
        changed = live(ui, pages[0], tenants.headers["sandbox-version"])
        assert changed.status_code == 200
        assert key("sk_live_b") in changed.text


def test_a_settlement_that_comes_due_changes_the_version(tmp_path: Path) -> None:
    rules = tmp_path / "soon.yaml"
    rules.write_text(SETTLES_SOON)
    with running(tmp_path, "--scenarios", str(rules)) as server, server.client() as ui:
        charge(server, "sk_settle", 4242)
        paths = ["/__sandbox/", f"/__sandbox/ui/tenants/{key('sk_settle')}"]
        before = {path: live(ui, path) for path in paths}
        assert 'data-label="Pending">1<' in before[paths[0]].text
        assert "badge-pending" in before[paths[1]].text
        time.sleep(1.2)  # no request in between: the settlement has only come due
        after = {path: live(ui, path, region.headers["sandbox-version"]) for path, region in before.items()}
        assert [r.status_code for r in after.values()] == [200, 200]
        assert 'data-label="Pending">0<' in after[paths[0]].text
        assert 'data-label="Succeeded">1<' in after[paths[0]].text
        assert "badge-pending" not in after[paths[1]].text
        assert "badge-succeeded" in after[paths[1]].text


def test_the_request_feed_with_nothing_new(tmp_path: Path) -> None:
    with running(tmp_path) as server, server.client() as ui:
        charge(server, "sk_feed")
        cursor = ui.get("/__sandbox/ui/requests.json").json()["cursor"]
        for params in ({}, {"tenant": key("sk_feed")}, {"status": "4xx", "method": "post"}):
            quiet = ui.get("/__sandbox/ui/requests.json", params={**params, "after": cursor}).json()
            assert quiet == {"cursor": cursor, "reset": False, "count": 0, "html": ""}


def test_dropped_tenants_are_announced_on_the_tenants_page(tmp_path: Path) -> None:
    with running(tmp_path, "--max-tenants", "3") as server, server.client() as ui:
        tokens = [f"sk_drop_{n}" for n in range(5)]
        for token in tokens:
            charge(server, token)
        page = ui.get("/__sandbox/", headers=HTML).text
        assert ROW.findall(page) == [key(t) for t in reversed(tokens[2:])]
        notice = re.search(r'<p class="notice warn" id="dropped">(.*?)</p>', page, re.S)
        assert notice is not None
        text = " ".join(notice.group(1).split())
        assert text.startswith("2 tenants dropped since the sandbox started")
        assert "<code>--max-tenants 3</code>" in text
        assert f"the last was <code>{key(tokens[1])}</code> at " in text
        assert re.search(r"at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text)
        assert "notice warn" in live(ui, "/__sandbox/").text  # in the live region: it appears without a reload

    with running(tmp_path, "--max-tenants", "3") as quiet, quiet.client() as ui:
        charge(quiet, "sk_alone")
        assert 'id="dropped"' not in ui.get("/__sandbox/", headers=HTML).text


NOT_NUMBERS = ["²", "٣", "+5", "1.0", "-1", " 1", "1e3", "", "1" * 5000]


def test_numbers_in_the_query_are_ascii_digits_or_a_400(tmp_path: Path) -> None:
    with running(tmp_path) as server, server.client() as ui:
        charge(server, "sk_numbers")
        pages = ("/__sandbox/", f"/__sandbox/ui/tenants/{key('sk_numbers')}")
        for path, page in [(path, page) for path in pages for page in [*NOT_NUMBERS, "0"]]:
            answer = ui.get(path, params={"page": page})  # not a browser: the error envelope
            assert answer.status_code == 400, (path, page, answer.text)
            assert answer.headers["content-type"].startswith("application/json")
            assert answer.json()["error"]["code"] == "parameter_invalid"
            assert answer.json()["error"]["param"] == "page"
            shown = ui.get(path, params={"page": page}, headers=HTML)  # a browser: the error page
            assert shown.status_code == 400
            assert shown.headers["content-type"].startswith("text/html")
            assert "parameter_invalid" in shown.text
            assert "frame-ancestors 'none'" in shown.headers["content-security-policy"]
            assert ui.get(path, params={"page": page, "fragment": "live"}).status_code == 400  # the poll too
        for n in NOT_NUMBERS:  # the count a notice shows
            assert ui.get("/__sandbox/", params={"notice": "seeded", "n": n}).status_code == 400, n
        assert "Created 7 fake charges." in ui.get("/__sandbox/", params={"notice": "seeded", "n": "7"}).text
        for status in ("4\u0660\u0662", "4²²", "40", "4xx1", "+402"):
            assert ui.get("/__sandbox/ui/requests", params={"status": status}).status_code == 400, status
            assert ui.get("/__sandbox/ui/requests.json", params={"status": status}).status_code == 400, status
        assert ui.get("/__sandbox/", params={"page": "0001"}).status_code == 200
