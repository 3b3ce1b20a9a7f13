"""Per-request CPU cost of the sandbox's ASGI app, in process, without sockets or a server.

    python bench/profile_app.py [--requests N] [--profile] [--op post|get|both]

It calls the sandbox app (`sandbox.app.create_app`) and the baseline app (`bench/baseline_app.py`)
directly with ready-made ASGI scopes, N times each (the best of three runs), and reports CPU
microseconds per request (`time.process_time`, so other load on the machine counts little). What the HTTP benchmark adds
on top of these figures is the server stack (uvicorn, httptools, the socket), which both apps share.
With `--profile` it runs the sandbox's requests again under cProfile and prints the functions
that cost most, which is the loop to use while making the hot path cheaper.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline_app import create_app as create_baseline  # a sibling script, not a package

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

CHARGE_BODY = b'{"amount":1500,"currency":"USD","description":"bench charge","metadata":{"order_id":"ord_123"}}'
AUTH = (b"authorization", b"Bearer sk_test_bench")


def scope_for(method: str, path: str, body: bytes) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8000"), AUTH, (b"user-agent", b"bench")]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
    }


async def call(app: ASGIApp, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request through the app, as uvicorn would make it; the status and body sent back."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope_for(method, path, body), receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def per_request_us(app: ASGIApp, method: str, path: str, body: bytes, requests: int) -> float:
    for _ in range(min(requests, 500)):  # warm caches (lru, validators, the allocator)
        await call(app, method, path, body)
    best = float("inf")
    for _ in range(3):  # the best of three: other load on the machine only ever adds
        started = time.process_time()
        for _ in range(requests):
            await call(app, method, path, body)
        best = min(best, (time.process_time() - started) / requests)
    return best * 1e6


async def measure(ops: Sequence[str], requests: int, profile: bool) -> None:
    from sandbox.app import create_app
    from sandbox.settings import Settings

    sandbox: Any = create_app(Settings())
    baseline: Any = create_baseline()
    status, raw = await call(sandbox, "POST", "/v1/payments/charge", CHARGE_BODY)
    if status != 200:
        raise SystemExit(f"the sandbox answered {status} to a plain charge: {raw[:300]!r}")
    charge_id = json.loads(raw)["id"]
    cases = {
        "post": ("POST", "/v1/payments/charge", CHARGE_BODY),
        "get": ("GET", f"/v1/payments/charge/{charge_id}", b""),
    }
    for op in ops:
        method, path, body = cases[op]
        mine = await per_request_us(sandbox, method, path, body, requests)
        theirs = await per_request_us(baseline, method, path, body, requests)
        print(
            f"{method} {path.split('/ch_')[0]}: sandbox app {mine:7.1f} us/request, "
            f"baseline app {theirs:6.1f} us/request (CPU, in process, no server)"
        )
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(requests):
                await call(sandbox, method, path, body)
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(40)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Per-request CPU of the sandbox app vs the baseline app.")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--op", choices=("post", "get", "both"), default="both")
    parser.add_argument("--profile", action="store_true", help="also print cProfile's top functions")
    args = parser.parse_args(argv)
    ops = ("post", "get") if args.op == "both" else (args.op,)
    asyncio.run(measure(ops, args.requests, args.profile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
