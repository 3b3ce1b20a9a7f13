/**
 * Webhooks from a real payments-sandbox to a receiver of our own that checks every delivery with
 * src/verifySignature.ts, as a shop's webhook handler would: 200 for a delivery the endpoint's secret
 * signed, 400 for any other. Each test is a tenant of its own with an endpoint of its own (a path of
 * the one receiver); afterwards the endpoint is deleted (so no retry outlives the test) and the
 * sandbox must have found nothing wrong with how the tenant called it, as in checkout.test.ts.
 *
 * Deliveries are sent by the sandbox in the background, so the tests poll for them with a deadline.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, afterEach, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Checkout } from "../src/checkout.js";
import { verifySignature } from "../src/verifySignature.js";
import { control, newTenant, type Sandbox, startSandbox } from "./sandbox.js";

const WAIT_MS = 5_000; // a delivery takes milliseconds; a busy CI machine can make it much more
const POLL_MS = 100; // well under the sandbox's 10 identical GETs a second

/** What the receiver got: the event (parsed for the test's eyes only) and what it answered. */
interface Delivery {
  path: string;
  status: number; // 200: the signature verified; 400: it did not
  eventId: string | undefined; // the Sandbox-Event-Id header
  event: { id: string; type: string; data: { object: { id: string; amount: number } } } | undefined;
}

/** An attempt as GET /__sandbox/webhooks/{id}/deliveries lists it. */
interface Attempt {
  event: string;
  type: string;
  object: string | null;
  attempt: number;
  status: number | null;
  signature: "valid" | "forged";
}

let sandbox: Sandbox;
const secrets = new Map<string, string>(); // receiver path -> the secret of the endpoint registered there
const received: Delivery[] = [];

const receiver = createServer((request: IncomingMessage, response: ServerResponse) => {
  const chunks: Buffer[] = [];
  request.on("data", (chunk: Buffer) => chunks.push(chunk));
  request.on("end", () => {
    const path = request.url ?? "";
    const secret = secrets.get(path);
    if (request.method !== "POST" || secret === undefined) {
      response.writeHead(404).end();
      return;
    }
    const body = Buffer.concat(chunks); // the raw bytes: the signature is over these, not over a re-serialised JSON
    const valid = verifySignature(secret, String(request.headers["sandbox-signature"] ?? ""), body);
    const status = valid ? 200 : 400;
    let event: Delivery["event"];
    try {
      event = JSON.parse(body.toString("utf8")); // a real handler would not parse what failed the check
    } catch {
      event = undefined;
    }
    const eventId = request.headers["sandbox-event-id"];
    received.push({ path, status, eventId: typeof eventId === "string" ? eventId : undefined, event });
    response.writeHead(status, { "Content-Type": "text/plain" }).end(valid ? "ok" : "bad signature");
  });
});

let receiverUrl: string;

before(async () => {
  receiver.listen(0, "127.0.0.1");
  await once(receiver, "listening");
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  sandbox = await startSandbox();
});

after(async () => {
  receiver.closeAllConnections();
  receiver.close();
  await sandbox?.stop();
});

/** The tenants (and their endpoints) of the test running now. */
let tenants: { token: string; hookId: string }[] = [];

afterEach(async () => {
  const used = tenants;
  tenants = [];
  for (const { token, hookId } of used) {
    await control(sandbox.url, token, "DELETE", `/webhooks/${hookId}`); // no retry of it after the test
    assert.deepEqual(await control(sandbox.url, token, "GET", "/findings"), { findings: [] });
  }
});

/** A new tenant with an endpoint (a path of the receiver) for its charge events, and a checkout for it. */
async function newTenantWithEndpoint(): Promise<{ token: string; hookId: string; path: string; checkout: Checkout }> {
  const token = newTenant();
  const path = `/webhooks/${token}`;
  const hook = await control(sandbox.url, token, "POST", "/webhooks", { url: `${receiverUrl}${path}`, events: ["charge.*"] });
  assert.match(hook.id, /^we_/);
  assert.match(hook.secret, /^whsec_/);
  secrets.set(path, hook.secret);
  tenants.push({ token, hookId: hook.id });
  const checkout = new Checkout({ baseUrl: `${sandbox.url}/v1/payments`, token, backoffMs: 10 });
  return { token, hookId: hook.id, path, checkout };
}

