"""The benchmark's yardstick: a bare Starlette app on stock uvicorn.

It answers the two benchmarked operations with fixed JSON bytes shaped like a charge, so that the
ratio sandbox/baseline measures what the sandbox adds (routing by the contract, auth, validation,
state, journal): same Starlette, same uvicorn, same options as `sandbox/cli.py`'s `serve()`
(lifespan off, access log off, no Server header, `auto` loop and http, which are uvloop and
httptools when installed, as they are with `uvicorn[standard]`). One difference is the sandbox's
own: its server (sandbox/server.py) sends each answer in one write where stock uvicorn, and so this
app, makes two; that is worth about a tenth of a POST's CPU and a twentieth of a GET's
(bench/RESULTS.md, 2026-12-04), which the ratios count in the sandbox's favour.

The POST handler reads the request body, as any real endpoint must; it does not parse it.

Run: `python bench/baseline_app.py --port 8001`.
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# The size and shape of a real charge reply, so both servers put the same bytes on the wire.
CHARGE = (
    b'{"id":"ch_0123456789abcdefghijABCD","amount":1500,"currency":"USD","description":"bench charge",'
    b'"metadata":{"order_id":"ord_123"},"status":"succeeded","amount_refunded":0,"refunded":false,'
    b'"failure_code":null,"created_at":"2025-01-01T00:00:00Z"}'
)
HEALTH = b'{"status":"ok"}'


async def create_charge(request: Request) -> Response:
    await request.body()
    return Response(CHARGE, 200, media_type="application/json")


async def get_charge(request: Request) -> Response:
    return Response(CHARGE, 200, media_type="application/json")


async def health(request: Request) -> Response:
    return Response(HEALTH, 200, media_type="application/json")


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/payments/charge", create_charge, methods=["POST"]),
            Route("/v1/payments/charge/{id}", get_charge, methods=["GET"]),
            Route("/__sandbox/health", health, methods=["GET"]),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    # Mirrors sandbox.cli.serve(): keep the two in step or the ratio stops meaning anything.
    config = uvicorn.Config(
        create_app(),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    server = uvicorn.Server(config)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    raise SystemExit(main())
