"""What every measurement of `bench/run.py` stands on: servers started and stopped, requests, load runs.

`running()` starts one process tree (the sandbox, its `--workers`, or the baseline app) on a free
port of 127.0.0.1 through `sandbox.launcher`, and stops it with SIGTERM. `measure()` runs one load-generator
process against it (`wrk` when it is on PATH, else `bench/loadgen.py`) and records, besides req/s
and latency percentiles, the CPU time spent meanwhile by the server tree (per worker too), by the
load generator and, when given, by the store's own server (redis-server): on a 2-core machine those
three share the cores, and the figures only mean something next to who had the CPU.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procs import RedisServer, machine_busy_seconds, tree_cpu_seconds

from sandbox.launcher import HOST, ServerProcess

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
TOKEN = "sk_test_bench"
CHARGE_BODY = '{"amount":1500,"currency":"USD","description":"bench charge","metadata":{"order_id":"ord_123"}}'
HEADERS = (f"Authorization: Bearer {TOKEN}", "Content-Type: application/json")
POST = ("POST", "/v1/payments/charge", CHARGE_BODY)


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
    p999_ms: float = 0.0  # wrk only (bench/loadgen.py reports p50 and p99)
    max_ms: float = 0.0  # wrk only
    server_cpu_s: float = 0.0  # CPU time the server's process tree spent during the run
    worker_cpu_s: list[float] = field(default_factory=list)  # per worker process, with --workers N
    client_cpu_s: float = 0.0  # the load generator's CPU time
    store_cpu_s: float = 0.0  # redis-server's CPU time, for the Redis rows
    store_commands: dict[str, int] = field(default_factory=dict)  # redis-server's calls of each command meanwhile
    machine_cpu_s: float = 0.0  # CPU time of the whole machine (every process, all cores) during the run

    @property
    def ok_rps(self) -> float:
        """Answers a second that were 2xx: a store that fails fast must not look fast."""
        return max(self.requests - self.non_2xx, 0) / self.seconds if self.seconds else 0.0

    @property
    def per_cpu_second(self) -> float:
        """Requests per CPU-second of the server: unlike req/s, barely moved by other load on the machine."""
        return self.requests / self.server_cpu_s if self.server_cpu_s else 0.0

    def cores(self, cpu_seconds: float) -> float:
        """CPU seconds as a share of one core over this run: 1.0 is a core kept busy the whole time."""
        return cpu_seconds / self.seconds if self.seconds else 0.0

    @property
    def others_busy(self) -> float:
        """Cores used meanwhile by processes other than the server, the load generator and redis-server:
        work of other people on a shared machine, which the run cannot stop but can see."""
        mine = self.server_cpu_s + self.client_cpu_s + self.store_cpu_s
        return max(self.cores(self.machine_cpu_s - mine), 0.0)

    @property
    def server_busy(self) -> float:
        """The share of one core the server used: near 1.0 means the load generator kept it saturated."""
        return self.cores(self.server_cpu_s)


# -- servers ----------------------------------------------------------------------------------------
SANDBOX_FLAGS = ("--host", HOST, "--log-level", "warning")
BASELINE = (sys.executable, str(BENCH_DIR / "baseline_app.py"), "--host", HOST)


@contextlib.contextmanager
def running(
    name: str, logs: Path, *flags: str, workers: int = 1, program: Sequence[str] | None = None
) -> Iterator[ServerProcess]:
    """`payments-sandbox serve` with `flags` (a --store, --workers), or `program` (BASELINE), on a
    free port (sandbox.launcher), healthy; stopped with SIGTERM on the way out. The shell's
    PAYMENTS_SANDBOX_* variables are dropped, so that every run serves the defaults."""
    args = flags if program else (*SANDBOX_FLAGS, *flags)
    with ServerProcess.start(
        args, program=program, name=name, log_dir=logs, cwd=REPO_DIR, inherit_settings=False
    ) as server:
        if workers > 1:
            wait_workers(server, workers)
        yield server


def wait_workers(server: ServerProcess, workers: int, timeout: float = 30.0) -> None:
    """The first 200 comes from whichever worker is up first. Wait for all of them to exist and
    for their start (about 0.25 s of CPU each) to end: a load run that opened its connections
    while one worker was still importing would hand every connection to the other."""
    deadline, previous = time.perf_counter() + timeout, None
    while True:
        cpu = {pid: seconds for pid, seconds in tree_cpu_seconds(server.pid).items() if pid != server.pid}
        if len(cpu) >= workers and cpu == previous:  # all there, and none of them busy starting
            break
        if time.perf_counter() > deadline or server.proc.poll() is not None:
            raise RuntimeError(f"{server.name}: {workers} workers did not start; see {server.log_path}")
        previous = cpu
        time.sleep(0.1)  # CPU time moves in 10 ms ticks: a worker still importing moves it within this
    for _ in range(10):  # and every one of them answers through the shared socket
        if request(server.port, "GET", "/__sandbox/health", timeout=5.0)[0] != 200:
            raise RuntimeError(f"{server.name}: a worker is not healthy; see {server.log_path}")


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


def create_charge(port: int) -> str:
    """A charge's id, for the GET runs."""
    status, charge = request(port, "POST", "/v1/payments/charge", CHARGE_BODY)
    if status != 200:
        raise RuntimeError(f"the sandbox answered {status} to a plain charge: {charge}")
    return str(charge["id"])


