"""The payments-sandbox benchmark: one run measures everything issue 5's "Performance" asks for.

    python bench/run.py [--quick] [--duration S] [--connections N] [--rounds R] [--json out.json]

What it does, in order, all on 127.0.0.1:

1. Cold start: spawns `payments-sandbox serve` five times and times spawn -> first 200 from
   `/__sandbox/health` (median reported); the same for the baseline app, for reference.
2. Throughput: starts the sandbox and `bench/baseline_app.py` (a bare Starlette app returning fixed
   bytes on the same uvicorn stack) and loads POST /v1/payments/charge and GET /v1/payments/charge/{id}
   on each from a separate load-generator process: `wrk` when it is on PATH, else `bench/loadgen.py`.
   Each (operation, server) pair gets a discarded warm-up run, then `--rounds` measured runs; the
   median run by req/s is reported, with its p50/p99 latency.
3. Memory: a fresh sandbox. Idle RSS right after it is healthy. Then 10,000 warm-up charges (they
   fill the bounded request journal, whose 10,000 entries are a fixed cost, not a per-charge one),
   then N more charges (100k; 20k with --quick); bytes per charge = RSS growth / N.
4. Listing: the same sandbox is filled to 1M charges (30k with --quick) and GET /v1/payments/charges
   at offset 0 and at a deep offset (900k; N-100 with --quick) are timed from one connection that
   sends the two in turn (so a busy moment on the machine slows both alike); the deep/shallow
   ratio of the p50s is reported. The full run fills through the control API's
   /__sandbox/seed when the sandbox has it (about twice as fast as POSTs), else through POSTs.

The machine has 2 cores: the server under test is one process on one event loop (one core), and
the load generator is one process (one wrk thread, or one Python event loop) with 32 keep-alive
connections, so the client has the other core. Nothing is pinned. More connections only add
queueing latency; fewer can leave the server idle between requests.

Throughput is reported twice: req/s (what the targets are about) and requests per CPU-second of
the server process (read from /proc), which other load on the machine barely moves. The run
measures how much CPU other processes used meanwhile and warns when it was more than 10%.

--quick finishes in about a minute on an idle machine; the full run in about eight.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
HOST = "127.0.0.1"
TOKEN = "sk_test_bench"
CHARGE_BODY = '{"amount":1500,"currency":"USD","description":"bench charge","metadata":{"order_id":"ord_123"}}'
HEADERS = (f"Authorization: Bearer {TOKEN}", "Content-Type: application/json")
JOURNAL_WARMUP = 10_000  # the sandbox's default --journal-size
SEED_BATCH = 10_000  # the control API's largest seed request
PACKAGES = (
    "payments-sandbox",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "jsonschema",
    "openapi-schema-validator",
)

# Targets from issue 5, "Performance".
TARGET_POST_RATIO = 0.5
TARGET_GET_RATIO = 0.7
TARGET_COLD_START_S = 0.6
TARGET_IDLE_RSS_MB = 60.0
TARGET_BYTES_PER_CHARGE = 1024.0
TARGET_LIST_RATIO = 2.0


@dataclass
class Mode:
    quick: bool
    duration: float
    warmup: float
    rounds: int
    connections: int
    spawns: int
    stored: int  # charges measured for RSS, after the journal warm-up
    listed: int  # charges in the tenant for the listing test
    list_duration: float
    fill: str  # "post" or "seed" (falls back to "post")


@dataclass
class Load:
    """One load-generator run."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int
    server_cpu_s: float = 0.0  # CPU time the server process spent during the run

    @property
    def per_cpu_second(self) -> float:
        """Requests per CPU-second of the server: unlike req/s, barely moved by other load on the machine."""
        return self.requests / self.server_cpu_s if self.server_cpu_s else 0.0

    @property
    def server_busy(self) -> float:
        """The share of one core the server used: near 1.0 means the load generator kept it saturated."""
        return self.server_cpu_s / self.seconds if self.seconds else 0.0


@dataclass
class Row:
    name: str
    value: float
    unit: str
    target: str = ""
    passed: bool | None = None
    detail: str = ""
    digits: int = 2


