"""A minimal HTTP/1.1 load generator: the fallback when `wrk` is not installed, and the bulk loader.

`run.py` starts it as its own process so that the client never shares the server's event loop.
Each of `--connections` keep-alive connections sends one request, reads the whole response
(headers up to the blank line, then exactly Content-Length bytes) and sends the next, for
`--duration` seconds or until `--count` requests have been sent in all. Requests are pre-built
bytes; responses are not parsed beyond status and length. httpx and aiohttp spend more time per
request than the server under test does, so they would measure themselves.

Prints one JSON object: requests, seconds, rps, p50_ms, p99_ms, errors, non_2xx; with several
`--path`s, which each connection sends in turn (so that any slowdown of the machine hits all of
them alike), also `by_request`: requests, p50_ms and p99_ms for each path, in order.

Run: `python bench/loadgen.py --port 8000 --method POST --path /v1/payments/charge --body '{...}'`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tally:
    deadline: float
    count: int | None
    sent: int = 0
    errors: int = 0
    non_2xx: int = 0
    latencies: list[list[float]] = field(default_factory=list)  # one list per distinct request

    def more(self) -> bool:
        if self.count is not None:
            if self.sent >= self.count:
                return False
            self.sent += 1
            return True
        return time.perf_counter() < self.deadline


def build_request(method: str, host: str, port: int, path: str, body: str | None, headers: Sequence[str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", *headers]
    payload = body.encode() if body is not None else b""
    if body is not None:
        lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


async def _connection(host: str, port: int, requests: Sequence[bytes], tally: Tally) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    clock = time.perf_counter
    turn = 0
    while tally.more():
        which = turn % len(requests)
        turn += 1
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = clock()
            writer.write(requests[which])
            head = await reader.readuntil(b"\r\n\r\n")
            length = _content_length(head)
            if length:
                await reader.readexactly(length)
            tally.latencies[which].append(clock() - started)
            if head[9:10] != b"2":  # b"HTTP/1.1 200": the status's first digit
                tally.non_2xx += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            tally.errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _summary(latencies: list[float]) -> dict[str, float | int]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "p50_ms": round(_percentile(ordered, 0.50) * 1000, 3),
        "p99_ms": round(_percentile(ordered, 0.99) * 1000, 3),
    }


async def load(
    host: str, port: int, requests: Sequence[bytes], connections: int, duration: float, count: int | None
) -> dict[str, Any]:
    started = time.perf_counter()
    tally = Tally(started + duration, count, latencies=[[] for _ in requests])
    await asyncio.gather(*(_connection(host, port, requests, tally) for _ in range(connections)))
    seconds = time.perf_counter() - started
    result: dict[str, Any] = _summary([x for per_request in tally.latencies for x in per_request])
    result.update(
        seconds=round(seconds, 3),
        rps=round(result["requests"] / seconds, 1) if seconds else 0.0,
        errors=tally.errors,
        non_2xx=tally.non_2xx,
    )
    if len(requests) > 1:
        result["by_request"] = [_summary(per_request) for per_request in tally.latencies]
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Minimal keep-alive HTTP/1.1 load generator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--path", action="append", help="repeatable: each connection sends them in turn")
    parser.add_argument("--body", default=None, help="request body; sent with Content-Length")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'; repeatable")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (ignored with --count)")
    parser.add_argument("--count", type=int, default=None, help="send exactly this many requests, then stop")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("this load generator only targets the loopback interface")
    duration = 3600.0 if args.count is not None else args.duration
    paths = args.path or ["/"]
    requests = [build_request(args.method, args.host, args.port, path, args.body, args.header) for path in paths]
    work = load(args.host, args.port, requests, args.connections, duration, args.count)
    try:
        import uvloop  # comes with uvicorn[standard]; about twice the client throughput of asyncio's loop
    except ImportError:
        result = asyncio.run(work)
    else:
        result = uvloop.run(work)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
