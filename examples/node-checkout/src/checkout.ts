/**
 * A small checkout on the Payments API: pay an order, refund it, read a charge back.
 *
 * An order is charged at most once however often the network makes us retry: every attempt carries
 * the same Idempotency-Key (made from the order id), and only answers that mean "try again" (409 in
 * flight, 429, 5xx) or a lost connection are retried. A decline is never retried: it becomes a
 * `Declined` error carrying the reason the shop shows the customer.
 *
 * The request and response types come from the API's contract (src/payments-api.d.ts, made by
 * `npm run generate`), so a request the contract does not allow does not compile.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import createClient from "openapi-fetch";
import type { components, paths } from "./payments-api.js";

export type Charge = components["schemas"]["Charge"];
export type Refund = components["schemas"]["Refund"];
/** A POST /charge body; its `currency` is one of the ISO 4217 codes the contract lists. */
type ChargeRequest = NonNullable<paths["/charge"]["post"]["requestBody"]>["content"]["application/json"];
export type Currency = ChargeRequest["currency"];
type ErrorBody = components["schemas"]["Error"];

/** What openapi-fetch answers: the body of a 2xx as `data`, else the parsed error body as `error`. */
type Result<T> = { data?: T; error?: ErrorBody | string; response: Response };

/** Answers after which the same request may succeed: another attempt in flight, rate limited, server trouble. */
const RETRYABLE = new Set([409, 429, 500, 502, 503, 504]);
const DECLINES = new Set(["card_declined", "expired_card"]);

/** The API refused the request; `code` is its error code (`amount_too_large`, `gateway_timeout`, ...). */
export class PaymentError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "PaymentError";
  }
}

/** The card was declined; `declineCode` says why, `chargeId` names the failed charge. */
export class Declined extends PaymentError {
  constructor(
    status: number,
    code: string,
    message: string,
    readonly declineCode: string | undefined,
    readonly chargeId: string | undefined,
  ) {
    super(status, code, message);
    this.name = "Declined";
  }
}

export interface Order {
  id: string;
  amount: number; // minor units: 1500 is 15.00
  currency: Currency; // "USD", "EUR", ...: a code the contract does not list does not compile
}

export interface CheckoutOptions {
  baseUrl: string; // the API's base URL, e.g. http://127.0.0.1:8000/v1/payments
  token: string; // the bearer token
  attempts?: number; // tries per call, the first included (default 4)
  backoffMs?: number; // wait before the second try, doubled after each (default 100), unless Retry-After says
}

export class Checkout {
  private readonly api;
  private readonly attempts: number;
  private readonly backoffMs: number;

  constructor({ baseUrl, token, attempts = 4, backoffMs = 100 }: CheckoutOptions) {
    this.api = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });
    this.attempts = attempts;
    this.backoffMs = backoffMs;
  }

  /** Charge an order once; the charge is `succeeded`, or `pending` until the processor settles it. */
  async pay(order: Order): Promise<Charge> {
    const body: ChargeRequest = {
      amount: order.amount,
      currency: order.currency,
      description: `Order ${order.id}`,
      metadata: { order_id: order.id },
    };
    const header = { "Idempotency-Key": `order-${order.id}` };
    return this.send(() => this.api.POST("/charge", { body, params: { header } }));
  }

  /** Refund `amount` of a charge, or what is left of it. Pass the same `key` to retry a refund
   * whose outcome you never learnt (a crash, say): it is then made at most once. */
  async refund(chargeId: string, amount?: number, key: string = randomUUID()): Promise<Refund> {
    const body = { charge_id: chargeId, amount, reason: "requested_by_customer" };
    return this.send(() => this.api.POST("/refund", { body, params: { header: { "Idempotency-Key": key } } }));
  }

  async charge(id: string): Promise<Charge> {
    return this.send(() => this.api.GET("/charge/{id}", { params: { path: { id } } }));
  }

  /** Make the call, and make it again (the same request: same body, same key) while that may help. */
  private async send<T>(call: () => Promise<Result<T>>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const last = attempt >= this.attempts;
      const wait = this.backoffMs * 2 ** (attempt - 1);
      let result: Result<T>;
      try {
        result = await call();
      } catch (cause) {
        // The connection failed: the request may or may not have arrived; the key makes a retry safe.
        if (last) throw cause;
        await sleep(wait);
        continue;
      }
      const { data, error, response } = result;
      if (response.ok && data !== undefined) return data;
      if (RETRYABLE.has(response.status) && !last) {
        await sleep(retryAfterMs(response) ?? wait);
        continue;
      }
      throw failure(response.status, error);
    }
  }
}

function retryAfterMs(response: Response): number | undefined {
  const seconds = Number(response.headers.get("Retry-After") ?? NaN);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

function failure(status: number, body: ErrorBody | string | undefined): PaymentError {
  if (typeof body !== "object") return new PaymentError(status, "unexpected_response", `HTTP ${status}: ${body ?? ""}`);
  const { code, message, decline_code, charge } = body.error;
  return DECLINES.has(code)
    ? new Declined(status, code, message, decline_code, charge)
    : new PaymentError(status, code, message);
}
