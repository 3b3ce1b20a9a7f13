"""Peers and HTTP layers (issue 14): what a request costs on the sandbox next to other mock servers,
and on its HTTP layer next to other ASGI servers. Measurement only; CI does not run it.

    python bench/peers.py [--duration S] [--rounds R] [--warmup S] [--skip-install] [--json out.json]
                          [--markdown out.md]

The servers, all on 127.0.0.1 (each on a free port):

1. `bench/baseline_app.py` (bare Starlette, fixed bytes) on the sandbox's own uvicorn options
   (httptools, uvloop), the same with `--workers 2` (the uvicorn CLI: the most two processes of any
   app on this stack can serve here), on the uvicorn CLI with `--http h11` (same options otherwise), and on
   granian's ASGI server (one worker, HTTP/1) when `pip install granian` works: granian goes into
   this venv for the measurement only, never into pyproject.toml.
2. `payments-sandbox serve`: the memory store with one worker; `--workers 2` on
   `--store sqlite:///<tmp>/peers.db`; `--workers 2` on `--store redis://127.0.0.1:<port>/0`, a
   redis-server the run starts without persistence (`procs.redis_server`) and stops.
3. The sandbox app (`sandbox.server:worker_app`, a factory building `create_app(Settings())` from the
   settings in PAYMENTS_SANDBOX_WORKER_SETTINGS, here the defaults) on uvicorn `--http h11` and on
   granian, for comparison only: header/body timeouts, the `--limit-concurrency` 503 and network
   faults need the sandbox's httptools protocol subclass (`sandbox.server.DeadlineProtocol`), so on
   those servers they are missing.
4. Stoplight Prism (`prism mock openapi.json`, static examples, `-v silent`) and WireMock (the
   standalone jar of the `wiremock` npm package, run with `java -jar`, no request journal, two
   stubs answering the baseline's charge bytes), installed with npm into `bench/.peers/` when
   missing (`--skip-install`: use what is there, leave out what is not).

How: every server is started first and stays up for the whole run, so that they can be taken in
turn: a discarded warm-up run of each (server, operation), then `--rounds` rounds, each loading
POST /v1/payments/charge and then GET /v1/payments/charge/{id} on every server (the order rotated
each round) with wrk (1 thread, 32 connections, `--duration` s), so that a busy spell on the
machine hits all alike. Per server and operation the median run by req/s is reported: req/s,
p50/p99, cores used (server CPU-seconds / wall, the whole process tree, read from /proc: the JVM's
own figure for WireMock, plus redis-server's for the Redis row) and requests per CPU-second.
Before that, cold start: spawn -> first 200 (the sandbox's `/__sandbox/health` for the sandbox and
the baseline, the GET for Prism and WireMock), three spawns each, interleaved, median reported.
Every non-2xx answer and socket error is counted, warm-up runs included.

Prism serves the spec's paths without the server URL's `/v1/payments` prefix, so it is loaded on
`/charge` and `/charge/{id}`; every other server on `/v1/payments/...`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from baseline_app import CHARGE
from harness import (
    BASELINE,
    CHARGE_BODY,
    HEADERS,
    REPO_DIR,
    Load,
    LoadGenerator,
    choose_generator,
    create_charge,
    measure,
    median_run,
    request,
    running,
)
from procs import RedisServer, redis_available, redis_server, tree_cpu_seconds
from run import machine_info

from sandbox.launcher import HEALTH, HOST, ServerProcess
from sandbox.settings import BUNDLED_SPEC, Settings

BENCH_DIR = Path(__file__).resolve().parent
PEERS_DIR = BENCH_DIR / ".peers"  # npm's cache of the peers (in .gitignore)
PRISM = PEERS_DIR / "node_modules" / ".bin" / "prism"
NPM_PACKAGES = ("@stoplight/prism-cli@5", "wiremock@3")
CONNECTIONS = 32
SPAWNS = 3
STORE_URL = "{store_url}"  # in a sandbox's flags: the store URL of this run
STORES_SHOWN = {"sqlite": "sqlite:///<tmp>/peers.db", "redis": "redis://127.0.0.1:<port>/0"}
GET_ID = "ch_0123456789abcdefghijABCD"  # what the fixed-reply servers are asked for
SETTINGS_ENV = "PAYMENTS_SANDBOX_WORKER_SETTINGS"  # what sandbox.server.worker_app reads
EXTRA_PACKAGES = ("h11", "granian")
OPS = ("POST", "GET")

NO_DEADLINES = (
    "comparison only: no header/body timeouts, no --limit-concurrency 503, no network faults "
    "(they need sandbox.server.DeadlineProtocol, a subclass of uvicorn's httptools protocol)"
)


@dataclass(frozen=True)
class Peer:
    """One server under test. `serve`: flags of `payments-sandbox serve`; else `argv`, the program
    and its flags (the launcher appends `--port P`)."""

    key: str
    label: str
    layer: str
    argv: tuple[str, ...] = ()
    serve: tuple[str, ...] | None = None
    prefix: str = "/v1/payments"
    probe: str = HEALTH  # what must answer 200 for the server to be up
    env: tuple[tuple[str, str], ...] = ()
    workers: int = 1
    store: str | None = None  # "redis": its redis-server's CPU counts too
    fixed_get: bool = True  # GET asks for GET_ID; False: for a charge created at start
    note: str = ""

    def path(self, op: str, charge_id: str) -> str:
        return f"{self.prefix}/charge" if op == "POST" else f"{self.prefix}/charge/{charge_id}"

    def command(self, scratch: Path) -> str:
        """The command line, shortened: paths relative to the repository, <tmp> for the run's folder."""
        shown = STORES_SHOWN.get(self.store or "", "")
        args = ("payments-sandbox", "serve", *self.serve) if self.serve is not None else self.argv
        text = " ".join(shown if arg == STORE_URL else shlex.quote(arg) for arg in args) + " --port P"
        swaps = ((sys.executable, "python"), (str(scratch), "<tmp>"), (f"{BENCH_DIR}/", "bench/"), (f"{REPO_DIR}/", ""))
        for long, short in swaps:
            text = text.replace(long, short)
        if self.env:
            text = " ".join(f"{name}=..." for name, _ in self.env) + " " + text
        return text