/** Ask `look` every POLL_MS until it gives something, for at most WAIT_MS. */
async function waitFor<T>(what: string, look: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const found = await look();
    if (found !== undefined) return found;
    if (Date.now() >= deadline) throw new Error(`no ${what} within ${WAIT_MS / 1000} s`);
    await sleep(POLL_MS);
  }
}

/** The first delivery to `path` of a `type` event about the charge `chargeId`. */
function delivery(path: string, type: string, chargeId: string): Promise<Delivery> {
  return waitFor(`${type} of ${chargeId} at the receiver`, () =>
    received.find((d) => d.path === path && d.event?.type === type && d.event.data.object.id === chargeId),
  );
}

/** The sandbox's log of the attempt to deliver `type` about `chargeId` to the endpoint, once it is written. */
function attempt(token: string, hookId: string, type: string, chargeId: string): Promise<Attempt> {
  return waitFor(`attempt logged for ${type} of ${chargeId}`, async () => {
    const { data } = await control(sandbox.url, token, "GET", `/webhooks/${hookId}/deliveries`);
    return (data as Attempt[]).find((a) => a.type === type && a.object === chargeId);
  });
}

/** Load scenario rules (YAML) for `token`'s tenant only. */
async function loadRules(token: string, yaml: string): Promise<void> {
  const headers: Record<string, string> = { Authorization: `Bearer ${token}`, "Content-Type": "application/yaml" };
  if (process.env.PAYMENTS_SANDBOX_CONTROL_TOKEN) headers["Sandbox-Control-Token"] = process.env.PAYMENTS_SANDBOX_CONTROL_TOKEN;
  const response = await fetch(`${sandbox.url}/__sandbox/scenarios`, { method: "POST", headers, body: yaml });
  assert.equal(response.status, 200, await response.text());
}

test("a charge is announced by a signed charge.succeeded that verifies", async () => {
  const { token, hookId, path, checkout } = await newTenantWithEndpoint();
  const charge = await checkout.pay({ id: "W-1", amount: 1500, currency: "USD" });
  assert.equal(charge.status, "succeeded");
  const got = await delivery(path, "charge.succeeded", charge.id);
  assert.equal(got.status, 200, "the signature verified");
  assert.equal(got.eventId, got.event?.id);
  assert.deepEqual(got.event?.data.object, charge);
  const logged = await attempt(token, hookId, "charge.succeeded", charge.id);
  assert.equal(logged.status, 200);
  assert.equal(logged.signature, "valid");
  assert.equal(logged.event, got.event?.id);
});

test("a delivery signed with another secret fails verification and is answered 400", async () => {
  const { token, hookId, path, checkout } = await newTenantWithEndpoint();
  await loadRules(
    token,
    "rules:\n  - name: forged\n    applies_to: charge\n    when: {amount: 3007}\n    then: {webhooks: {bad_signature: true}}\n",
  );
  const charge = await checkout.pay({ id: "W-2", amount: 3007, currency: "USD" });
  assert.equal(charge.status, "succeeded"); // the charge itself is as usual; only its deliveries are forged
  const got = await delivery(path, "charge.succeeded", charge.id);
  assert.equal(got.status, 400, "the forged signature was refused");
  const logged = await attempt(token, hookId, "charge.succeeded", charge.id);
  assert.equal(logged.status, 400);
  assert.equal(logged.signature, "forged");
  assert.equal(logged.attempt, 1);
  assert.ok(
    received.every((d) => d.path !== path || d.status === 400),
    "no delivery of the forged endpoint verified",
  );
});

test("verifySignature accepts a fresh signature of the body with the secret, and nothing else", () => {
  const body = Buffer.from('{"id": "evt_1", "type": "charge.succeeded"}');
  const now = Math.floor(Date.now() / 1000);
  const sign = (secret: string, t: number, signed: Buffer) =>
    `t=${t},v1=${createHmac("sha256", secret).update(`${t}.`).update(signed).digest("hex")}`;

  assert.equal(verifySignature("whsec_a", sign("whsec_a", now, body), body), true);
  assert.equal(verifySignature("whsec_a", sign("whsec_b", now, body), body), false, "another secret");
  assert.equal(verifySignature("whsec_a", sign("whsec_a", now, body), Buffer.concat([body, Buffer.from(" ")])), false, "another body");
  assert.equal(verifySignature("whsec_a", sign("whsec_a", now - 301, body), body), false, "301 s ago");
  assert.equal(verifySignature("whsec_a", "", body), false, "an empty header");
  assert.equal(verifySignature("whsec_a", "t=x,v1=00", body), false, "a malformed header");
});