@dataclass
class Report:
    machine: dict[str, Any]
    command: str
    mode: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# -- servers ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def sandbox_argv(port: int) -> list[str]:
    exe = shutil.which("payments-sandbox") or str(Path(sys.executable).with_name("payments-sandbox"))
    if not Path(exe).exists():
        return [sys.executable, "-m", "sandbox", "serve", "--host", HOST, "--port", str(port), "--log-level", "warning"]
    return [exe, "serve", "--host", HOST, "--port", str(port), "--log-level", "warning"]


def baseline_argv(port: int) -> list[str]:
    return [sys.executable, str(BENCH_DIR / "baseline_app.py"), "--host", HOST, "--port", str(port)]


def clean_env() -> dict[str, str]:
    """The environment without PAYMENTS_SANDBOX_* knobs, so every run serves the defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PAYMENTS_SANDBOX_")}


class Server:
    def __init__(self, name: str, argv: list[str], port: int, logs: Path) -> None:
        self.name = name
        self.port = port
        self.log_path = logs / f"{name}-{port}.log"
        self._log = self.log_path.open("wb")
        started = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=clean_env(), cwd=REPO_DIR)
        self.start_seconds = wait_healthy(self, started)
        self.start_cpu_seconds = self.cpu_seconds()

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for pid {self.proc.pid}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def wait_healthy(server: Server, started: float, timeout: float = 30.0) -> float:
    """Seconds from `started` to the first 200 from the health endpoint."""
    while True:
        if server.proc.poll() is not None:
            tail = server.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode} before it was healthy:\n{tail}")
        try:
            status, _ = request(server.port, "GET", "/__sandbox/health", timeout=1.0)
        except OSError:
            status = 0
        if status == 200:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{server.name} was not healthy after {timeout} s; see {server.log_path}")
        time.sleep(0.002)


@contextlib.contextmanager
def running(name: str, argv: list[str], port: int, logs: Path) -> Iterator[Server]:
    server = Server(name, argv, port, logs)
    try:
        yield server
    finally:
        server.stop()


def request(
    port: int, method: str, path: str, body: str | None = None, timeout: float = 60.0
) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = dict(h.split(": ", 1) for h in HEADERS)
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        return response.status, data if isinstance(data, dict) else {}
    finally:
        conn.close()


def charge_count(port: int) -> int:
    status, data = request(port, "GET", "/v1/payments/charges?limit=1")
    if status != 200:
        raise RuntimeError(f"listing charges answered {status}: {data}")
    return int(data["total"])


# -- load generators --------------------------------------------------------------------------------
WRK_SCRIPT = """\
wrk.method = "{method}"
{body}
{headers}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {{"requests":%d,"seconds":%.6f,"p50_ms":%.3f,"p99_ms":%.3f,"errors":%d,"non_2xx":%d}}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of ASCII text is a valid Lua string literal


