"""A pytest that is killed leaves no sandbox behind: SIGTERM (what CI's cancel, `timeout` and `docker
stop` send) and even SIGKILL, serial and under xdist, while a test is in the middle of running.

The inner pytest runs as a plain subprocess so that the test can signal it; each of its tests writes
a file once it holds the fixture, then sleeps. The sandbox processes are found as the inner
pytest's descendants through /proc, and must be gone (or dead and awaiting their reaper) soon
after the signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import process_alive

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")

SLEEPS = """
import os, pathlib, time

def test_holds_the_sandbox(payments_sandbox):
    with payments_sandbox.client() as client:
        assert client.get("/charges").status_code == 200
    pathlib.Path(os.environ["READY_DIR"], str(os.getpid())).touch()
    time.sleep(120)
"""


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _is_server(pid: int) -> bool:
    try:
        return b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("sig", "xdist"),
    [(signal.SIGTERM, False), (signal.SIGKILL, False), (signal.SIGTERM, True)],
    ids=["sigterm", "sigkill", "sigterm-xdist"],
)
def test_killed_pytest_leaves_no_sandbox(pytester: pytest.Pytester, sig: int, xdist: bool) -> None:
    pytester.makepyfile(test_a=SLEEPS, test_b=SLEEPS)
    ready = pytester.mkdir("ready")
    workers = ["-n", "2"] if xdist else []
    family: list[int] = []
    inner = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *workers],
        cwd=pytester.path,
        env={**os.environ, "READY_DIR": str(ready)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        expected = 2 if xdist else 1
        _wait(lambda: len(list(ready.iterdir())) >= expected, 120, "the inner tests never got the fixture")
        family = _descendants(inner.pid)
        servers = [pid for pid in family if _is_server(pid)]
        assert len(servers) == expected, servers
        inner.send_signal(sig)
        inner.wait(timeout=60)
        _wait(lambda: not any(process_alive(pid) for pid in servers), 30, f"sandbox {servers} outlived pytest")
    finally:
        for pid in [inner.pid, *family]:  # whatever is left of this test's own processes, on failure
            if pid == inner.pid and inner.poll() is None:
                inner.kill()
                inner.wait()
            elif pid != inner.pid and process_alive(pid):
                os.kill(pid, signal.SIGKILL)
