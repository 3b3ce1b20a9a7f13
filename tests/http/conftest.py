"""In-process HTTP fixtures: the ASGI app driven by httpx, every response checked against the contract.

Each test gets its own bearer token, so its charges live in a tenant no other test can see: one app
serves the whole session and no reset is needed between tests.

Every response under the API prefix goes through `ContractCheck` (an httpx response hook): the
operation is found by method and path, the documented response by status (else `default`), and
the JSON body is validated with `OAS30Validator` against the bundled openapi.json, `$ref`s resolved
through a `referencing` registry. An undocumented status or a body off the schema fails the test.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from sandbox.app import create_app
from sandbox.auth import tenant_of
from sandbox.openapi import deref
from sandbox.settings import Settings

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.json"
SPEC_URI = "urn:payments-sandbox:openapi.json"
BASE_URL = "http://localhost"  # a Host the sandbox answers (guard.py refuses others with 421)
API = "/v1/payments"


class ContractCheck:
    """Checks one HTTP exchange against the bundled OpenAPI document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.prefix = urlsplit(document["servers"][0]["url"]).path.rstrip("/")
        resource = Resource.from_contents(document, default_specification=DRAFT4)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self.routes = [
            (re.compile(re.sub(r"\\{(\w+)\\}", r"[^/]+", re.escape(template))), template)
            for template in document["paths"]
        ]
        self.checked = 0

    def _validate(self, pointer: str, instance: Any, what: str) -> None:
        validator = OAS30Validator(
            {"$ref": f"{SPEC_URI}#{pointer}"}, registry=self.registry, format_checker=oas30_format_checker
        )
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        assert not errors, f"{what}: body does not match {pointer}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
        )

    def check(self, method: str, path: str, status: int, content_type: str, body: bytes) -> None:
        """Raise AssertionError when the exchange is not described by the contract."""
        what = f"{method} {path} -> {status}"
        assert path.startswith(self.prefix), f"{what}: not under {self.prefix}"
        self.checked += 1
        relative = path[len(self.prefix) :]
        template = next((t for regex, t in self.routes if regex.fullmatch(relative)), None)
        if template is None:
            assert status == 404, f"{what}: unknown route must answer 404"
            pointer = "/components/schemas/Error"
        elif method.lower() not in self.document["paths"][template]:
            assert status == 405, f"{what}: method not in the contract must answer 405"
            pointer = "/components/schemas/Error"
        else:
            responses = self.document["paths"][template][method.lower()]["responses"]
            key = str(status) if str(status) in responses else "default"
            assert key in responses, f"{what}: status {status} is not documented (has {sorted(responses)})"
            escaped = template.replace("~", "~0").replace("/", "~1")
            pointer = f"/paths/{escaped}/{method.lower()}/responses/{key}"
            documented = deref(responses[key], self.document)
            if "$ref" in responses[key]:
                pointer = responses[key]["$ref"].removeprefix("#")
            media = documented.get("content", {}).get("application/json")
            if media is None or "schema" not in media:
                assert not body, f"{what}: the contract documents no body but one was sent"
                return
            pointer += "/content/application~1json/schema"
        if method == "HEAD":
            return  # no body by definition
        assert content_type.split(";")[0].strip() == "application/json", f"{what}: content-type {content_type!r}"
        try:
            instance = json.loads(body)
        except ValueError as exc:
            raise AssertionError(f"{what}: body is not JSON: {body[:200]!r}") from exc
        self._validate(pointer, instance, what)

    async def hook(self, response: httpx.Response) -> None:
        request = response.request
        if not request.url.path.startswith(self.prefix):
            return
        await response.aread()
        self.check(
            request.method,
            request.url.path,
            response.status_code,
            response.headers.get("content-type", ""),
            response.content,
        )


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def contract() -> ContractCheck:
    return ContractCheck(json.loads(SPEC_PATH.read_bytes()))