# -- load generators --------------------------------------------------------------------------------
WRK_SCRIPT = """\
wrk.method = "{method}"
{body}
{headers}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {{"requests":%d,"seconds":%.6f,"p50_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f,' ..
    '"errors":%d,"non_2xx":%d}}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of ASCII text is a valid Lua string literal


def median_run(runs: list[Load]) -> Load:
    return sorted(runs, key=lambda load: load.rps)[len(runs) // 2]


def round_ratios(tops: list[Load], bottoms: list[Load], of: str = "ok_rps") -> list[float]:
    """`of` (a Load figure) of each round's top run over the same round's bottom run. The servers
    of a row take turns within a round so that a spell of a busier machine hits both: a ratio is
    taken within a round, never across (the median top over the median bottom can pair runs minutes
    apart: one run 2026-12-04 read 0.76x for rounds of 1.06x, 0.64x and 1.15x)."""
    return [
        getattr(top, of) / getattr(bottom, of) if getattr(bottom, of) else 0.0
        for top, bottom in zip(tops, bottoms, strict=True)
    ]


def paired_ratio(tops: list[Load], bottoms: list[Load], of: str = "ok_rps") -> float:
    """The median of `round_ratios`."""
    ratios = sorted(round_ratios(tops, bottoms, of))
    if not ratios:
        return 0.0
    middle = len(ratios) // 2
    return ratios[middle] if len(ratios) % 2 else (ratios[middle - 1] + ratios[middle]) / 2


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


def children_cpu_seconds() -> float:
    """CPU time of every child process this one has waited for: a load generator's, once it has ended."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    gen: LoadGenerator,
    server: ServerProcess,
    op: tuple[str, str, str | None],
    connections: int,
    duration: float,
    store: RedisServer | None = None,
) -> Load:
    """One load run of `op` (method, path, body) against `server`, with who spent what CPU meanwhile."""
    method, path, body = op
    server_before = tree_cpu_seconds(server.pid)
    store_before = (store.cpu_seconds(), store.command_calls()) if store else (0.0, {})
    client_before = children_cpu_seconds()  # the generator is a child that ends inside gen.run
    machine_before = machine_busy_seconds()
    load = gen.run(server.port, method, path, body, connections, duration)
    load.machine_cpu_s = round(machine_busy_seconds() - machine_before, 3)
    client_after, server_after = children_cpu_seconds(), tree_cpu_seconds(server.pid)
    spent = {pid: cpu - server_before.get(pid, 0.0) for pid, cpu in server_after.items()}
    load.server_cpu_s = round(sum(spent.values()), 3)
    # The workers are the supervisor's descendants that did work; a helper such as multiprocessing's
    # resource tracker, idle throughout, would only add a zero to the split.
    load.worker_cpu_s = [round(cpu, 3) for pid, cpu in sorted(spent.items()) if pid != server.pid and cpu > 0.05]
    load.client_cpu_s = round(client_after - client_before, 3)
    if store:
        load.store_cpu_s = round(store.cpu_seconds() - store_before[0], 3)
        after = store.command_calls()
        calls = {name: count - store_before[1].get(name, 0) for name, count in after.items()}
        load.store_commands = {name: count for name, count in sorted(calls.items()) if count}
    return load


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