class LoadGenerator:
    def __init__(self, kind: str, scratch: Path) -> None:
        self.kind = kind
        self.scratch = scratch

    def version(self) -> str:
        if self.kind == "python":
            return f"bench/loadgen.py on Python {platform.python_version()}"
        done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        return (done.stdout or done.stderr).splitlines()[0].strip()

    def run(self, port: int, method: str, path: str, body: str | None, connections: int, duration: float) -> Load:
        if self.kind == "wrk":
            return self._wrk(port, method, path, body, connections, duration)
        return python_load(port, method, path, body, connections, duration=duration)

    def _wrk(self, port: int, method: str, path: str, body: str | None, connections: int, duration: float) -> Load:
        script = self.scratch / f"{method.lower()}.lua"
        headers = [h.split(": ", 1) for h in HEADERS if body is not None or not h.startswith("Content-Type")]
        script.write_text(
            WRK_SCRIPT.format(
                method=method,
                body=f"wrk.body = {_lua_string(body)}" if body is not None else "",
                headers="\n".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers),
            )
        )
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "-s"]
        argv += [str(script), f"http://{HOST}:{port}{path}"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
        for line in done.stdout.splitlines():
            if line.startswith("BENCHJSON "):
                data = json.loads(line.removeprefix("BENCHJSON "))
                data["rps"] = round(data["requests"] / data["seconds"], 1) if data["seconds"] else 0.0
                return Load(**data)
        raise RuntimeError(f"wrk gave no result (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")


def python_load(
    port: int,
    method: str,
    path: str,
    body: str | None,
    connections: int,
    duration: float = 10.0,
    count: int | None = None,
) -> Load:
    data = loadgen(port, method, [path], body, connections, duration, count)
    return Load(**data)


def loadgen(
    port: int,
    method: str,
    paths: Sequence[str],
    body: str | None,
    connections: int,
    duration: float = 10.0,
    count: int | None = None,
) -> dict[str, Any]:
    """Run bench/loadgen.py in its own process; its JSON result."""
    argv = [sys.executable, str(BENCH_DIR / "loadgen.py"), "--host", HOST, "--port", str(port)]
    argv += ["--method", method, "--connections", str(connections)]
    for path in paths:
        argv += ["--path", path]
    for header in HEADERS:
        if body is not None or not header.startswith("Content-Type"):
            argv += ["--header", header]
    if body is not None:
        argv += ["--body", body]
    if count is None:
        argv += ["--duration", str(duration)]
        limit = duration + 60
    else:
        argv += ["--count", str(count)]
        limit = 120 + count / 100  # even at 100 req/s; a stuck server still ends the run
    done = subprocess.run(argv, capture_output=True, text=True, timeout=limit, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def choose_generator(wanted: str, scratch: Path) -> LoadGenerator:
    if wanted == "wrk" and shutil.which("wrk") is None:
        raise SystemExit("--loadgen wrk: wrk is not on PATH (apt-get install wrk)")
    kind = "wrk" if wanted == "wrk" or (wanted == "auto" and shutil.which("wrk")) else "python"
    return LoadGenerator(kind, scratch)


# -- measurements -----------------------------------------------------------------------------------
def measure_cold_start(mode: Mode, logs: Path) -> dict[str, list[float]]:
    """Seconds from spawn to healthy, and the CPU seconds the server spent getting there."""
    times: dict[str, list[float]] = {"sandbox": [], "baseline": [], "sandbox_cpu": [], "baseline_cpu": []}
    for _ in range(mode.spawns):
        for name, argv in (("sandbox", sandbox_argv), ("baseline", baseline_argv)):
            port = free_port()
            with running(name, argv(port), port, logs) as server:
                times[name].append(round(server.start_seconds, 4))
                times[f"{name}_cpu"].append(round(server.start_cpu_seconds, 3))
    return times


def measure_throughput(mode: Mode, gen: LoadGenerator, logs: Path, report: Report) -> dict[str, dict[str, Load]]:
    sandbox_port, baseline_port = free_port(), free_port()
    results: dict[str, dict[str, Load]] = {}
    with (
        running("sandbox", sandbox_argv(sandbox_port), sandbox_port, logs) as sandbox,
        running("baseline", baseline_argv(baseline_port), baseline_port, logs) as baseline,
    ):
        status, charge = request(sandbox_port, "POST", "/v1/payments/charge", CHARGE_BODY)
        if status != 200:
            raise RuntimeError(f"the sandbox answered {status} to a plain charge: {charge}")
        ops = {
            "POST /charge": ("POST", "/v1/payments/charge", CHARGE_BODY),
            "GET /charge/{id}": ("GET", f"/v1/payments/charge/{charge['id']}", None),
        }
        servers = {"sandbox": sandbox, "baseline": baseline}
        for op, (method, path, body) in ops.items():
            runs: dict[str, list[Load]] = {name: [] for name in servers}
            for server in servers.values():
                gen.run(server.port, method, path, body, mode.connections, mode.warmup)
            for _ in range(mode.rounds):
                # Alternate the servers within a round so that drift (thermal, neighbours) hits both.
                for name, server in servers.items():
                    cpu = server.cpu_seconds()
                    load = gen.run(server.port, method, path, body, mode.connections, mode.duration)
                    load.server_cpu_s = round(server.cpu_seconds() - cpu, 3)
                    if load.errors or load.non_2xx:
                        report.warnings.append(f"{op} on {name}: {load.errors} errors, {load.non_2xx} non-2xx")
                    runs[name].append(load)
            for name in servers:
                ordered = sorted(runs[name], key=lambda load: load.rps)
                results.setdefault(op, {})[name] = ordered[len(ordered) // 2]
            report.raw.setdefault("throughput_runs", {})[op] = {n: [asdict(r) for r in rs] for n, rs in runs.items()}
    return results


def fill(port: int, target: int, strategy: str, connections: int, report: Report) -> str:
    """Bring the bench tenant to `target` charges; how it was done ("post" or "seed"; "post" without
    a charge to add when the memory step already stored enough)."""
    have = charge_count(port)
    if strategy == "seed":
        used_seed = False
        while have < target:
            count = min(SEED_BATCH, target - have)
            body = json.dumps({"count": count, "seed": have})
            status, _ = request(port, "POST", "/__sandbox/seed", body)
            if status != 200:
                if not used_seed:
                    report.warnings.append(f"/__sandbox/seed answered {status}; filling with POST /charge instead")
                    break
                raise RuntimeError(f"/__sandbox/seed answered {status} after {have:,} charges")
            used_seed = True
            have = charge_count(port)
        if used_seed and have >= target:
            return "seed"
    if have < target:
        load = python_load(port, "POST", "/v1/payments/charge", CHARGE_BODY, connections, count=target - have)
        if load.errors or load.non_2xx:
            report.warnings.append(f"filling: {load.errors} errors, {load.non_2xx} non-2xx")
    return "post"


def measure_memory_and_listing(mode: Mode, gen: LoadGenerator, logs: Path, report: Report) -> dict[str, Any]:
    port = free_port()
    out: dict[str, Any] = {}
    with running("sandbox", sandbox_argv(port), port, logs) as server:
        time.sleep(0.5)  # let the first health check's garbage settle
        out["idle_rss"] = server.rss_bytes()
        python_load(port, "POST", "/v1/payments/charge", CHARGE_BODY, mode.connections, count=JOURNAL_WARMUP)
        before_count, before_rss = charge_count(port), server.rss_bytes()
        started = time.perf_counter()
        load = python_load(port, "POST", "/v1/payments/charge", CHARGE_BODY, mode.connections, count=mode.stored)
        out["store_seconds"] = round(time.perf_counter() - started, 1)
        after_count, after_rss = charge_count(port), server.rss_bytes()
        if load.errors or load.non_2xx:
            report.warnings.append(f"storing charges: {load.errors} errors, {load.non_2xx} non-2xx")
        out.update(
            rss_before=before_rss,
            rss_after=after_rss,
            charges_before=before_count,
            charges_after=after_count,
            bytes_per_charge=(after_rss - before_rss) / max(after_count - before_count, 1),
        )
        started = time.perf_counter()
        out["fill"] = fill(port, mode.listed, mode.fill, mode.connections, report)
        out["fill_seconds"] = round(time.perf_counter() - started, 1)
        total = charge_count(port)
        out["listed"] = total
        out["rss_listed"] = server.rss_bytes()
        deep = max(total - 100, 0) if mode.quick else total * 9 // 10
        out["deep_offset"] = deep
        # One connection sends the two pages in turn, so a busy moment on the machine slows both alike.
        paths = [f"/v1/payments/charges?limit=20&offset={offset}" for offset in (0, deep)]
        loadgen(port, "GET", paths, None, 1, 1.0)
        listing = loadgen(port, "GET", paths, None, 1, mode.list_duration)
        if listing["errors"] or listing["non_2xx"]:
            report.warnings.append(f"listing: {listing['errors']} errors, {listing['non_2xx']} non-2xx")
        out["list_shallow"], out["list_deep"] = listing["by_request"]
    return out


# -- report -----------------------------------------------------------------------------------------
def machine_info(gen: LoadGenerator) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_DIR)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=REPO_DIR)
    return {
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
        "load_generator": gen.version(),
        "commit": commit.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else ""),
    }


