"""The `payments-sandbox` command: `serve` runs the sandbox with uvicorn, `check` checks scenario files.

Every `serve` flag can also come from a `PAYMENTS_SANDBOX_<FLAG>` environment variable; a flag
given on the command line wins. This is the only module that reads flags or the environment.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from sandbox import __version__
from sandbox.chaos import profile_path
from sandbox.errors import ConfigError
from sandbox.numbers import decimal, whole
from sandbox.settings import BUNDLED_SPEC, Settings
from sandbox.stores import store_kind

ENV = "PAYMENTS_SANDBOX_"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
# A DNS name or an IP literal (IPv6 in brackets), as it appears in a Host header without the port.
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9._-]{0,252})|\[[0-9a-f:.]{2,45}\]")

EPILOG = f"""\
environment:
  Each serve flag may be set as {ENV}<FLAG> instead, e.g. {ENV}PORT=8080,
  {ENV}SCENARIOS=a.yaml{os.pathsep}more/ ({os.pathsep}-separated), {ENV}NO_DEFAULT_SCENARIOS=1.
  A flag on the command line wins over its variable.

The API is served under /v1/payments (the contract's server path); the dashboard (open it in a
browser), the control API and the health check under /__sandbox/. Stop the server with Ctrl-C or
SIGTERM (exit code 0): requests in flight are answered first, scripted delays cut short.
"""


def _port(text: str) -> int:
    port = whole(text)
    if port is None or not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a port; use a number from 1 to 65535")
    return port


def _positive(text: str) -> int:
    number = whole(text)
    if number is None or number < 1:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a positive whole number")
    return number


def _seconds(text: str) -> float:
    number = decimal(text)
    if number is None or number > 86_400:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number of seconds from 0 to 86400")
    return number


def _chaos_seed(text: str) -> int:
    number = whole(text)
    if number is None or not 0 <= number < 2**63:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number from 0 to 2**63-1")
    return number


def _profile(text: str) -> str:
    try:
        profile_path(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--chaos {text}: ")) from None
    return text


def _store(text: str) -> str:
    try:
        store_kind(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--store {text[:100]!r}: ")) from None
    return text


def _hosts(text: str) -> tuple[str, ...]:
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    bad = [name for name in names if name != "*" and not _HOST_NAME.fullmatch(name)]
    if bad or not names:
        shown = bad[0][:60] if bad else text[:60]
        raise argparse.ArgumentTypeError(
            f"{shown!r} is not a host name; give names such as sandbox,api.test (no port), or * for any"
        )
    return names


def _webhook_url(text: str) -> str:
    from sandbox.outbound import refusal

    why = refusal(text, ("*",))  # the host is checked once --webhook-allow-hosts is known too
    if why is not None:
        raise argparse.ArgumentTypeError(why)
    return text


def _webhook_urls(text: str) -> list[str]:
    return [_webhook_url(url.strip()) for url in text.split(",") if url.strip()]


def _level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
    return text.lower()


def _flag(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("", "0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; use 1 or 0")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="payments-sandbox",
        description="A stateful sandbox server for the Payments API: contract-validating, per-tenant, "
        "with scripted failures from magic amounts.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"payments-sandbox {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve", help="run the sandbox server", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=_port, default=8000, help="port to bind (default 8000)")
    serve.add_argument(
        "--spec", type=Path, default=BUNDLED_SPEC, help="OpenAPI document to serve (default: the bundled one)"
    )
    serve.add_argument(
        "--log-level", type=_level, default="info", help=f"one of {', '.join(LOG_LEVELS)} (default info)"
    )
    serve.add_argument(
        "--scenarios",
        type=Path,
        action="append",
        default=None,
        metavar="PATH",
        help="a scenario YAML file or a folder of *.yaml; repeatable; ahead of the built-in pack",
    )
    serve.add_argument(
        "--no-default-scenarios",
        action="store_const",
        const=True,
        default=None,
        help="do not load the built-in scenario pack",
    )
    serve.add_argument(
        "--store",
        type=_store,
        default="memory",
        metavar="URL",
        help="where state lives: memory (default; this process only, gone on exit), "
        "sqlite:///path.db (four slashes for an absolute path: durable on one host, shared by its "
        "workers) or redis://[:password@]host:port/db (shared by many workers and hosts; rediss:// for "
        "TLS, e.g. rediss://host:6380/0?ssl_ca_certs=/path/ca.pem)",
    )
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="worker processes sharing the port (default 1); more than 1 needs a sqlite or redis --store",
    )
    serve.add_argument(
        "--allowed-hosts",
        type=_hosts,
        metavar="NAMES",
        help="comma-separated Host names to answer besides localhost, 127.0.0.1, [::1] and --host "
        "(e.g. a docker-compose service name); * answers any. Other Hosts get 421. Bound to a "
        "non-loopback address without this flag, any Host is answered",
    )
    serve.add_argument(
        "--max-tenants",
        type=_positive,
        default=10_000,
        help="tenants kept at once; when full, the least recently used one is dropped (default 10000)",
    )
    serve.add_argument(
        "--limit-concurrency",
        type=_positive,
        default=1000,
        help="open connections served at once; a request over it gets 503 (default 1000)",
    )
    serve.add_argument(
        "--header-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="close a connection that has not sent a whole request head in this time (default 10)",
    )
    serve.add_argument(
        "--jwt-secret", help="accept only JWTs signed (HS256) with this secret; the tenant is the `sub` claim"
    )
    serve.add_argument(
        "--jwks",
        type=Path,
        metavar="FILE",
        help="accept only JWTs signed (RS256, ES256, ...) by a key of this local JSON Web Key Set file",
    )
    serve.add_argument("--jwt-audience", metavar="AUD", help="with --jwt-secret/--jwks: require this `aud` claim")
    serve.add_argument("--jwt-issuer", metavar="ISS", help="with --jwt-secret/--jwks: require this `iss` claim")
    serve.add_argument(
        "--jwt-leeway",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="with --jwt-secret/--jwks: clock skew allowed on `exp` and `nbf` (default 0)",
    )
    serve.add_argument(
        "--control-token", help="require header Sandbox-Control-Token with this value on /__sandbox/* (not health)"
    )
    serve.add_argument(
        "--journal-size", type=_positive, default=10_000, help="API calls kept in the request journal (default 10000)"
    )
    serve.add_argument(
        "--idempotency-keys", type=_positive, default=10_000, help="idempotency results kept per tenant (default 10000)"
    )
    serve.add_argument(
        "--chaos",
        type=_profile,
        metavar="PROFILE",
        help="a built-in chaos profile after every other rule: flaky-network (about 2%% resets, 1%% 503s, "
        "1%% answers 2 s late, on charges and refunds) or bad-day (several times that, and 429s)",
    )
    serve.add_argument(
        "--chaos-seed",
        type=_chaos_seed,
        default=0,
        metavar="N",
        help="seed of every tenant's draws for rules with a probability (default 0): the same requests in "
        "the same order meet the same faults",
    )
    serve.add_argument(
        "--webhook-url",
        action="append",
        type=_webhook_url,
        metavar="URL",
        help="POST every tenant's events to this endpoint too (repeatable; env: comma-separated), signed "
        "with --webhook-secret; loopback only unless --webhook-allow-hosts names its host",
    )
    serve.add_argument(
        "--webhook-secret",
        metavar="SECRET",
        help="the secret that signs deliveries to --webhook-url (default: a new one each start, printed)",
    )
    serve.add_argument(
        "--webhook-allow-hosts",
        type=_hosts,
        metavar="NAMES",
        help="comma-separated hosts webhooks may be sent to besides loopback ones (127.0.0.1, ::1, "
        "localhost); * allows any: only where tenants are trusted",
    )
    serve.add_argument("--access-log", action="store_const", const=True, default=None, help="log every request line")

    check = commands.add_parser("check", help="check scenario files; exit 0 when all are valid, 1 otherwise")
    check.add_argument("files", type=Path, nargs="+", metavar="FILE", help="scenario YAML files or folders")
    return parser


def _from_env(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Fill each serve flag not given on the command line from its environment variable."""
    converters: dict[str, Callable[[str], object]] = {
        "host": str,
        "port": _port,
        "spec": Path,
        "log_level": _level,
        "store": _store,
        "workers": _positive,
        "jwt_secret": str,
        "jwks": Path,
        "jwt_audience": str,
        "jwt_issuer": str,
        "jwt_leeway": _seconds,
        "allowed_hosts": _hosts,
        "max_tenants": _positive,
        "limit_concurrency": _positive,
        "header_timeout": _seconds,
        "control_token": str,
        "journal_size": _positive,
        "idempotency_keys": _positive,
        "no_default_scenarios": _flag,
        "access_log": _flag,
        "chaos": _profile,
        "chaos_seed": _chaos_seed,
        "webhook_url": _webhook_urls,
        "webhook_secret": str,
        "webhook_allow_hosts": _hosts,
    }
    given = {a.split("=")[0].lstrip("-").replace("-", "_") for a in argv if a.startswith("--")}
    for name, convert in converters.items():
        value = os.environ.get(ENV + name.upper())
        if value is not None and name not in given:
            try:
                setattr(args, name, convert(value))
            except argparse.ArgumentTypeError as exc:
                parser.error(f"{ENV}{name.upper()}: {exc}")
    scenarios = os.environ.get(ENV + "SCENARIOS")
    if scenarios and args.scenarios is None:
        args.scenarios = [Path(p) for p in scenarios.split(os.pathsep) if p]


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        host=args.host,
        port=args.port,
        spec=args.spec,
        log_level=args.log_level,
        scenarios=tuple(args.scenarios or ()),
        default_scenarios=not args.no_default_scenarios,
        store=args.store,
        workers=args.workers,
        jwt_secret=args.jwt_secret or None,
        jwks=args.jwks,
        jwt_audience=args.jwt_audience or None,
        jwt_issuer=args.jwt_issuer or None,
        jwt_leeway=args.jwt_leeway,
        allowed_hosts=args.allowed_hosts or (),
        max_tenants=args.max_tenants,
        limit_concurrency=args.limit_concurrency,
        header_timeout=args.header_timeout,
        control_token=args.control_token or None,
        journal_size=args.journal_size,
        idempotency_keys=args.idempotency_keys,
        chaos=args.chaos,
        chaos_seed=args.chaos_seed,
        webhook_urls=tuple(args.webhook_url or ()),
        webhook_secret=args.webhook_secret or None,
        webhook_allow_hosts=args.webhook_allow_hosts or (),
    )


