/**
 * Check a webhook delivery's `Sandbox-Signature` header before trusting (or even parsing) its body.
 *
 * The header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed with the endpoint's
 * secret>`. Check it on the raw bytes as they arrived (a body parsed and serialised again is not the
 * body that was signed), and refuse a `t` far from now: a delivery recorded and replayed later.
 * This is the README's "verifySignature.ts" block, word for word (tests/plugin/test_readme_examples.py).
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** Whether `header` (Sandbox-Signature) signs `body`, the raw bytes, with `secret`, within 5 minutes. */
export function verifySignature(secret: string, header: string, body: Buffer, tolerance = 300): boolean {
  const parts = new Map(header.split(",").map((part) => part.split("=", 2) as [string, string]));
  const t = parts.get("t") ?? "";
  if (!/^\d+$/.test(t) || Math.abs(Date.now() / 1000 - Number(t)) > tolerance) return false;
  const expected = createHmac("sha256", secret).update(`${t}.`).update(body).digest();
  const given = Buffer.from(parts.get("v1") ?? "", "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}
