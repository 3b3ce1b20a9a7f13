/**
 * The checkout against a real payments-sandbox (see sandbox.ts for which one). Each test is a
 * tenant of its own. The magic amounts make the sandbox fail on purpose; the sandbox's README lists
 * them under "Scenarios". After each test the sandbox must have found nothing wrong with how the
 * checkout called it (GET /__sandbox/findings): no keyless retry, no retried hard decline,
 * Retry-After waited, a pending charge read again once settled.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";
import createClient from "openapi-fetch";
import { Checkout, Declined, type Order, PaymentError } from "../src/checkout.js";
import type { paths } from "../src/payments-api.js";
import { control, newTenant, type Sandbox, startSandbox } from "./sandbox.js";

let sandbox: Sandbox;

before(async () => {
  sandbox = await startSandbox();
});

after(async () => {
  await sandbox?.stop();
});

/** The tenants of the test running now. */
let tokens: string[] = [];

afterEach(async () => {
  const used = tokens;
  tokens = [];
  for (const token of used) {
    assert.deepEqual(await control(sandbox.url, token, "GET", "/findings"), { findings: [] });
  }
});

/** A checkout for a new tenant, configured as production would configure it: a base URL and a token. */
function newCheckout(attempts?: number): { checkout: Checkout; token: string } {
  const token = newTenant();
  tokens.push(token);
  return { checkout: new Checkout({ baseUrl: `${sandbox.url}/v1/payments`, token, attempts, backoffMs: 10 }), token };
}

/** The statuses the API answered this tenant's POST /charge with, oldest first. */
async function chargeStatuses(token: string): Promise<number[]> {
  const { requests } = await control(sandbox.url, token, "GET", "/requests?path=/v1/payments/charge");
  return requests.map((entry: { status: number }) => entry.status);
}

test("an order is charged", async () => {
  const { checkout } = newCheckout();
  const charge = await checkout.pay({ id: "A-1", amount: 1500, currency: "USD" });
  assert.equal(charge.status, "succeeded");
  assert.equal(charge.amount, 1500);
  assert.deepEqual(charge.metadata, { order_id: "A-1" });
  assert.deepEqual(await checkout.charge(charge.id), charge);
});

test("a decline is reported with its reason and not retried", async () => {
  const { checkout, token } = newCheckout();
  const declined = await checkout.pay({ id: "A-2", amount: 100051, currency: "USD" }).catch((err) => err);
  assert.ok(declined instanceof Declined, String(declined));
  assert.equal(declined.declineCode, "insufficient_funds");
  assert.equal(declined.message, "Your card has insufficient funds.");
  assert.equal((await checkout.charge(declined.chargeId!)).status, "failed");
  assert.deepEqual(await chargeStatuses(token), [400]);
});

test("a decline marked not retryable is not retried", async () => {
  const { checkout, token } = newCheckout();
  const declined = await checkout.pay({ id: "A-7", amount: 100005, currency: "USD" }).catch((err) => err);
  assert.ok(declined instanceof Declined, String(declined));
  assert.equal(declined.declineCode, "generic_decline");
  assert.deepEqual(await chargeStatuses(token), [400]);
});

test("a 429 is retried only after the seconds Retry-After names", async () => {
  const { checkout, token } = newCheckout(2);
  const started = Date.now();
  const limited = await checkout.pay({ id: "A-8", amount: 100429, currency: "USD" }).catch((err) => err);
  assert.ok(limited instanceof PaymentError && limited.code === "rate_limited", String(limited));
  assert.ok(Date.now() - started >= 1000, "waited the 1 s of Retry-After");
  assert.deepEqual(await chargeStatuses(token), [429, 429]);
});

test("a connection reset after the charge was made is retried with the same key and charges once", async () => {
  const { checkout, token } = newCheckout();
  const charge = await checkout.pay({ id: "A-9", amount: 100104, currency: "USD" });
  assert.equal(charge.status, "succeeded");
  const { requests } = await control(sandbox.url, token, "GET", "/requests?path=/v1/payments/charge");
  assert.deepEqual(
    requests.map((entry: { fault: string | null }) => entry.fault),
    ["connection_reset", null],
  );
  assert.equal(requests[0].idempotency_key, requests[1].idempotency_key);
});

test("an order is refunded in part, then in full", async () => {
  const { checkout } = newCheckout();
  const charge = await checkout.pay({ id: "A-3", amount: 2500, currency: "EUR" });
  const part = await checkout.refund(charge.id, 1000);
  assert.equal(part.amount, 1000);
  const rest = await checkout.refund(charge.id);
  assert.equal(rest.amount, 1500);
  const refunded = await checkout.charge(charge.id);
  assert.equal(refunded.amount_refunded, 2500);
  assert.equal(refunded.refunded, true);
  await assert.rejects(checkout.refund(charge.id), (err) => err instanceof PaymentError && err.code === "charge_already_refunded");
});

test("a pending charge settles when the sandbox clock moves on", async () => {
  const { checkout, token } = newCheckout();
  const charge = await checkout.pay({ id: "A-4", amount: 100202, currency: "GBP" });
  assert.equal(charge.status, "pending");
  await control(sandbox.url, token, "POST", "/clock/advance", { seconds: 60 });
  assert.equal((await checkout.charge(charge.id)).status, "succeeded");
});

test("a timeout after the charge was made is retried with the same key and charges once", async () => {
  const { checkout, token } = newCheckout();
  // The processor commits the charge but the gateway answers 504; the retry carries the same
  // Idempotency-Key, so it gets the committed charge back instead of making a second one.
  const charge = await checkout.pay({ id: "A-5", amount: 100504, currency: "USD" });
  assert.equal(charge.status, "succeeded");
  assert.deepEqual(await chargeStatuses(token), [504, 200]);
  const { requests } = await control(sandbox.url, token, "GET", "/requests?path=/v1/payments/charge");
  assert.equal(requests[0].idempotency_key, requests[1].idempotency_key);
  assert.equal(requests[1].response_body.id, charge.id);
  const api = createClient<paths>({ baseUrl: `${sandbox.url}/v1/payments`, headers: { Authorization: `Bearer ${token}` } });
  const { data: list } = await api.GET("/charges");
  assert.equal(list?.total, 1);
});

test("a currency the contract does not list does not compile", () => {
  // @ts-expect-error: the contract's currencies are upper-case ISO 4217 codes; tsc fails if "usd" were allowed
  const order: Order = { id: "A-6", amount: 1500, currency: "usd" };
  assert.equal(order.currency, "usd");
});