def serve(settings: Settings, access_log: bool) -> int:
    from sandbox.app import create_app
    from sandbox.server import run
    from sandbox.stores import check_reachable

    try:
        if settings.workers > 1 and settings.store == "memory":
            raise ConfigError(
                f"--workers {settings.workers} needs a shared store: the memory store lives in one process; "
                "add --store sqlite:///sandbox.db or --store redis://127.0.0.1:6379/0, or drop --workers."
            )
        check_reachable(settings)
        app = create_app(settings)
    except ConfigError as exc:
        print(f"payments-sandbox: error: {exc}", file=sys.stderr)
        return 2
    return run(app, settings, access_log)


def check(files: list[Path]) -> int:
    from sandbox.scenarios import load_rules

    failed = False
    for path in files:
        try:
            rules = load_rules((path,))
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
        else:
            print(f"ok: {path}: {len(rules.rules)} rules")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.files)
    _from_env(parser, args, argv)
    settings = settings_from(args)
    if settings.webhook_urls:
        from sandbox.outbound import refusal

        for url in settings.webhook_urls:
            why = refusal(url, settings.webhook_allow_hosts)
            if why is not None:
                parser.error(f"--webhook-url {url[:200]}: {why}")
        if settings.webhook_secret is None:
            settings = replace(settings, webhook_secret="whsec_" + secrets.token_hex(24))
            print(f"payments-sandbox: webhooks to --webhook-url are signed with {settings.webhook_secret}"
                  " (set --webhook-secret to choose it)", file=sys.stderr)  # fmt: skip
    return serve(settings, bool(args.access_log))