@dataclass
class Result:
    key: str
    label: str
    layer: str
    command: str
    note: str
    cold_start_s: list[float] = field(default_factory=list)
    runs: dict[str, list[Load]] = field(default_factory=dict)  # measured runs, by operation
    warmup: dict[str, Load] = field(default_factory=dict)
    reply_bytes: dict[str, int] = field(default_factory=dict)
    idle_cores: dict[str, list[float]] = field(default_factory=dict)  # the other servers' CPU in each run
    broken: str = ""  # why it has no figures

    def median(self, op: str) -> Load | None:
        runs = self.runs.get(op)
        return median_run(runs) if runs else None

    def failed(self, op: str) -> int:
        loads = [*self.runs.get(op, []), *([self.warmup[op]] if op in self.warmup else [])]
        return sum(load.non_2xx + load.errors for load in loads)


def cpu_seconds(load: Load) -> float:
    """The server's CPU time in the run, with its redis-server's (zero for the others)."""
    return load.server_cpu_s + load.store_cpu_s


# -- installs ---------------------------------------------------------------------------------------
def wiremock_jar() -> Path | None:
    jars = sorted((PEERS_DIR / "node_modules" / "wiremock").glob("**/wiremock-standalone-*.jar"))
    return jars[-1] if jars else None


def ensure_granian(skip: bool) -> str | None:
    """Why granian cannot be measured, or None. Installed into this venv only (not a dependency)."""
    if find_spec("granian") is not None:
        return None
    if skip:
        return "granian is not installed (--skip-install)"
    print("pip install granian (into this venv, for this measurement only) ...", flush=True)
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "granian"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        return f"pip install granian failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return None


def ensure_npm_peers(skip: bool) -> dict[str, str]:
    """Why Prism or WireMock cannot be measured, by key (empty when both can)."""
    if (not PRISM.exists() or wiremock_jar() is None) and not skip:
        if shutil.which("npm") is None:
            return {"prism": "npm is not on PATH", "wiremock": "npm is not on PATH"}
        print(f"npm install {' '.join(NPM_PACKAGES)} into {PEERS_DIR} ...", flush=True)
        PEERS_DIR.mkdir(exist_ok=True)
        argv = ["npm", "install", "--prefix", str(PEERS_DIR), "--no-audit", "--no-fund", "--loglevel=error"]
        done = subprocess.run([*argv, *NPM_PACKAGES], capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            print(f"npm install failed: {(done.stderr or done.stdout).strip()[-500:]}", flush=True)
    missing = {}
    how = "(--skip-install)" if skip else "(npm install failed)"
    if not PRISM.exists():
        missing["prism"] = f"{PRISM.relative_to(REPO_DIR)} is missing {how}"
    if wiremock_jar() is None:
        missing["wiremock"] = f"the wiremock npm package's jar is missing from {PEERS_DIR.relative_to(REPO_DIR)} {how}"
    elif shutil.which("java") is None:
        missing["wiremock"] = "java is not on PATH"
    return missing


# -- the servers ------------------------------------------------------------------------------------
def default_settings_env() -> str:
    """Settings() as sandbox.server.run hands them to its workers (paths as text, tuples as lists)."""
    settings = Settings()
    plain: dict[str, Any] = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, tuple):
            value = [str(item) if isinstance(item, Path) else item for item in value]
        plain[f.name] = str(value) if isinstance(value, Path) else value
    return json.dumps(plain)


