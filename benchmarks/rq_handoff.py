"""The RQ hand-off: µs per request with 1 and 3 tasks, RQBackend vs the in-process pool.

Both apps serve the same ``GET /tasks/<n>`` (see tasks.build_app), called like a server
would (body, then ``close()``), so each figure includes the add_task checks and, for RQ,
the one-round-trip enqueue on a local redis-server (loopback; a remote Redis adds its RTT).
The part starts its own ``redis-server`` (persistence off) unless ``BENCH_REDIS_URL`` is set.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .scenarios import Scenario, base_environ, call, fresh_environ
from .tasks import TASK_COUNTS, build_app


def redis_available() -> bool:
    return bool(os.environ.get("BENCH_REDIS_URL") or shutil.which("redis-server"))


@contextmanager
def redis_url() -> Iterator[str]:
    """``BENCH_REDIS_URL``, or a redis-server of our own on a free loopback port."""
    given = os.environ.get("BENCH_REDIS_URL")
    if given:
        yield given
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("the rq part needs redis-server: apt-get install -y redis-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            import redis

            client = redis.Redis(port=port, socket_timeout=1)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise SystemExit("redis-server did not start") from None
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.kill()
            process.wait(10)


def run(rounds: int, calls: int) -> dict[str, Any]:
    """Median µs per request for 0, 1 and 3 tasks, per backend; and the Redis version."""
    import redis

    from funapi_sync.backends.rq import RQBackend

    with redis_url() as url:
        client = redis.Redis.from_url(url)
        apps = {"thread": build_app(), "rq": build_app(background_backend=RQBackend(url))}
        bases = {n: base_environ(Scenario(f"tasks_{n}", "GET", f"/tasks/{n}")) for n in TASK_COUNTS}
        figures: dict[str, dict[int, list[float]]] = {
            name: {n: [] for n in TASK_COUNTS} for name in apps
        }
        for round_ in range(rounds + 1):  # round 0 warms up (connections, imports)
            for name, app in apps.items():
                for n in TASK_COUNTS:
                    environs = [fresh_environ(bases[n], b"") for _ in range(calls)]
                    started = time.perf_counter_ns()
                    for environ in environs:
                        call(app, environ)
                    elapsed = (time.perf_counter_ns() - started) / 1000 / calls
                    # Untimed: let the pool finish, and keep Redis from growing.
                    app.background.drain(timeout=30) if name == "thread" else client.flushdb()
                    if round_:
                        figures[name][n].append(elapsed)
        version = str(client.info("server").get("redis_version", "?"))
    per_request = {
        name: {n: statistics.median(values) for n, values in per_n.items()}
        for name, per_n in figures.items()
    }
    return {"per_request_us": per_request, "redis": version}
