"""Start and stop real `payments-sandbox serve` processes: the one way the tests, the benchmarks,
the pytest plugin and the public `Sandbox` (local.py) get a port and a server.

`start(args)` runs `payments-sandbox serve ARGS --port P` on a free port of 127.0.0.1 with its output
in a log file, and returns a `ServerProcess` once GET /__sandbox/health answers 200. A process that
exits first, or is not healthy in time, is killed and reported by `StartError` with its log's tail,
so a failed start leaves nothing running. `run_cli` runs a command that must end by itself.

Why so: a free port is found by binding port 0 and releasing it, so another process can take it
before the server binds it (the server is then started again on another port); ready means a 200
from the health endpoint, never a log line, since uvicorn runs the app's lifespan before it binds;
output goes to a file, as a pipe nobody reads fills up and blocks the server. Standard library only:
cheap to import (the pytest plugin does), and safe under pytester, after which a re-imported httpx no
longer recognises its own exceptions.

`die_with_parent=True` (the plugin and `Sandbox` use it) makes Linux send the server SIGTERM when
the process that started it dies, whatever killed it: SIGTERM from CI's cancel, `timeout` or `docker
stop`, even SIGKILL, which no handler or atexit hook of ours would see. Linux ties that signal to
the *thread* that started the child, so it is asked for only from the main thread (whose end is the
process's end); elsewhere, and off Linux, the caller's own stop (a context manager, atexit) remains.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self

HOST = "127.0.0.1"
HEALTH = "/__sandbox/health"
START_TIMEOUT = 30.0  # a start takes ~0.5 s; a 2-core machine busy with other tests can make it 10x
STOP_TIMEOUT = 20.0  # on SIGTERM uvicorn lets in-flight requests finish
PORT_TRIES = 3
POLL_SECONDS = 0.002  # fine enough for bench/run.py to time a cold start by it
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class StartError(RuntimeError):
    """The server exited, or was not healthy in time; the message ends with its log's tail."""


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on right now (the OS picks it, and it is released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def command() -> list[str]:
    """The installed console script (beside this Python, else on PATH), else `python -m sandbox`."""
    beside = Path(sys.executable).with_name("payments-sandbox")
    script = str(beside) if beside.exists() else shutil.which("payments-sandbox")
    return [script] if script else [sys.executable, "-m", "sandbox"]


def environment(env: Mapping[str, str] | None = None, *, inherit_settings: bool = True) -> dict[str, str]:
    """This process's environment plus `env`; `inherit_settings=False` first drops its PAYMENTS_SANDBOX_*
    variables, so that a benchmark measures the defaults whatever the shell exported."""
    inherited = {k: v for k, v in os.environ.items() if inherit_settings or not k.startswith("PAYMENTS_SANDBOX_")}
    return {**inherited, **(env or {})}


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run `payments-sandbox ARGS...` to completion (with `env` added) and capture its output."""
    argv = [*command(), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=environment(env), cwd=cwd)


def parent_death_signal(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that makes Linux send the child `sig` when this process dies, or None where
    that cannot be had safely (not Linux, or not the main thread: see the module docstring).

    It runs in the child between fork and exec, so it only makes one system call: the C function is
    looked up here, before the fork. A parent that died before the call never sends the signal, so
    the child then exits at once instead of running as an orphan."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # no C library to ask (a static or unusual build)
        return None
    parent = os.getpid()

    def ask() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:
            os._exit(1)

    return ask


def stop_process(proc: subprocess.Popen[bytes], sig: int | None = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
    """Send `sig` unless the process has exited (None: it was told already), wait up to `timeout`
    seconds, then SIGKILL; its exit code (negative: the signal that ended it)."""
    if sig is not None and proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


class ServerProcess:
    """A server process on 127.0.0.1:`port` with the sandbox's health endpoint, its output in
    `log_path`. Made by `start` (a subclass's `start` makes the subclass); a context manager that
    stops the process on the way out."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path, name: str = "sandbox") -> None:
        self.proc, self.port, self.log_path, self.name = proc, port, log_path, name
        self.base_url = f"http://{HOST}:{port}"
        self.spawned = time.perf_counter()
        self.start_seconds = 0.0  # spawn -> first 200 from the health endpoint (wait_healthy)

    @classmethod
    def start(
        cls,
        args: Sequence[str] = (),
        *,
        program: Sequence[str] | None = None,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        inherit_settings: bool = True,
        log_dir: Path | None = None,
        name: str = "sandbox",
        cwd: Path | None = None,
        timeout: float = START_TIMEOUT,
        ready: bool = True,
        die_with_parent: bool = False,
    ) -> Self:
        """Run `payments-sandbox serve ARGS --port P` (or `PROGRAM ARGS --port P`, any server with the
        same health endpoint) and return once it is healthy.

        `port=None` picks a free port, and another if that one was taken first; with a port, ARGS run
        as given and must make the server listen there (say through `env`). `env` and
        `inherit_settings`: see `environment`. The log, `NAME-PORT-*.log` in `log_dir` (default: the
        temp folder), is kept. `ready=False` returns once spawned, for a start that should fail.
        `die_with_parent`: see the module docstring.
        """
        head = [*(program or [*command(), "serve"]), *args]
        variables = environment(env, inherit_settings=inherit_settings)
        tries = 1 if port is not None else PORT_TRIES
        preexec = parent_death_signal() if die_with_parent else None
        for attempt in range(1, tries + 1):
            chosen = port or free_port()
            argv = head if port is not None else [*head, "--port", str(chosen)]
            fd, log_path = tempfile.mkstemp(prefix=f"{name}-{chosen}-", suffix=".log", dir=log_dir)
            spawned = time.perf_counter()
            with open(fd, "wb") as log:  # the child has its own copy of the descriptor
                proc = subprocess.Popen(
                    argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=variables, cwd=cwd, preexec_fn=preexec
                )
            server = cls(proc, chosen, Path(log_path), name)
            server.spawned = spawned
            if not ready:
                return server
            try:
                server.wait_healthy(timeout)
            except StartError:
                if attempt == tries or "address already in use" not in server.log().lower():
                    raise
                continue
            return server
        raise AssertionError("unreachable: the last attempt returns or raises")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def healthy(self, timeout: float = 10.0) -> bool:
        """Whether GET /__sandbox/health answers 200 now."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            conn.request("GET", HEALTH)
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Return once the health endpoint answers 200 while the process runs (a 200 from a process
        that then exits came from another server on the port); else kill it and raise StartError."""
        try:
            while (code := self.proc.poll()) is None:
                if self.healthy(timeout=1.0) and self.proc.poll() is None:
                    self.start_seconds = time.perf_counter() - self.spawned
                    return
                if time.perf_counter() - self.spawned > timeout:
                    raise StartError(f"{self.name} was not healthy within {timeout:g} s; {self._tail()}")
                time.sleep(POLL_SECONDS)
            raise StartError(f"{self.name} exited with code {code} before it was healthy; {self._tail()}")
        except BaseException:  # an interrupt too: a start that fails leaves nothing running
            self.stop(signal.SIGKILL)
            raise

    def _tail(self, chars: int = 3000) -> str:
        return f"its log ({self.log_path}) ends:\n{self.log()[-chars:]}"

    def memory_kb(self, field: str = "VmRSS") -> int:
        """A memory figure of the process from /proc (VmRSS now, VmHWM the peak), in kB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise LookupError(f"no {field} in /proc/{self.pid}/status")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send `sig` (unless it has exited), wait, SIGKILL after `timeout`; the exit code."""
        return stop_process(self.proc, sig, timeout)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for a process already told to stop (SIGKILL after `timeout`); the exit code."""
        return stop_process(self.proc, None, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


start = ServerProcess.start
