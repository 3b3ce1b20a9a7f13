"""Real redis-servers for the tests: started on a port of 127.0.0.1, without persistence, and
waited for until they answer PING (over TLS when given a context)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest


def start_redis(port: int, folder: Path, *options: str, tls: ssl.SSLContext | None = None) -> subprocess.Popen[bytes]:
    """redis-server on 127.0.0.1:`port` (with extra `options`; only TLS there with `tls`, the context
    its PING is sent with), answering PING; skips the test when redis-server is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    ports = ["--port", str(port)] if tls is None else ["--port", "0", "--tls-port", str(port)]  # TLS only
    argv = [binary, *ports, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder), *options]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
                if _pong(tls.wrap_socket(raw, server_hostname="127.0.0.1") if tls is not None else raw):
                    return proc
        except OSError:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"redis-server exited at start: {' '.join(argv)}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("redis-server did not answer PING in 10 s")
        time.sleep(0.05)


def _pong(sock: socket.socket) -> bool:
    with sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))  # -NOAUTH: up, with a password
