"""The shared stores' rows of `bench/run.py`: SQLite and Redis, one worker and `--workers 2`.

Each configuration gets a store of its own (a new SQLite file in the run's temp folder; a new
redis-server without persistence), so no row inherits another's charges. With one worker:
POST /charge (a discarded warm-up run, then `rounds` measured runs, the median by req/s kept) and
GET /charge/{id} (the same, without its own warm-up: the POSTs just warmed that process, its
connections and the store), each run beside a run of the same request against the bare Starlette
baseline (right after it, and right before it every other round): the ratio is the median of each
round's own (a ratio to a baseline measured minutes earlier would move with whatever else the
machine did meanwhile). With two workers: POST only, compared
with one worker of the same store.

On the project's 2-core machine the workers share the cores with the load generator (0.05-0.2 of
a core at these rates), redis-server (about 0.2) and whatever else runs there, so two workers never
get two cores: `workers_note()` splits the 2-worker figure into "more CPU" times "work per
CPU-second", from the CPU time each process (and the whole machine) spent during the run."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from floors import Goal, Row
from harness import POST, Load, LoadGenerator, create_charge, measure, median_run, paired_ratio, round_ratios, running
from procs import RedisServer, redis_available, redis_server

from sandbox.launcher import ServerProcess

LABELS = {"sqlite": "SQLite", "redis": "Redis"}
TARGET_STORE_POST_RATIO = 0.35  # the issue: a shared store's POST /charge, one worker, >= 0.35x bare Starlette
# Stores whose POST row is reported, not gated: a known open problem. Redis measures 0.16-0.25x
# (bench/RESULTS.md), so a floor of half the target would fail CI on noise rather than on a collapse.
REPORTED_ONLY = frozenset({"redis"})
WORKERS = (1, 2)
OPS = {"POST": "POST /charge", "GET": "GET /charge/{id}"}
SCRIPT_COMMANDS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")  # each one a client's call


@dataclass
class Plan:
    stores: tuple[str, ...]
    duration: float
    warmup: float
    rounds: int
    connections: int


@dataclass
class StoreRun:
    store: str
    workers: int
    post: Load
    get: Load | None  # one worker only
    runs: dict[str, list[Load]]  # every measured run, by operation
    baseline: dict[str, Load]  # one worker: the baseline's runs taken in turn with it (median), by operation
    baseline_runs: dict[str, list[Load]]

    def raw(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def store_url(store: str, scratch: Path, name: str) -> Iterator[tuple[str, RedisServer | None]]:
    """A new, empty store: its --store URL, and its redis-server for the Redis rows (its CPU time and
    command count are read around each run)."""
    if store == "sqlite":
        # Four slashes: sqlite:/// then an absolute path. The run's temp folder, never the work tree.
        yield f"sqlite:///{scratch / f'{name}.db'}", None
        return
    with redis_server(scratch) as redis:
        yield redis.url, redis


@dataclass
class Measured:
    runs: list[StoreRun]
    broken: dict[str, str]  # store -> why it could not be measured (it did not start or serve)
    left_out: dict[str, str]  # store -> why it was not tried here (no redis-server, no engine yet)


def measure_stores(plan: Plan, gen: LoadGenerator, scratch: Path, baseline: ServerProcess) -> Measured:
    measured = Measured([], {}, {})
    for store in plan.stores:
        missing = redis_available() if store == "redis" else None
        if missing:
            measured.left_out[store] = missing
            continue
        for workers in WORKERS:
            print(f"  {LABELS[store]}, {workers} worker{'s' if workers > 1 else ''} ...", flush=True)
            try:
                measured.runs.append(_measure(plan, gen, scratch, store, workers, baseline))
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                # A store that cannot start or serve fails its rows; the rest of the run still reports.
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
                why = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"  # the log's last line: the cause
                measured.broken[store] = f"{workers} worker(s): {why[:400]}"
                break
    return measured


def _measure(
    plan: Plan, gen: LoadGenerator, scratch: Path, store: str, workers: int, baseline: ServerProcess
) -> StoreRun:
    name = f"{store}-{workers}w"
    loads: dict[str, list[Load]] = {}
    base: dict[str, list[Load]] = {}
    with (
        store_url(store, scratch, name) as (url, redis),
        running(name, scratch, "--store", url, "--workers", str(workers), workers=workers) as server,
    ):
        ops = {"POST": POST, "GET": ("GET", f"/v1/payments/charge/{create_charge(server.port)}", None)}
        # The ratio to bare Starlette: the baseline is loaded in the same round, just before (just
        # after every other round), so that a busy spell of other work on the machine hits both sides.
        sides = [(baseline, base, None), (server, loads, redis)] if workers == 1 else [(server, loads, redis)]
        for label, op in ops.items():
            if label == "GET" and workers > 1:
                continue  # the issue asks for POST scaling; GET on two workers would add a run
            if label == "POST":  # GET follows on a process, connections and store the POSTs warmed
                measure(gen, server, op, plan.connections, plan.warmup)
            for round_ in range(plan.rounds):
                for target, into, watched in sides[:: -1 if round_ % 2 else 1]:
                    load = measure(gen, target, op, plan.connections, plan.duration, watched)
                    into.setdefault(label, []).append(load)
    get = median_run(loads["GET"]) if "GET" in loads else None
    medians = {OPS[label]: median_run(runs) for label, runs in base.items()}
    return StoreRun(store, workers, median_run(loads["POST"]), get, loads, medians, base)


def warnings(measured: Measured) -> list[str]:
    out = [f"the {LABELS[store]} rows are left out: {why}" for store, why in measured.left_out.items()]
    out += [f"the {LABELS[store]} store failed: {why}" for store, why in measured.broken.items()]
    for run in measured.runs:
        for label, loads in run.runs.items():
            for load in loads:
                if load.errors or load.non_2xx:
                    out.append(f"{run.store} {run.workers}w {label}: {load.errors} errors, {load.non_2xx} non-2xx")
    return out


def _cores(load: Load) -> str:
    text = f"server {load.server_busy:.2f}"
    if load.worker_cpu_s:
        text += " (" + " + ".join(f"{load.cores(cpu):.2f}" for cpu in load.worker_cpu_s) + ")"
    if load.store_cpu_s:
        text += f", redis-server {load.cores(load.store_cpu_s):.2f}"
    text += f", load generator {load.cores(load.client_cpu_s):.2f}"
    if load.others_busy > 0.1:  # a shared machine: other people's work took CPU from this run
        text += f", other processes {load.others_busy:.2f}"
    text += " cores"
    if load.store_commands and load.requests:
        scripts = sum(load.store_commands.get(name, 0) for name in SCRIPT_COMMANDS)
        others = sum(load.store_commands.values()) - scripts
        text += f"; a request: {scripts / load.requests:.1f} Lua scripts and {others / load.requests:.1f} other "
        text += "Redis commands (sent alone or run by the scripts)"
    return text


def rows(measured: Measured) -> list[Row]:
    """One worker: POST against the baseline (gated, but for REPORTED_ONLY stores), GET against the
    baseline, p99 of each (reported). Two workers: POST against one worker of the same store
    (reported: no target was set). A store that failed gets a gated row at 0, so that the run fails."""
    out: list[Row] = []
    by = {(run.store, run.workers): run for run in measured.runs}
    for store, label in LABELS.items():
        post_goal = Goal(">=", TARGET_STORE_POST_RATIO, "x", gated=store not in REPORTED_ONLY)
        one, two = by.get((store, 1)), by.get((store, 2))
        if one is None:
            if store in measured.broken:
                why = f"did not run: {measured.broken[store]}"
                broken = Goal(">=", TARGET_STORE_POST_RATIO, "x")  # gated even where the ratio is only reported
                out.append(Row(f"{label} POST /charge throughput", 0.0, "x baseline", broken, why))
            continue
        for op, load, goal in (("POST /charge", one.post, post_goal), ("GET /charge/{id}", one.get, None)):
            if load is None:
                continue
            base, label_op = one.baseline[op], op.split()[0]
            # Each round's store run over the baseline run of the same round; the median of those.
            runs, base_runs = one.runs[label_op], one.baseline_runs[label_op]
            ratio = paired_ratio(runs, base_runs)
            detail = f"{load.ok_rps:,.0f} req/s, baseline {base.ok_rps:,.0f}"
            if len(runs) > 1:
                detail += " (medians); rounds " + ", ".join(f"{r:.2f}" for r in round_ratios(runs, base_runs))
            detail += f"; {load.per_cpu_second:,.0f} req per server CPU-s; {_cores(load)}"
            out.append(Row(f"{label} {op} throughput", round(ratio, 3), "x baseline", goal, detail, 3))
            out.append(_latency(f"{label} {op} latency p99", load))
        if two is not None:
            scale = two.post.ok_rps / one.post.ok_rps if one.post.ok_rps else 0.0
            detail = f"{two.post.ok_rps:,.0f} req/s against {one.post.ok_rps:,.0f}; p99 {two.post.p99_ms:.2f} ms; "
            detail += _cores(two.post)
            if len(two.runs["POST"]) > 1:  # each round is a new set of connections, split anew between workers
                detail += "; rounds " + ", ".join(
                    f"{load.rps:,.0f}" + ("" if _balanced(load) else " (one worker)") for load in two.runs["POST"]
                )
            out.append(
                Row(f"{label} POST /charge, 2 workers / 1", round(scale, 3), "x 1 worker", detail=detail, digits=3)
            )
    return out


def _balanced(load: Load) -> bool:
    """Whether both workers did a fair part of the work (the lesser at least a quarter of the greater)."""
    shares = sorted(load.worker_cpu_s)
    return len(shares) >= 2 and shares[0] >= 0.25 * shares[-1]


def _latency(name: str, load: Load) -> Row:
    detail = f"p50 {load.p50_ms:.2f} ms"
    if load.max_ms:
        detail += f", p99.9 {load.p999_ms:.2f} ms, max {load.max_ms:.1f} ms"
    return Row(name, load.p99_ms, "ms", detail=detail)


def workers_note(measured: Measured) -> list[str]:
    """What limited each 2-worker figure: the cores the load generator (and redis-server) left, the
    store, or the kernel handing every connection to one worker."""
    notes = []
    by = {(run.store, run.workers): run for run in measured.runs}
    cores = os.cpu_count() or 1
    for store, label in LABELS.items():
        one_run, two_run = by.get((store, 1)), by.get((store, 2))
        if one_run is None or two_run is None:
            continue
        one, rounds = one_run.post, two_run.runs["POST"]
        if not one.rps or not one.server_busy or not one.per_cpu_second:
            continue
        # Speak of the median round, or, when one worker served nearly everything in it, of the median
        # of the rounds where both served: that is what the cores and the store allow; the other is luck.
        balanced = [load for load in rounds if _balanced(load)]
        two = two_run.post if _balanced(two_run.post) or not balanced else median_run(balanced)
        which = "" if two is two_run.post else f" (median of the {len(balanced)} rounds where both workers served)"
        client, redis, others = two.cores(two.client_cpu_s), two.cores(two.store_cpu_s), two.others_busy
        left = cores - client - redis  # what the workers could have had between them
        busy = two.cores(two.machine_cpu_s)
        text = (
            f"{label}, 2 workers{which}: {two.rps / one.rps:.2f}x one worker's req/s = "
            f"{two.server_busy / one.server_busy:.2f}x the CPU ({two.server_busy:.2f} cores against "
            f"{one.server_busy:.2f}) x {two.per_cpu_second / one.per_cpu_second:.2f}x the requests per CPU-second. "
            f"Sharing the {cores} cores, the load generator took {client:.2f} of a core"
            + (f" and redis-server {redis:.2f}" if two.store_cpu_s else "")
            + f", leaving the workers {left:.2f} cores: at most {left / one.server_busy:.2f}x one worker's CPU. "
        )
        if others > 0.1:
            text += f"Other processes on the machine took {others:.2f} cores meanwhile. "
        if not _balanced(two):
            split = " / ".join(f"{two.cores(cpu):.2f}" for cpu in two.worker_cpu_s) or "none measured"
            text += f"One worker did nearly all the work (cores {split}), so this measured about one worker. "
        elif busy >= 0.9 * cores:
            text += f"The machine was full ({busy:.2f} of {cores} cores busy): the figure is capped by the cores. "
        else:
            # An inference, not a measurement: idle cores while 32 requests are always in flight mean
            # the workers were waiting, and the store is what they wait on.
            likely = "the database file's one write lock" if store == "sqlite" else "Redis's replies"
            text += (
                f"Only {busy:.2f} of {cores} cores were busy: the workers were waiting, not short of CPU (on "
                f"{likely}, most likely), so the load generator's share did not limit this figure. "
            )
        if len(balanced) < len(rounds):
            text += (
                f"In {len(rounds) - len(balanced)} of {len(rounds)} rounds one worker served nearly every request: "
                "the workers share one listening socket, a worker that wakes takes every connection waiting there, "
                "and the load generator opens its 32 at once, so the split is luck (31/1 to 16/16 over 8 starts "
                "on this machine)."
            )
        notes.append(text.strip())
    return notes