def wiremock_root(scratch: Path) -> Path:
    """A --root-dir with the two stubs: POST /v1/payments/charge and GET /v1/payments/charge/{id}, each
    answering the baseline's fixed charge bytes."""
    root = scratch / "wiremock"
    (root / "mappings").mkdir(parents=True, exist_ok=True)
    reply = {"status": 200, "body": CHARGE.decode(), "headers": {"Content-Type": "application/json"}}
    stubs = {
        "charge-post": {"request": {"method": "POST", "url": "/v1/payments/charge"}, "response": reply},
        "charge-get": {"request": {"method": "GET", "urlPathPattern": "/v1/payments/charge/[^/]+"}, "response": reply},
    }
    for name, stub in stubs.items():
        (root / "mappings" / f"{name}.json").write_text(json.dumps(stub, indent=2))
    return root


def peers(scratch: Path, missing: dict[str, str]) -> list[Peer]:
    """Every server of the table, in its order; those in `missing` are left out."""
    python = sys.executable
    uvicorn_h11: tuple[str, ...] = (python, "-m", "uvicorn", "--http", "h11", "--host", HOST, "--log-level", "warning")
    uvicorn_h11 += ("--no-access-log", "--no-server-header", "--timeout-graceful-shutdown", "30")
    uvicorn_2w: tuple[str, ...] = (python, "-m", "uvicorn", "--http", "httptools", "--loop", "uvloop", "--workers", "2")
    uvicorn_2w += ("--host", HOST, "--log-level", "warning", "--no-access-log", "--no-server-header")
    granian: tuple[str, ...] = (python, "-m", "granian", "--interface", "asgi", "--http", "1", "--no-ws")
    granian += ("--workers", "1", "--host", HOST, "--log-level", "warning", "--no-access-log")
    sandbox_env = ((SETTINGS_ENV, default_settings_env()),)
    jar = wiremock_jar()
    wiremock: tuple[str, ...] = ("java", "-jar", str(jar), "--root-dir", str(wiremock_root(scratch)))
    wiremock += ("--bind-address", HOST, "--no-request-journal", "--disable-request-logging", "--disable-banner")
    prism = (str(PRISM), "mock", str(BUNDLED_SPEC), "--host", HOST, "-v", "silent")
    every = [
        Peer("baseline", "baseline app", "uvicorn httptools", BASELINE, note="bench/run.py's yardstick"),
        Peer(
            "baseline-2w",
            "baseline app, --workers 2",
            "uvicorn httptools",
            (*uvicorn_2w, "--lifespan", "off", "--app-dir", str(BENCH_DIR), "--factory", "baseline_app:create_app"),
            workers=2,
            note="what two processes of any app on this HTTP stack can reach here: the ceiling of the --workers 2 rows",
        ),
        Peer(
            "baseline-h11",
            "baseline app",
            "uvicorn h11",
            (*uvicorn_h11, "--lifespan", "off", "--app-dir", str(BENCH_DIR), "--factory", "baseline_app:create_app"),
        ),
        Peer(
            "baseline-granian",
            "baseline app",
            "granian",
            (*granian, "--working-dir", str(BENCH_DIR), "--factory", "baseline_app:create_app"),
        ),
        Peer(
            "sandbox",
            "payments-sandbox serve (memory)",
            "uvicorn httptools",
            serve=("--host", HOST, "--log-level", "warning"),
            fixed_get=False,
            note="memory store, 1 worker (the default)",
        ),
        Peer(
            "sandbox-sqlite-2w",
            "payments-sandbox serve --workers 2 (SQLite)",
            "uvicorn httptools",
            serve=("--host", HOST, "--log-level", "warning", "--store", STORE_URL, "--workers", "2"),
            workers=2,
            store="sqlite",
            fixed_get=False,
            note="a new SQLite file; cores: supervisor and workers (each worker's share in brackets)",
        ),
        Peer(
            "sandbox-redis-2w",
            "payments-sandbox serve --workers 2 (Redis)",
            "uvicorn httptools",
            serve=("--host", HOST, "--log-level", "warning", "--store", STORE_URL, "--workers", "2"),
            workers=2,
            store="redis",
            fixed_get=False,
            note="a redis-server of the run's own (no persistence); cores and req/CPU-s include redis-server's",
        ),
        Peer(
            "sandbox-h11",
            "sandbox app",
            "uvicorn h11",
            (*uvicorn_h11, "--lifespan", "on", "--no-proxy-headers", "--factory", "sandbox.server:worker_app"),
            env=sandbox_env,
            fixed_get=False,
            note=NO_DEADLINES,
        ),
        Peer(
            "sandbox-granian",
            "sandbox app",
            "granian",
            (*granian, "--factory", "sandbox.server:worker_app"),
            env=sandbox_env,
            fixed_get=False,
            note=NO_DEADLINES,
        ),
        Peer(
            "prism",
            "Stoplight Prism",
            "Node http",
            prism,
            prefix="",
            probe=f"/charge/{GET_ID}",
            note="static examples of openapi.json (loaded on /charge and /charge/{id}: Prism does not route the "
            "server URL's /v1/payments); validates each request and its own reply",
        ),
        Peer(
            "wiremock",
            "WireMock",
            "Jetty (JVM)",
            wiremock,
            probe=f"/v1/payments/charge/{GET_ID}",
            note="two canned stubs, the baseline's charge bytes; no request journal; JVM defaults",
        ),
    ]
    return [peer for peer in every if peer.key not in missing]


