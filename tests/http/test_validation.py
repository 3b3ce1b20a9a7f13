"""Charge body validation: the contract's types and the money rules, each naming the bad field."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio

CHARGE = "/v1/payments/charge"


async def rejected(api, body, *, param, code="parameter_invalid"):
    """POST `body`, expect a 400 naming `param`, and no charge stored."""
    response = await api.client.post(CHARGE, json=body)
    api.error(response, 400, code=code, param=param)
    assert await api.total() == 0


@pytest.mark.parametrize("amount", [1, 99_999_999])
async def test_amount_bounds_are_accepted(api, amount):
    assert (await api.charge(amount=amount))["amount"] == amount


@pytest.mark.parametrize("amount", [0, -1, 100_000_000, 1.5, 100.0, "1500", True, False, None, [1500], {"v": 1}])
async def test_amount_must_be_an_integer_in_range(api, amount):
    await rejected(api, {"amount": amount, "currency": "USD"}, param="amount")


async def test_amount_is_required(api):
    await rejected(api, {"currency": "USD"}, param="amount", code="parameter_missing")


async def test_currency_is_required(api):
    await rejected(api, {"amount": 1500}, param="currency", code="parameter_missing")


async def test_empty_body_reports_a_missing_field(api):
    response = await api.client.post(CHARGE)
    api.error(response, 400, code="parameter_missing", param="amount")


@pytest.mark.parametrize("currency", ["USD", "EUR", "JPY", "GBP", "CHF"])
async def test_real_currency_codes_are_accepted(api, currency):
    assert (await api.charge(currency=currency))["currency"] == currency


@pytest.mark.parametrize("currency", ["XYZ", "usd", "Usd", "US", "USDD", "", " USD", 840, None])
async def test_currency_must_be_an_upper_case_iso_4217_code(api, currency):
    await rejected(api, {"amount": 1500, "currency": currency}, param="currency")


async def test_metadata_of_50_keys_is_accepted(api):
    metadata = {f"k{n}": "v" for n in range(50)}
    assert (await api.charge(metadata=metadata))["metadata"] == metadata


async def test_metadata_over_50_keys_is_rejected(api):
    await rejected(
        api, {"amount": 1, "currency": "USD", "metadata": {f"k{n}": "v" for n in range(51)}}, param="metadata"
    )


async def test_metadata_key_of_40_chars_is_accepted(api):
    assert await api.charge(metadata={"k" * 40: "v"})


async def test_metadata_key_over_40_chars_is_rejected(api):
    await rejected(api, {"amount": 1, "currency": "USD", "metadata": {"k" * 41: "v"}}, param="metadata")


async def test_metadata_value_of_500_chars_is_accepted(api):
    assert await api.charge(metadata={"k": "v" * 500})


async def test_metadata_value_over_500_chars_is_rejected(api):
    await rejected(api, {"amount": 1, "currency": "USD", "metadata": {"k": "v" * 501}}, param="metadata.k")


@pytest.mark.parametrize("value", [1, 1.5, True, None, ["a"], {"a": "b"}])
async def test_metadata_values_must_be_strings(api, value):
    await rejected(api, {"amount": 1, "currency": "USD", "metadata": {"k": value}}, param="metadata.k")


@pytest.mark.parametrize("metadata", [[], "k=v", 1, None])
async def test_metadata_must_be_an_object(api, metadata):
    await rejected(api, {"amount": 1, "currency": "USD", "metadata": metadata}, param="metadata")


async def test_description_of_1000_chars_is_accepted(api):
    assert (await api.charge(description="d" * 1000))["description"] == "d" * 1000


@pytest.mark.parametrize("description", ["d" * 1001, None, 5, ["d"]])
async def test_description_must_be_a_string_of_at_most_1000(api, description):
    await rejected(api, {"amount": 1, "currency": "USD", "description": description}, param="description")


async def test_unknown_field_is_rejected(api):
    await rejected(api, {"amount": 1, "currency": "USD", "capture": True}, param="capture", code="parameter_unknown")


async def test_unicode_text_round_trips(api):
    text = "caf\u00e9 \u2603 \U0001f600"
    charge = await api.charge(description=text, metadata={"note": text})
    assert (await api.get(charge["id"]))["description"] == text
    assert charge["metadata"] == {"note": text}