def throughput_rows(op: str, sandbox: Load, baseline: Load, target: float) -> list[Row]:
    ratio = sandbox.rps / baseline.rps if baseline.rps else 0.0
    detail = f"sandbox {sandbox.rps:,.0f} req/s, baseline {baseline.rps:,.0f} req/s"
    detail += f" (server busy {sandbox.server_busy:.0%} / {baseline.server_busy:.0%} of a core)"
    per_cpu = sandbox.per_cpu_second / baseline.per_cpu_second if baseline.per_cpu_second else 0.0
    return [
        Row(f"{op} throughput", round(ratio, 3), "x baseline", f">= {target}x", ratio >= target, detail),
        Row(
            f"{op} req per server CPU-s",
            round(per_cpu, 3),
            "x baseline",
            f">= {target}x",
            per_cpu >= target,
            f"sandbox {sandbox.per_cpu_second:,.0f}, baseline {baseline.per_cpu_second:,.0f}",
        ),
    ] + [
        Row(f"{op} latency p50 ({who})", load.p50_ms, "ms", detail=f"p99 {load.p99_ms:.2f} ms")
        for who, load in (("sandbox", sandbox), ("baseline", baseline))
    ]


def cpu_busy_seconds() -> float:
    """CPU time the whole machine has been busy since boot, all cores together."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU time of this process and every child it has waited for (servers, load generators)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def build_rows(
    cold: dict[str, list[float]], throughput: dict[str, dict[str, Load]], memory: dict[str, Any]
) -> list[Row]:
    rows = []
    for op, target in (("POST /charge", TARGET_POST_RATIO), ("GET /charge/{id}", TARGET_GET_RATIO)):
        rows += throughput_rows(op, throughput[op]["sandbox"], throughput[op]["baseline"], target)
    start = statistics.median(cold["sandbox"])
    spawns = cold["sandbox"]
    detail = (
        f"{len(spawns)} spawns, min {min(spawns):.3f} max {max(spawns):.3f}, "
        f"CPU {statistics.median(cold['sandbox_cpu']):.3f} s; baseline {statistics.median(cold['baseline']):.3f} s, "
        f"CPU {statistics.median(cold['baseline_cpu']):.3f} s"
    )
    passed = start <= TARGET_COLD_START_S
    rows.append(Row("cold start (median)", round(start, 3), "s", f"<= {TARGET_COLD_START_S} s", passed, detail, 3))
    idle_mb = memory["idle_rss"] / 2**20
    passed = idle_mb <= TARGET_IDLE_RSS_MB
    rows.append(Row("idle RSS", round(idle_mb, 1), "MB", f"<= {TARGET_IDLE_RSS_MB:.0f} MB", passed, digits=1))
    per_charge = memory["bytes_per_charge"]
    stored = memory["charges_after"] - memory["charges_before"]
    rows.append(
        Row(
            "RSS per stored charge",
            round(per_charge),
            "bytes",
            f"<= {TARGET_BYTES_PER_CHARGE:.0f} bytes",
            per_charge <= TARGET_BYTES_PER_CHARGE,
            f"{per_charge * 100_000 / 2**20:.1f} MB per 100k; measured over {stored:,} charges after "
            f"{memory['charges_before']:,} warm-up",
            digits=0,
        )
    )
    shallow, deep = memory["list_shallow"]["p50_ms"], memory["list_deep"]["p50_ms"]
    list_ratio = deep / shallow if shallow else 0.0
    rows.append(
        Row(
            "list p50 deep / offset 0",
            round(list_ratio, 2),
            "x",
            f"<= {TARGET_LIST_RATIO}x",
            list_ratio <= TARGET_LIST_RATIO,
            f"offset 0: {shallow:.2f} ms, offset {memory['deep_offset']:,}: {deep:.2f} ms "
            f"of {memory['listed']:,} charges (filled by {memory['fill']})",
        )
    )
    return rows


def print_table(report: Report) -> None:
    print()
    print(f"payments-sandbox benchmark ({'quick' if report.mode['quick'] else 'full'})")
    machine = report.machine
    print(f"  {machine['nproc']} cores, {machine['cpu']}, Python {machine['python']}, {machine['load_generator']}")
    print(f"  {report.mode['connections']} connections, {report.mode['duration']} s x {report.mode['rounds']} rounds")
    print()
    width = max(len(row.name) for row in report.rows)
    print(f"{'metric':<{width}}  {'value':>10}  {'unit':<10}  {'target':<16}  result  detail")
    print("-" * (width + 60))
    for row in report.rows:
        result = "" if row.passed is None else "PASS" if row.passed else "FAIL"
        value = f"{row.value:,.{row.digits}f}"
        print(f"{row.name:<{width}}  {value:>10}  {row.unit:<10}  {row.target:<16}  {result:<6}  {row.detail}")
    for warning in report.warnings:
        print(f"warning: {warning}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark payments-sandbox against a bare Starlette app.")
    parser.add_argument("--quick", action="store_true", help="short run (about a minute), smaller stores")
    parser.add_argument("--duration", type=float, help="seconds per measured load run (default 10; 4 with --quick)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections (default 32)")
    parser.add_argument("--rounds", type=int, help="measured runs per server and operation (default 3; 1 quick)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto", help="default: wrk if found")
    parser.add_argument(
        "--fill", choices=("post", "seed"), help="how to fill for the listing test (default: post quick, else seed)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    quick: bool = args.quick
    mode = Mode(
        quick=quick,
        duration=args.duration or (4.0 if quick else 10.0),
        warmup=1.0 if quick else 2.0,
        rounds=args.rounds or (1 if quick else 3),
        connections=args.connections,
        spawns=5,
        stored=20_000 if quick else 100_000,
        listed=30_000 if quick else 1_000_000,
        list_duration=2.0 if quick else 5.0,
        fill=args.fill or ("post" if quick else "seed"),
    )
    began, busy, own = time.perf_counter(), cpu_busy_seconds(), own_cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as tmp:
        scratch = Path(tmp)
        gen = choose_generator(args.loadgen, scratch)
        command = "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
        report = Report(machine_info(gen), command.strip(), asdict(mode))
        print(f"load generator: {report.machine['load_generator']}", flush=True)
        phases: dict[str, float] = {}
        print("cold start ...", flush=True)
        cold = measure_cold_start(mode, scratch)
        phases["cold_start"] = round(time.perf_counter() - began, 1)
        print("throughput ...", flush=True)
        throughput = measure_throughput(mode, gen, scratch, report)
        phases["throughput"] = round(time.perf_counter() - began - sum(phases.values()), 1)
        print("memory and listing ...", flush=True)
        memory = measure_memory_and_listing(mode, gen, scratch, report)
        phases["memory_and_listing"] = round(time.perf_counter() - began - sum(phases.values()), 1)
    elapsed = time.perf_counter() - began
    others = (cpu_busy_seconds() - busy) - (own_cpu_seconds() - own)
    share = max(others, 0.0) / (elapsed * (os.cpu_count() or 1))
    if share > 0.1:
        report.warnings.append(
            f"other processes kept {share:.0%} of the machine's CPU busy during the run: req/s and latencies "
            "are depressed and noisy; the req per server CPU-s ratios are the steadier comparison"
        )
    report.rows = build_rows(cold, throughput, memory)
    report.raw.update(
        cold_start_seconds=cold,
        throughput={op: {n: asdict(r) for n, r in by.items()} for op, by in throughput.items()},
        memory={k: asdict(v) if isinstance(v, Load) else v for k, v in memory.items()},
        elapsed_seconds=round(elapsed, 1),
        phase_seconds=phases,
        other_processes_cpu_share=round(share, 3),
    )
    print_table(report)
    print(f"\nfinished in {report.raw['elapsed_seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
