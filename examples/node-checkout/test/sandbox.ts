/**
 * The sandbox the tests talk to: the one at PAYMENTS_SANDBOX_URL (say a CI service,
 * `http://127.0.0.1:8080`), else a `payments-sandbox serve` started here on a free port and
 * stopped by `stop()`. The command is PAYMENTS_SANDBOX_COMMAND (split on spaces, e.g.
 * `python -m sandbox`), else `payments-sandbox` on PATH.
 *
 * Ready means GET /__sandbox/health answers 200, never a log line: the server prints before it
 * listens. Each test makes its own tenant (`newTenant()`: a bearer token of its own), so tests never
 * see each other's charges, whatever else runs against the same sandbox.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

const HOST = "127.0.0.1";
const START_TIMEOUT_MS = 30_000; // a start takes about 0.5 s; a busy CI machine can make it much more
const STOP_TIMEOUT_MS = 10_000; // SIGTERM lets in-flight requests finish; then SIGKILL

export interface Sandbox {
  url: string; // e.g. http://127.0.0.1:8000; the API is under /v1/payments, the control API under /__sandbox
  stop(): Promise<void>;
}

export async function startSandbox(): Promise<Sandbox> {
  const given = process.env.PAYMENTS_SANDBOX_URL;
  if (given) return { url: given.replace(/\/+$/, ""), stop: async () => {} };
  const [program = "payments-sandbox", ...args] = (process.env.PAYMENTS_SANDBOX_COMMAND ?? "").split(/\s+/).filter(Boolean);
  const port = await freePort();
  const child = spawn(program, [...args, "serve", "--port", String(port), "--log-level", "warning"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  const keep = (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000));
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const spawned = new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", (err) =>
      reject(new Error(`cannot run ${program} (${err.message}): set PAYMENTS_SANDBOX_URL or PAYMENTS_SANDBOX_COMMAND`)),
    );
  });
  await spawned;
  const kill = () => child.kill("SIGKILL"); // should this process end first, the server must not outlive it
  process.once("exit", kill);
  const stop = async () => {
    process.off("exit", kill);
    await stopProcess(child);
  };
  const url = `http://${HOST}:${port}`;
  try {
    await waitHealthy(url, child, () => log);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, stop };
}

/** A bearer token no other test uses: the sandbox makes each token a tenant of its own. */
export function newTenant(): string {
  return `node-checkout-${randomUUID()}`;
}

/** Call the control API as `token`'s tenant, e.g. `control(url, token, "POST", "/clock/advance", {seconds: 60})`. */
export async function control(url: string, token: string, method: string, path: string, body?: unknown): Promise<any> {
  const headers: Record<string, string> = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };
  if (process.env.PAYMENTS_SANDBOX_CONTROL_TOKEN) headers["Sandbox-Control-Token"] = process.env.PAYMENTS_SANDBOX_CONTROL_TOKEN;
  const response = await fetch(`${url}/__sandbox${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} /__sandbox${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, HOST);
  await once(server, "listening");
  const address = server.address();
  server.close();
  if (address === null || typeof address === "string") throw new Error("no TCP port");
  return address.port;
}

async function waitHealthy(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the sandbox exited (${child.exitCode ?? child.signalCode}) before it was healthy; its output:\n${log()}`);
    }
    try {
      const response = await fetch(`${url}/__sandbox/health`);
      await response.arrayBuffer(); // read to the end, so that the connection is free again
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new Error(`the sandbox was not healthy within ${START_TIMEOUT_MS / 1000} s; its output:\n${log()}`);
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}
