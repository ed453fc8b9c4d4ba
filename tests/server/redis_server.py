"""Start a real redis-server on a free loopback port, persistence off, and stop it for sure."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """Run ``redis-server`` on 127.0.0.1:<free port>; yield once it answers PING."""
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    for _ in range(3):  # a port taken between free_port() and the bind: try another
        port = free_port()
        process = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", str(tmp_path), "--daemonize", "no",
             "--enable-debug-command", "local"],  # DEBUG SLEEP: a slow Redis, for real
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None and not _ready(port):
            time.sleep(0.02)
        if process.poll() is None and _ready(port):
            break
        process.kill()
        process.wait(5)
    else:
        raise AssertionError("redis-server did not start on a free port in three tries")
    try:
        yield RedisServer(process, port)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)


def rq_worker(
    url: str, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a real ``rq worker --burst`` until the queue is empty; return its result."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), str(cwd), full_env.get("PYTHONPATH", "")])
    )
    command = [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", url, *args]
    return subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
