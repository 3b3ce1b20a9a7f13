"""Processes around the servers under test: CPU time of a process tree, and a throwaway redis-server.

`--workers N` makes the sandbox a supervisor with N worker processes, so "the server's CPU" is the
sum over the tree, read from /proc; the per-worker split shows whether the kernel spread the
load generator's connections over the workers. The Redis rows need a Redis of their own: one per
measured configuration, on a free port of 127.0.0.1, without persistence unless asked, started
and stopped here so that nothing outlives the run and no row inherits another's keys.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from sandbox.launcher import HOST, free_port, stop_process

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 when it is gone)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _TICK if fields else 0.0


def machine_busy_seconds() -> float:
    """CPU time the whole machine has been busy since boot, all cores together."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _TICK


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`, found by walking parent ids: /proc/PID/task/*/children lists
    only the children of each thread, and a scan of /proc is a few hundred small reads."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields:
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of `pid` and of each live descendant, by pid."""
    return {p: process_cpu_seconds(p) for p in (pid, *descendants(pid))}


def redis_available() -> str | None:
    """Why the Redis rows cannot run here, or None when they can."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    # The engine is looked up as a file, not imported: importing it would load redis-py and the
    # engine into this process, whose CPU time is not what is being measured, only to learn it exists.
    engine = Path(__file__).resolve().parent.parent / "sandbox" / "stores" / "redis.py"
    if not engine.exists():
        return "sandbox/stores/redis.py does not exist yet, so `--store redis://...` cannot start"
    return None


class RedisServer:
    """A redis-server on a free port of 127.0.0.1, its files in `folder`; `url` names database 0."""

    def __init__(self, folder: Path, appendonly: bool = False) -> None:
        self.port = free_port()
        self.folder = folder / f"redis-{self.port}"
        self.folder.mkdir(parents=True)
        binary = shutil.which("redis-server") or "redis-server"
        # --save "": no RDB snapshots, which would fork the server mid-measurement. appendonly yes with
        # everysec is Redis's usual durable setting: a write() per command, an fsync a second.
        argv = [binary, "--port", str(self.port), "--bind", HOST, "--save", "", "--dir", str(self.folder)]
        argv += ["--appendonly", "yes", "--appendfsync", "everysec"] if appendonly else ["--appendonly", "no"]
        self._log = (self.folder / "redis.log").open("wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        self.url = f"redis://{HOST}:{self.port}/0"
        self._wait_ready()

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self.stop()
                tail = (self.folder / "redis.log").read_text(errors="replace")[-1000:]
                raise RuntimeError(f"redis-server exited with {self.proc.returncode} at start:\n{tail}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not answer PING in {timeout} s")
            time.sleep(0.02)

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    def command_calls(self) -> dict[str, int]:
        """Calls of each command so far (INFO commandstats), without the INFO calls this makes. Redis
        counts the commands a Lua script runs as calls too, so EVALSHA (and EVAL, FCALL) are the
        scripts a client sent and the rest are commands sent alone or run inside those scripts."""
        with socket.create_connection((HOST, self.port), timeout=5) as sock:
            sock.sendall(b"INFO commandstats\r\n")
            reply = b""
            while not _whole_bulk(reply):
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError("redis-server closed the connection during INFO")
                reply += chunk
        calls = {}
        for line in reply.decode(errors="replace").splitlines():
            name, _, stats = line.partition(":")
            if name.startswith("cmdstat_") and name != "cmdstat_info":
                calls[name.removeprefix("cmdstat_")] = int(stats.split(",")[0].removeprefix("calls="))
        return calls

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


def _whole_bulk(reply: bytes) -> bool:
    """Whether `reply` holds a whole RESP bulk string: `$<length>\r\n`, that many bytes, `\r\n`."""
    head, newline, _ = reply.partition(b"\r\n")
    return bool(newline) and len(reply) >= len(head) + 2 + int(head[1:]) + 2


@contextlib.contextmanager
def redis_server(folder: Path, appendonly: bool = False) -> Iterator[RedisServer]:
    server = RedisServer(folder, appendonly)
    try:
        yield server
    finally:
        server.stop()
