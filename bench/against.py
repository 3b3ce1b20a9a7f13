"""This checkout's sandbox against the sandbox at earlier revisions: has a change made it slower?

    python bench/against.py REV [REV ...] [--rounds 8] [--duration 4] [--connections 32] [--loadgen auto]
                            [--json out.json]

`bench/run.py` measures the sandbox against a bare Starlette app; that yardstick moves with the
machine (the same code read 0.60x one day and 0.69x another), so "no regression" is better asked
of the sandbox itself. Each REV (a commit, tag or branch of this repository) is unpacked with
`git archive` into a temp folder and served from there (`python -m sandbox serve`, memory store, its
own defaults, this Python and these installed packages) beside this checkout's sandbox and
`bench/baseline_app.py`, all on 127.0.0.1 at once. POST /charge, then GET /charge/{id}, is loaded on
each server in turn for `--duration` seconds, round after round, the order reversed every other
round, after a warm-up run each (the same load generator and measure as bench/run.py). A round's
ratio divides a server's req/s by this checkout's in the same round (so both met the same spell of
the machine), and the median of the rounds' ratios is shown, with each server's median req/s,
req per server CPU-second and ratio to the baseline (`--json`: the same figures and every round's
ratio, by operation and server). It gates nothing and exits 0 once measured.

A revision older than the `python -m sandbox serve` entry point, or needing packages not installed
here, fails to start; the error names it and its log.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import (
    HOST,
    POST,
    REPO_DIR,
    Load,
    LoadGenerator,
    ServerProcess,
    choose_generator,
    create_charge,
    measure,
    paired_ratio,
    round_ratios,
)

BASELINE = "baseline"
HERE = "this checkout"


def unpack(rev: str, into: Path) -> Path:
    """The tree of `rev` in a folder of its own under `into`."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        cwd=REPO_DIR, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if commit.returncode != 0:
        raise SystemExit(f"bench/against.py: {rev!r} is not a commit of this repository (git rev-parse)")
    sha = commit.stdout.strip()
    folder = into / sha[:12]
    folder.mkdir(exist_ok=True)
    archive = subprocess.run(["git", "archive", "--format=tar", sha], cwd=REPO_DIR, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def start(name: str, tree: Path | None, logs: Path) -> ServerProcess:
    """The sandbox of `tree` (None: this checkout), or the baseline app."""
    if name == BASELINE:
        program = [sys.executable, str(REPO_DIR / "bench" / "baseline_app.py"), "--host", HOST]
        return ServerProcess.start(program=program, name="baseline", log_dir=logs, inherit_settings=False)
    folder = tree or REPO_DIR
    program = [sys.executable, "-m", "sandbox", "serve", "--host", HOST, "--log-level", "warning"]
    return ServerProcess.start(
        program=program, name="sandbox", log_dir=logs, cwd=folder, env={"PYTHONPATH": str(folder)},
        inherit_settings=False,
    )  # fmt: skip


def compare(
    gen: LoadGenerator, servers: dict[str, ServerProcess], op: str, rounds: int, duration: float, connections: int
) -> dict[str, list[Load]]:
    """Each server's runs of `op` ("POST" or "GET"), in round order."""
    specs: dict[str, tuple[str, str, str | None]] = {}
    for name, server in servers.items():
        if op == "POST":
            specs[name] = POST
        else:  # the baseline answers any id; a sandbox, one of its own charges
            charge = "ch_bench" if name == BASELINE else create_charge(server.port)
            specs[name] = ("GET", f"/v1/payments/charge/{charge}", None)
    runs: dict[str, list[Load]] = {name: [] for name in servers}
    for name, server in servers.items():
        measure(gen, server, specs[name], connections, min(duration, 2.0))  # warm-up, not kept
    for round_ in range(rounds):
        for name in list(servers)[:: -1 if round_ % 2 else 1]:
            runs[name].append(measure(gen, servers[name], specs[name], connections, duration))
    return runs


def report(op: str, runs: dict[str, list[Load]]) -> dict[str, dict[str, Any]]:
    """Print one operation's table; its figures by server."""
    print(f"\n{op} /charge{'' if op == 'POST' else '/{id}'}: {len(runs[HERE])} rounds")
    print(f"  {'server':<28} {'req/s':>8} {'req/CPU-s':>10} {'/ this checkout':>16} {'/ baseline':>11}  rounds")
    figures: dict[str, dict[str, Any]] = {}
    for name, loads in runs.items():
        mine = round_ratios(loads, runs[HERE])
        row = figures[name] = {
            "rps": statistics.median(load.ok_rps for load in loads),
            "per_cpu_second": statistics.median(load.per_cpu_second for load in loads),
            "vs_checkout": statistics.median(mine),
            "vs_baseline": paired_ratio(loads, runs[BASELINE]),
            "rounds_vs_checkout": mine,
            "errors": sum(load.errors + load.non_2xx for load in loads),
        }
        shown = ", ".join(f"{ratio:.2f}" for ratio in mine)
        print(
            f"  {name:<28} {row['rps']:>8,.0f} {row['per_cpu_second']:>10,.0f} {row['vs_checkout']:>15.3f}x"
            f" {row['vs_baseline']:>10.3f}x  {shown}"
        )
        if row["errors"]:
            print(f"  ! {name}: {row['errors']} errors or non-2xx answers")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("revs", nargs="+", metavar="REV", help="a commit, tag or branch to compare with")
    parser.add_argument("--rounds", type=int, default=8, help="measured runs of each server (default 8)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run (default 4)")
    parser.add_argument("--connections", type=int, default=32, help="load-generator connections (default 32)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.duration <= 0 or args.connections < 1:
        parser.error("--rounds and --connections must be at least 1, --duration above 0")
    with tempfile.TemporaryDirectory(prefix="against-") as scratch, contextlib.ExitStack() as stack:
        root = Path(scratch)
        trees = {}
        for rev in args.revs:
            tree = unpack(rev, root)
            trees[f"{rev} ({tree.name})"] = tree
        gen = choose_generator(args.loadgen, root)
        servers = {name: stack.enter_context(start(name, None, root)) for name in (HERE, BASELINE)}
        for name, tree in trees.items():
            servers[name] = stack.enter_context(start(name, tree, root))
        measured = (args.rounds, args.duration, args.connections)
        print(f"{gen.version()}, {args.connections} connections, {args.duration:g} s runs, order flipped each round")
        figures = {op: report(op, compare(gen, servers, op, *measured)) for op in ("POST", "GET")}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