def probed(path: str) -> type[ServerProcess]:
    """A ServerProcess that is up when GET `path`, with the bench token, answers 200 (for servers
    without the sandbox's health endpoint)."""

    class Probed(ServerProcess):
        def healthy(self, timeout: float = 10.0) -> bool:
            try:
                return request(self.port, "GET", path, timeout=timeout)[0] == 200
            except (OSError, http.client.HTTPException):
                return False

    return Probed


def launch(peer: Peer, logs: Path, store_url: str) -> contextlib.AbstractContextManager[ServerProcess]:
    """The server, healthy, as a context manager that stops it: harness.running() where it fits."""
    if peer.serve is not None:
        flags = tuple(store_url if flag == STORE_URL else flag for flag in peer.serve)
        return running(peer.key, logs, *flags, workers=peer.workers)
    if peer.probe == HEALTH and not peer.env:
        return running(peer.key, logs, program=peer.argv, workers=peer.workers)
    return probed(peer.probe).start(
        (),
        program=peer.argv,
        env=dict(peer.env),
        inherit_settings=False,
        log_dir=logs,
        name=peer.key,
        cwd=REPO_DIR,
        die_with_parent=True,
    )


def reply_bytes(port: int, method: str, path: str, body: str | None) -> int:
    """The size of one answer's body."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = dict(h.split(": ", 1) for h in HEADERS if body is not None or not h.startswith("Content-Type"))
        conn.request(method, path, body=body, headers=headers)
        return len(conn.getresponse().read())
    finally:
        conn.close()


# -- the run ----------------------------------------------------------------------------------------
@dataclass
class Plan:
    duration: float
    warmup: float
    rounds: int


def cold_starts(every: list[Peer], logs: Path, urls: dict[str, str], results: dict[str, Result]) -> None:
    """Spawn -> first 200, SPAWNS times each, the servers taken in turn."""
    for _ in range(SPAWNS):
        for peer in every:
            result = results[peer.key]
            if result.broken:
                continue
            try:
                with launch(peer, logs, urls.get(peer.store or "", "")) as server:
                    result.cold_start_s.append(round(server.start_seconds, 4))
            except (RuntimeError, OSError) as exc:
                result.broken = f"did not start: {str(exc).splitlines()[0][:300]}"


def measure_all(
    every: list[Peer],
    plan: Plan,
    gen: LoadGenerator,
    logs: Path,
    urls: dict[str, str],
    redis: RedisServer | None,
    results: dict[str, Result],
) -> None:
    """All servers up at once; warm-up, then rounds of every (operation, server)."""
    with contextlib.ExitStack() as stack:
        up: dict[str, tuple[Peer, ServerProcess, dict[str, tuple[str, str, str | None]]]] = {}
        for peer in every:
            result = results[peer.key]
            if result.broken:
                continue
            try:
                server = stack.enter_context(launch(peer, logs, urls.get(peer.store or "", "")))
                charge_id = GET_ID if peer.fixed_get else create_charge(server.port)
            except (RuntimeError, OSError) as exc:
                result.broken = f"did not start: {str(exc).splitlines()[0][:300]}"
                continue
            ops = {op: (op, peer.path(op, charge_id), CHARGE_BODY if op == "POST" else None) for op in OPS}
            result.reply_bytes = {op: reply_bytes(server.port, *spec) for op, spec in ops.items()}
            up[peer.key] = (peer, server, ops)
        keys = list(up)
        print(f"warm-up, {plan.warmup:g} s each ...", flush=True)
        for op in OPS:
            for key in keys:
                peer, server, ops = up[key]
                store = redis if peer.store == "redis" else None
                results[key].warmup[op] = measure(gen, server, ops[op], CONNECTIONS, plan.warmup, store)
        for number in range(plan.rounds):
            order = keys[number % len(keys) :] + keys[: number % len(keys)] if keys else []
            print(f"round {number + 1} of {plan.rounds} ...", flush=True)
            for op in OPS:
                for key in order:
                    peer, server, ops = up[key]
                    store = redis if peer.store == "redis" else None
                    others = [srv.pid for other, (_, srv, _) in up.items() if other != key]
                    if redis is not None and store is None:
                        others.append(redis.proc.pid)
                    idle = idle_cpu_seconds(others)
                    load = measure(gen, server, ops[op], CONNECTIONS, plan.duration, store)
                    idle = idle_cpu_seconds(others) - idle
                    results[key].runs.setdefault(op, []).append(load)
                    results[key].idle_cores.setdefault(op, []).append(round(load.cores(idle), 3))
                    print(f"  {op:<4} {key:<18} {load.rps:>9,.0f} req/s  cores {load.cores(cpu_seconds(load)):.2f}")


def idle_cpu_seconds(pids: list[int]) -> float:
    """CPU time so far of these process trees: the servers not under load, which stay up meanwhile."""
    return sum(sum(tree_cpu_seconds(pid).values()) for pid in pids)


# -- report -----------------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for package in ("payments-sandbox", "uvicorn", "httptools", "h11", "uvloop", "starlette", "granian", "redis"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    for name, package in (("prism", "@stoplight/prism-cli"), ("wiremock (npm)", "wiremock")):
        manifest = PEERS_DIR / "node_modules" / package / "package.json"
        with contextlib.suppress(OSError, ValueError):
            out[name] = str(json.loads(manifest.read_text())["version"])
    jar = wiremock_jar()
    if jar is not None:
        out["wiremock jar"] = jar.name
    for name, argv in (("node", ["node", "--version"]), ("java", ["java", "-version"])):
        with contextlib.suppress(OSError):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            out[name] = ((done.stdout or done.stderr).strip().splitlines() or [""])[0]
    return out


def fmt_cores(load: Load) -> str:
    text = f"{load.cores(cpu_seconds(load)):.2f}"
    if len(load.worker_cpu_s) > 1 or load.store_cpu_s:
        text += " (" + " + ".join(f"{load.cores(cpu):.2f}" for cpu in load.worker_cpu_s)
        text += f" + redis {load.cores(load.store_cpu_s):.2f})" if load.store_cpu_s else ")"
    return text


def markdown(report: dict[str, Any], results: list[Result]) -> str:
    machine, plan, vers = report["machine"], report["plan"], report["versions"]
    wrk = machine["load_generator"].split(" Copyright")[0]
    idle = max((cores for result in results for runs in result.idle_cores.values() for cores in runs), default=0.0)
    lines = [
        "## Peers and HTTP layers (issue 14)",
        "",
        f"`{report['command']}` on {report['date']} at commit {machine['commit']}, {report['elapsed_s']:.0f} s. "
        f"Machine: `nproc` {machine['nproc']}, CPU {machine['cpu']} (`/proc/cpuinfo`), kernel {machine['kernel']}, "
        f"Python {machine['python']}. Load: {wrk}, 1 thread, {CONNECTIONS} connections, "
        f"{plan['duration']:g} s per run; per server and operation a {plan['warmup']:g} s warm-up run (discarded), "
        f"then {plan['rounds']} round(s) with every server up and taken in turn (order rotated each round); the "
        "median run by req/s is shown. cores = server CPU-seconds / wall (process tree, /proc); req/CPU-s = "
        "requests / server CPU-seconds. failed = non-2xx answers + socket errors, warm-up runs included. "
        f"Cold start: spawn -> first 200, median of {SPAWNS}. The servers not under load used at most "
        f"{idle:.2f} cores in any run.",
        "",
        "| # | server | HTTP layer | op | req/s | p50 ms | p99 ms | cores | req/CPU-s | failed | cold start s |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for number, result in enumerate(results, 1):
        if result.broken:
            lines.append(f"| {number} | {result.label} | {result.layer} | | | | | | | | {result.broken} |")
            continue
        cold = f"{statistics.median(result.cold_start_s):.3f}" if result.cold_start_s else ""
        for op in OPS:
            load = result.median(op)
            if load is None:
                continue
            per_cpu = load.requests / cpu_seconds(load) if cpu_seconds(load) else 0.0
            lines.append(
                f"| {number} | {result.label} | {result.layer} | {op} | {load.rps:,.0f} | {load.p50_ms:.2f} | "
                f"{load.p99_ms:.2f} | {fmt_cores(load)} | {per_cpu:,.0f} | {result.failed(op)} | "
                f"{cold if op == 'POST' else ''} |"
            )
    lines += ["", "| # | command (P: a free port) | reply bytes POST / GET | note |", "|---|---|---|---|"]
    for number, result in enumerate(results, 1):
        size = " / ".join(str(result.reply_bytes.get(op, "")) for op in OPS) if result.reply_bytes else ""
        lines.append(f"| {number} | `{result.command}` | {size} | {result.note} |")
    lines += ["", "Versions: " + ", ".join(f"{name} {version}" for name, version in vers.items()) + "."]
    if report["warnings"]:
        lines += ["", *(f"- warning: {warning}" for warning in report["warnings"])]
    return "\n".join(lines) + "\n"


def warnings(results: list[Result]) -> list[str]:
    out = []
    for result in results:
        if result.broken:
            out.append(f"{result.label} on {result.layer}: {result.broken}")
        for op in OPS:
            if result.failed(op):
                out.append(f"{result.label} on {result.layer}, {op}: {result.failed(op)} failed requests")
            for load, idle in zip(result.runs.get(op, []), result.idle_cores.get(op, []), strict=False):
                if load.others_busy - idle > 0.1:
                    out.append(
                        f"{result.label} on {result.layer}, {op}: processes not of this run took "
                        f"{load.others_busy - idle:.2f} cores during a run"
                    )
                    break
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per server and operation (default 3)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of the discarded first run (default 3)")
    parser.add_argument("--skip-install", action="store_true", help="no pip/npm install: use what is there")
    parser.add_argument("--json", type=Path, help="also write every run here")
    parser.add_argument("--markdown", type=Path, help="also write the RESULTS.md section here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not on PATH (apt-get install wrk)")
    # SIGTERM unwinds like Ctrl-C, so that every server started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.perf_counter()
    plan = Plan(args.duration, args.warmup, args.rounds)
    missing = ensure_npm_peers(args.skip_install)
    if (why := ensure_granian(args.skip_install)) is not None:
        missing |= {"baseline-granian": why, "sandbox-granian": why}
    if (why := redis_available()) is not None:
        missing["sandbox-redis-2w"] = why
    with tempfile.TemporaryDirectory(prefix="sandbox-peers-") as tmp, contextlib.ExitStack() as stack:
        scratch = Path(tmp)
        gen = choose_generator("wrk", scratch)
        every = peers(scratch, missing)
        redis = stack.enter_context(redis_server(scratch)) if "sandbox-redis-2w" not in missing else None
        urls = {"sqlite": f"sqlite:///{scratch / 'peers.db'}", "redis": redis.url if redis else ""}
        results = {p.key: Result(p.key, p.label, p.layer, p.command(scratch), p.note) for p in every}
        print(f"cold start, {SPAWNS} spawns each ...", flush=True)
        cold_starts(every, scratch, urls, results)
        measure_all(every, plan, gen, scratch, urls, redis, results)
        command = "python bench/peers.py " + " ".join(sys.argv[1:] if argv is None else argv)
        report: dict[str, Any] = {
            "command": command.strip(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "machine": machine_info(gen),
            "plan": asdict(plan),
            "versions": versions(),
            "left_out": missing,
        }
    ordered = list(results.values())
    report["warnings"] = [f"left out: {key}: {why}" for key, why in missing.items()] + warnings(ordered)
    report["elapsed_s"] = round(time.perf_counter() - began, 1)
    text = markdown(report, ordered)
    print()
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        report["results"] = [asdict(result) for result in ordered]
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
