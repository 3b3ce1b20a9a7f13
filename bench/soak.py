"""A bounded soak of payments-sandbox: mixed traffic with scenarios, and the server's memory.

    python bench/soak.py [--seconds 60] [--concurrency 16] [--journal-size 2000]
                         [--idempotency-keys 200] [--max-growth 0.10] [--seed 1] [--json out.json]

It starts `python -m sandbox serve` on a free port of 127.0.0.1 with a small journal and
idempotency store (so both fill, and must stop growing, within seconds), then runs this same
script with `--drive` in a second process: an asyncio client with `--concurrency` workers that
send mixed traffic until the time is up. Meanwhile it reads the server's RSS from
/proc/PID/status once a second. Then it stops the server with SIGTERM and reports the RSS curve,
the requests per second, and the count of every (status, error code).

Traffic is per tenant, the way the pytest plugin and CI use the sandbox:

- session workers play a test after another: a fresh bearer token, ~150 calls (charges,
  idempotent retries, reads, lists, partial and over-large refunds, every magic amount of the
  default scenario pack, invalid requests), then POST /__sandbox/reset for that tenant;
- two long-lived workers keep one tenant each for the whole run and send only calls that store no
  charge (scripted 500s under fresh Idempotency-Keys, replays, lists, unknown ids), so their
  idempotency store fills to its bound and stays there.

Charges are the product's data and are never evicted; the sessions' resets keep the live ones
bounded, as a test suite's do. Everything else the server keeps must level off.

Exit status 1 (with the reasons) when: a 5xx other than the scripted ones (500 processing_error,
503 service_unavailable, 504 gateway_timeout); a transport error; a response other than the one
the call expects; a kind of call never made; the server not exiting 0 on SIGTERM or logging a
traceback; or RSS over the last third of the run above the middle third's peak by more than
--max-growth (10%).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

HOST = "127.0.0.1"
API = "/v1/payments"
SCRIPTED_5XX = {(500, "processing_error"), (503, "service_unavailable"), (504, "gateway_timeout")}
SESSION_CALLS = 150
REQUEST_TIMEOUT = 30.0  # seconds; a slower answer counts as a transport error
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF")


# -- the driver (second process) --------------------------------------------------------------


@dataclass
class Tally:
    """What the driver saw: every call's kind and outcome, and what went wrong."""

    outcomes: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    per_second: Counter[int] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)
    mismatch_count: int = 0


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams.

    httpx's async client spends several milliseconds of CPU per request on this machine, more than
    the server under test does, so the driver speaks HTTP itself: the sandbox always answers with
    a Content-Length, which is all the parsing needed.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(HOST, self.port)
        reader, writer = self.streams
        lines = [f"{method} {target} HTTP/1.1", f"Host: {HOST}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        response_headers = {}
        for line in head[1:]:
            if line:
                name, _, value = line.partition(":")
                response_headers[name.strip().lower()] = value.strip()
        content = await reader.readexactly(int(response_headers.get("content-length", "0")))
        if response_headers.get("connection", "").lower() == "close":
            await self.close()
        return status, response_headers, content

    async def close(self) -> None:
        if self.streams is not None:
            writer = self.streams[1]
            self.streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class Worker:
    def __init__(self, port: int, tally: Tally, rng: random.Random, started: float) -> None:
        self.connection = Connection(port)
        self.tally = tally
        self.rng = rng
        self.started = started
        self.token = ""

    async def call(
        self,
        kind: str,
        method: str,
        path: str,
        expect: set[int],
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        sent = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        body = b""
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        target = path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            status, response_headers, content = await asyncio.wait_for(
                self.connection.request(method, target, sent, body), REQUEST_TIMEOUT
            )
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError) as exc:
            self.tally.transport_errors[f"{kind}: {type(exc).__name__}"] += 1
            await self.connection.close()
            return 0, {}, {}
        try:
            reply = json.loads(content)
        except ValueError:
            reply = {}
        reply = reply if isinstance(reply, dict) else {}
        error = reply.get("error")
        code = error.get("code", "") if isinstance(error, dict) else ""
        self.tally.outcomes[(kind, status, code)] += 1
        self.tally.per_second[int(time.monotonic() - self.started)] += 1
        if status not in expect:
            self.tally.mismatch_count += 1
            if len(self.tally.mismatches) < 20:
                self.tally.mismatches.append(f"{kind}: {method} {target} -> {status} {content[:200]!r}")
        return status, reply, response_headers

    # -- session worker: one tenant per simulated test -------------------------------------
    async def session(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self.token = f"soak-session-{uuid4().hex}"
            charges: dict[str, int] = {}  # id -> amount left to refund
            for _ in range(SESSION_CALLS):
                if time.monotonic() >= deadline:
                    break
                await self.session_call(charges)
            await self.call("reset", "POST", "/__sandbox/reset", {200})

    async def charge(self, kind: str, amount: int, expect: set[int], key: str | None = None) -> tuple[int, Any]:
        # With a key the body is fixed, so that a retry with the key is the same request.
        if key:
            body = {"amount": amount, "currency": "USD", "description": "soak"}
        else:
            body = {"amount": amount, "currency": self.rng.choice(CURRENCIES), "description": f"soak {kind}"}
        headers = {"Idempotency-Key": key} if key else {}
        status, reply, _ = await self.call(kind, "POST", f"{API}/charge", expect, json_body=body, headers=headers)
        return status, reply

    async def session_call(self, charges: dict[str, int]) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.30:
            key = uuid4().hex
            amount = rng.randint(1, 99_999)
            body = {"amount": amount, "currency": "USD", "metadata": {"n": str(amount)}}
            status, reply, _ = await self.call(
                "charge", "POST", f"{API}/charge", {200}, json_body=body, headers={"Idempotency-Key": key}
            )
            if status == 200:
                charges[reply["id"]] = amount
                if rng.random() < 0.3:
                    _, again, headers = await self.call(
                        "charge-replay",
                        "POST",
                        f"{API}/charge",
                        {200},
                        json_body=body,
                        headers={"Idempotency-Key": key},
                    )
                    if headers.get("idempotent-replayed") != "true" or again.get("id") != reply["id"]:
                        self.tally.mismatch_count += 1
                        self.tally.mismatches.append(f"charge-replay: not a replay of {reply['id']}: {again}")
        elif roll < 0.45 and charges:
            charge_id = rng.choice(list(charges))
            await self.call("get", "GET", f"{API}/charge/{charge_id}", {200})
        elif roll < 0.50:
            await self.call("get-unknown", "GET", f"{API}/charge/ch_{uuid4().hex[:24]}", {404})
        elif roll < 0.60:
            params: dict[str, Any] = {"limit": rng.randint(1, 100), "offset": rng.randint(0, 50)}
            if rng.random() < 0.5:
                params["status"] = rng.choice(("succeeded", "pending", "failed"))
            await self.call("list", "GET", f"{API}/charges", {200}, params=params)
        elif roll < 0.70 and any(charges.values()):
            charge_id = rng.choice([c for c, left in charges.items() if left])
            amount = rng.randint(1, charges[charge_id])
            status, _, _ = await self.call(
                "refund", "POST", f"{API}/refund", {200}, json_body={"charge_id": charge_id, "amount": amount}
            )
            if status == 200:
                charges[charge_id] -= amount
        elif roll < 0.73 and charges:
            charge_id = rng.choice(list(charges))
            await self.call(
                "refund-too-large",
                "POST",
                f"{API}/refund",
                {400},
                json_body={"charge_id": charge_id, "amount": charges[charge_id] + 1},
            )
        elif roll < 0.78:
            amount = rng.choice((100005, 100051, 100054))
            await self.charge("decline", amount, {400})
        elif roll < 0.81:
            await self.charge("processing-error", 100096, {500})
        elif roll < 0.84:
            await self.charge("rate-limited", 100429, {429})
        elif roll < 0.87:
            body = {"amount": 100503, "currency": "USD", "description": f"unavailable once {uuid4().hex}"}
            await self.call("unavailable-once", "POST", f"{API}/charge", {503}, json_body=body)
            await self.call("unavailable-retry", "POST", f"{API}/charge", {200}, json_body=body)
        elif roll < 0.90:
            key = uuid4().hex
            await self.charge("timeout-after-commit", 100504, {504}, key)
            await self.charge("timeout-retry", 100504, {200}, key)
        elif roll < 0.93:
            await self.charge("pending", rng.choice((100202, 100203)), {200})
        elif roll < 0.95:
            status, reply = await self.charge("refundable", 100062, {200})
            if status == 200:
                await self.call("refund-failed", "POST", f"{API}/refund", {400}, json_body={"charge_id": reply["id"]})
        elif roll < 0.998:
            body = {"amount": rng.choice((0, -5, 100_000_000)), "currency": "usd"}
            await self.call("invalid", "POST", f"{API}/charge", {400}, json_body=body)
        else:
            await self.charge("slow", 100408, {200})

    # -- long-lived worker: one tenant for the whole run, storing no charge ----------------
    async def long_lived(self, deadline: float) -> None:
        self.token = f"soak-resident-{uuid4().hex}"
        keys: list[str] = []
        while time.monotonic() < deadline:
            roll = self.rng.random()
            if roll < 0.6 or not keys:
                keys.append(uuid4().hex)
                await self.charge("resident-scripted-500", 100096, {500}, keys[-1])
                del keys[:-5000]
            elif roll < 0.8:
                # A key from long ago may have been evicted (then it is processed afresh): 500 either way.
                await self.charge("resident-replay", 100096, {500}, self.rng.choice(keys))
            elif roll < 0.9:
                await self.call("resident-list", "GET", f"{API}/charges", {200})
            else:
                await self.call("resident-get-unknown", "GET", f"{API}/charge/ch_{uuid4().hex[:24]}", {404})


async def drive(port: int, seconds: float, concurrency: int, seed: int) -> Tally:
    tally = Tally()
    started = time.monotonic()
    deadline = started + seconds
    workers = [Worker(port, tally, random.Random(seed * 1000 + n), started) for n in range(concurrency)]
    residents = min(2, concurrency // 4)
    try:
        await asyncio.gather(
            *[w.long_lived(deadline) for w in workers[:residents]],
            *[w.session(deadline) for w in workers[residents:]],
        )
    finally:
        for worker in workers:
            await worker.connection.close()
    return tally


def run_driver(args: argparse.Namespace) -> int:
    tally = asyncio.run(drive(args.port, args.seconds, args.concurrency, args.seed))
    result = {
        "outcomes": [[kind, status, code, n] for (kind, status, code), n in sorted(tally.outcomes.items())],
        "per_second": sorted(tally.per_second.items()),
        "transport_errors": dict(tally.transport_errors),
        "mismatches": tally.mismatches,
        "mismatch_count": tally.mismatch_count,
    }
    Path(args.out).write_text(json.dumps(result))
    return 0


# -- the conductor (first process) ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/__sandbox/health", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start_server(args: argparse.Namespace, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "sandbox",
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--journal-size",
        str(args.journal_size),
        "--idempotency-keys",
        str(args.idempotency_keys),
    ]
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while not healthy(port):
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            server.wait()
            raise SystemExit(f"the sandbox did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return server, port


def thirds(samples: list[tuple[float, int]]) -> tuple[list[int], list[int], list[int]]:
    values = [rss for _, rss in samples]
    n = len(values)
    return values[: n // 3], values[n // 3 : 2 * n // 3], values[2 * n // 3 :]


def analyse(
    args: argparse.Namespace, driven: dict[str, Any], samples: list[tuple[float, int]], exit_code: int, log: str
) -> tuple[list[str], dict[str, Any]]:
    outcomes = [(kind, status, code, n) for kind, status, code, n in driven["outcomes"]]
    by_status: Counter[str] = Counter()
    kinds = set()
    for kind, status, code, n in outcomes:
        by_status[f"{status} {code}".strip()] += n
        kinds.add(kind)
    total = sum(n for *_, n in outcomes)
    unscripted = {k: n for k, n in by_status.items() if int(k.split()[0]) >= 500}
    unscripted = {k: n for k, n in unscripted.items() if (int(k.split()[0]), k.partition(" ")[2]) not in SCRIPTED_5XX}
    failures = []
    if unscripted:
        failures.append(f"unscripted 5xx: {unscripted}")
    if driven["transport_errors"]:
        failures.append(f"transport errors: {driven['transport_errors']}")
    if driven["mismatch_count"]:
        failures.append(f"{driven['mismatch_count']} unexpected responses, e.g. {driven['mismatches'][:5]}")
    expected_kinds = {
        "charge", "charge-replay", "get", "get-unknown", "list", "refund", "refund-too-large", "decline",
        "processing-error", "rate-limited", "unavailable-once", "unavailable-retry", "timeout-after-commit",
        "timeout-retry", "pending", "refundable", "refund-failed", "invalid", "reset",
        "resident-scripted-500", "resident-replay", "resident-list", "resident-get-unknown",
    }  # fmt: skip
    if missing := expected_kinds - kinds:
        failures.append(f"kinds of call never made: {sorted(missing)}")
    if exit_code != 0:
        failures.append(f"the server exited with {exit_code} on SIGTERM")
    if "Traceback" in log:
        failures.append("the server logged a traceback:\n" + log[-2000:])
    # Only while traffic runs: after it, the last slow calls drain and the server idles.
    samples = [(t, rss) for t, rss in samples if t <= args.seconds + 0.5]
    _, middle, last = thirds(samples)
    growth = None
    if len(samples) < 6:
        failures.append(f"only {len(samples)} RSS samples; run for at least 6 s")
    else:
        growth = max(last) / max(middle) - 1
        if growth > args.max_growth:
            failures.append(
                f"RSS still growing: last third peaks at {max(last) / 1024:.1f} MB, "
                f"{growth:.1%} over the middle third's {max(middle) / 1024:.1f} MB (bound {args.max_growth:.0%})"
            )
    summary = {
        "seconds": args.seconds,
        "requests": total,
        "requests_per_second": round(total / args.seconds),
        "by_status": dict(sorted(by_status.items())),
        "rss_kb": samples,  # (seconds since traffic started, VmRSS in kB), while traffic ran
        "rss_growth_last_over_middle": growth,
        "failures": failures,
        "server_exit_code": exit_code,
        "settings": {
            "concurrency": args.concurrency,
            "journal_size": args.journal_size,
            "idempotency_keys": args.idempotency_keys,
            "seed": args.seed,
        },
        "outcomes": outcomes,
    }
    return failures, summary


def report(summary: dict[str, Any], per_second: dict[int, int]) -> str:
    lines = [
        f"soak: {summary['seconds']} s, {summary['requests']} requests "
        f"({summary['requests_per_second']}/s), settings {summary['settings']}",
        "",
        "   t (s)   RSS (MB)   requests in that second",
    ]
    for t, rss in summary["rss_kb"]:
        lines.append(f"  {t:6.1f}   {rss / 1024:8.1f}   {per_second.get(int(t) - 1, 0):>6}")
    if summary["rss_growth_last_over_middle"] is not None:
        lines.append(
            f"\nRSS growth, last third's peak over the middle third's: {summary['rss_growth_last_over_middle']:+.1%}"
        )
    lines += ["", "responses by status and error code:"]
    lines += [f"  {key:<32} {n:>8}" for key, n in summary["by_status"].items()]
    lines.append("")
    lines.append("FAIL:\n  " + "\n  ".join(summary["failures"]) if summary["failures"] else "PASS")
    return "\n".join(lines)


def conduct(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        log_path, out = Path(tmp) / "server.log", Path(tmp) / "driven.json"
        server, port = start_server(args, log_path)
        samples: list[tuple[float, int]] = []
        try:
            driver = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--drive",
                    "--port",
                    str(port),
                    "--seconds",
                    str(args.seconds),
                    "--concurrency",
                    str(args.concurrency),
                    "--seed",
                    str(args.seed),
                    "--out",
                    str(out),
                ],
                stdin=subprocess.DEVNULL,
            )
            started = time.monotonic()
            while driver.poll() is None:
                time.sleep(max(0.0, 1.0 - (time.monotonic() - started) % 1.0))
                if driver.poll() is None:
                    samples.append((round(time.monotonic() - started, 1), rss_kb(server.pid)))
            if driver.returncode != 0:
                raise SystemExit(f"the load driver failed with exit code {driver.returncode}")
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
            try:
                exit_code = server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                exit_code = server.wait()
        driven = json.loads(out.read_text())
        failures, summary = analyse(args, driven, samples, exit_code, log_path.read_text(errors="replace"))
    print(report(summary, dict(driven["per_second"])))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to send traffic (default 60)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent client workers (default 16)")
    parser.add_argument("--journal-size", type=int, default=2000, help="server's --journal-size (default 2000)")
    parser.add_argument(
        "--idempotency-keys", type=int, default=200, help="server's --idempotency-keys per tenant (default 200)"
    )
    parser.add_argument(
        "--max-growth", type=float, default=0.10, help="allowed RSS growth, last third over middle (default 0.10)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the traffic mix (default 1)")
    parser.add_argument("--json", help="also write the full results here")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return run_driver(args) if args.drive else conduct(args)


if __name__ == "__main__":
    sys.exit(main())