@pytest.fixture(scope="session", params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every in-process test runs on each engine: the same behaviour whatever holds the state."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'sandbox.db'}"
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url")) + "/2"
    return "memory"


@pytest.fixture(scope="session")
def app(store_url: str) -> Any:
    return create_app(Settings(store=store_url))


@pytest.fixture(scope="session")
def jwt_app() -> Any:
    """An app that verifies HS256 JWTs with the secret `s`."""
    return create_app(Settings(jwt_secret="s"))


@pytest.fixture
def token() -> str:
    """This test's own tenant."""
    return f"tok_{uuid.uuid4().hex}"


@pytest.fixture
def key(token: str) -> str:
    """The test tenant's key, as the dashboard names it."""
    return tenant_of(f"Bearer {token}")


@pytest.fixture
async def make_client(app: Any, contract: ContractCheck) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """Make contract-checked clients: `make_client(token=None, app=...)`; token None sends no header."""
    made: list[httpx.AsyncClient] = []
    targets = {id(app): app}

    def make(token: str | None = None, *, target: Any = app) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=target),
            base_url=BASE_URL,
            headers=headers,
            event_hooks={"response": [contract.hook]},
        )
        made.append(client)
        targets[id(target)] = target
        return client

    yield make
    for client in made:
        await client.aclose()
    for target in targets.values():
        if target.store.kind == "redis":
            # The Redis client's connections belong to this test's event loop; the next test has its own.
            await target.store.close()


@pytest.fixture
def client(make_client: Callable[..., httpx.AsyncClient], token: str) -> httpx.AsyncClient:
    return make_client(token)


class Api:
    """Small helpers over a client, so tests read as the behaviour they check."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def charge(self, **fields: Any) -> dict[str, Any]:
        response = await self.client.post(f"{API}/charge", json={"amount": 1500, "currency": "USD", **fields})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def post_charge(
        self, amount: int = 1500, currency: str = "USD", *, key: str | None = None, **fields: Any
    ) -> httpx.Response:
        """POST /charge whatever the answer (`charge` insists on a 200); `key` is the Idempotency-Key."""
        headers = {"Idempotency-Key": key} if key is not None else {}
        body = {"amount": amount, "currency": currency, **fields}
        return await self.client.post(f"{API}/charge", json=body, headers=headers)

    async def refund(self, charge_id: str, *, key: str | None = None, **fields: Any) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key is not None else {}
        return await self.client.post(f"{API}/refund", json={"charge_id": charge_id, **fields}, headers=headers)

    async def get(self, charge_id: str) -> dict[str, Any]:
        response = await self.client.get(f"{API}/charge/{charge_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def list(self, **params: Any) -> dict[str, Any]:
        response = await self.client.get(f"{API}/charges", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def total(self) -> int:
        return int((await self.list())["total"])

    async def ids(self, status: str | None = None) -> list[str]:
        """The ids of the tenant's charges, newest first, of one status or all."""
        params = {"status": status} if status else {}
        return [charge["id"] for charge in (await self.list(**params))["data"]]

    async def advance(self, seconds: float) -> None:
        """Move this tenant's sandbox clock forward."""
        response = await self.client.post("/__sandbox/clock/advance", json={"seconds": seconds})
        assert response.status_code == 200, response.text

    async def scenarios(self) -> list[dict[str, Any]]:
        """The scenario rules in effect for this tenant, as GET /__sandbox/scenarios lists them."""
        response = await self.client.get("/__sandbox/scenarios")
        assert response.status_code == 200, response.text
        rules: list[dict[str, Any]] = response.json()["rules"]
        return rules

    @staticmethod
    def error(response: httpx.Response, status: int, *, code: str | None = None, param: Any = ...) -> dict[str, Any]:
        """Assert `response` is an error envelope with this status (and code / param when given)."""
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert set(body) == {"error"}, body
        error: dict[str, Any] = body["error"]
        assert {"code", "message", "param"} <= set(error), error
        assert isinstance(error["code"], str)
        assert error["code"]
        assert isinstance(error["message"], str)
        assert error["message"]
        if code is not None:
            assert error["code"] == code, error
        if param is not ...:
            assert error["param"] == param, error
        return error


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)


@pytest.fixture
def new_tenant(make_client: Callable[..., httpx.AsyncClient], app: Any) -> Callable[..., Api]:
    """`new_tenant(target=app)` -> the Api of a fresh tenant of the session's app, or of an app
    made with other settings."""

    def make(target: Any = app) -> Api:
        return Api(make_client(f"tok_{uuid.uuid4().hex}", target=target))

    return make


@pytest.fixture
def other_api(new_tenant: Callable[..., Api]) -> Api:
    """A second tenant of the session's app, for isolation tests."""
    return new_tenant()
