"""Over HTTP: each app under gunicorn or granian (FastAPI: uvicorn) on 127.0.0.1, driven by wrk.

The server and wrk are pinned apart (CPU 0 and CPU 1) when the machine has two CPUs.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gunicorn

from .scenarios import (
    APPS,
    ASGI_APPS,
    HELLO,
    SIGNUP,
    TIMED,
    USER_404,
    Scenario,
    installed,
    module_path,
    wsgi_apps,
)

ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = Path(__file__).with_name("wrk.lua")
WORKER_CLASSES = ("sync", "gthread")
GTHREAD_THREADS = 4
#: The server groups of the http part: gunicorn's two worker classes, then granian (Rust,
#: WSGI interface, 1 worker) with the ASGI peers under uvicorn (1 worker) beside it.
SERVER_GROUPS = (*WORKER_CLASSES, "granian")
#: granian's Python threads per worker (``--blocking-threads``), funapi-sync run's default.
GRANIAN_THREADS = 1
CONNECTIONS = 8
#: With two or more CPUs the server runs on CPU 0 and wrk on CPU 1.
SERVER_CPU, CLIENT_CPU = "0", "1"
_LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")
_BOOTED = re.compile(r"Booting worker with pid: (\d+)")


def wrk_path() -> str | None:
    return shutil.which("wrk")


def pinning() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def _pinned(cpu: str, command: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *command] if pinning() else command


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]


@contextmanager
def gunicorn_server(
    app_spec: str, worker_class: str, log_dir: Path, name: str = ""
) -> Iterator[Server]:
    """Run ``gunicorn app_spec`` (1 worker) on an ephemeral port; always stop it."""
    command = [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers", "1"]
    command += ["--worker-class", worker_class]
    if worker_class == "gthread":
        command += ["--threads", str(GTHREAD_THREADS)]
    if tuple(int(p) for p in gunicorn.__version__.split(".")[:2]) >= (25, 1):
        command.append("--no-control-socket")
    command.append(app_spec)
    log_path = log_dir / f"{name or 'server'}-{worker_class}-{time.monotonic_ns()}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            _pinned(SERVER_CPU, command), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env
        )
    try:
        port = _wait_until_booted(process, log_path)
        yield Server(name, port, process)
    finally:
        _stop(process)


def _wait_until_booted(process: subprocess.Popen[bytes], log_path: Path) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        port = _LISTENING.search(text)
        if port and _BOOTED.search(text):
            return int(port.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"gunicorn did not start:\n{log_path.read_text(errors='replace')}")


def free_port() -> int:
    # NOTE: granian and uvicorn report the port they were given, so port 0 would hide it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def granian_command(app_spec: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--blocking-threads", str(GRANIAN_THREADS),
        "--no-ws", "--log-level", "warning", app_spec,
    ]  # fmt: skip


def uvicorn_command(app_spec: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--no-access-log", "--log-level", "warning", app_spec,
    ]  # fmt: skip


@contextmanager
def command_server(
    command: list[str], port: int, log_dir: Path, name: str, kind: str
) -> Iterator[Server]:
    """Run ``command`` (listening on ``port``); yield once it answers; always stop it."""
    log_path = log_dir / f"{name}-{kind}-{time.monotonic_ns()}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            _pinned(SERVER_CPU, command), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env
        )
    try:
        _wait_until_answering(process, port, log_path)
        yield Server(name, port, process)
    finally:
        _stop(process)


def _wait_until_answering(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if request(port, HELLO, timeout=2)[0] == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the server did not start:\n{log_path.read_text(errors='replace')}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def app_server(app: str, group: str, log_dir: Path, spec: str = "app") -> Any:
    """The server ``app`` runs under in ``group``: gunicorn, granian, or uvicorn (ASGI)."""
    app_spec = f"{module_path(app)}:{spec}"
    if group in WORKER_CLASSES:
        return gunicorn_server(app_spec, group, log_dir, app)
    port = free_port()
    if app in ASGI_APPS:
        return command_server(uvicorn_command(app_spec, port), port, log_dir, app, "uvicorn")
    return command_server(granian_command(app_spec, port), port, log_dir, app, group)


def groups_available(apps: Sequence[str]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``{group: its apps}`` for the groups that can run, and why the others cannot.

    gunicorn runs the WSGI apps; the granian group runs them under granian and the ASGI
    apps under uvicorn, so the granian-to-FastAPI ratios compare figures of one round.
    """
    skipped: dict[str, str] = {}
    groups = {group: wsgi_apps(apps) for group in WORKER_CLASSES}
    asgi = [app for app in apps if app in ASGI_APPS]
    if asgi and not installed("uvicorn"):
        skipped["uvicorn"] = "uvicorn is not installed: no FastAPI figures (requirements.txt)"
        asgi = []
    if installed("granian"):
        groups["granian"] = wsgi_apps(apps) + asgi
    else:
        skipped["granian"] = "granian is not installed (pip install 'funapi_sync[granian]')"
    return groups, skipped


def request(port: int, scenario: Scenario, timeout: float = 10.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if scenario.body else {}
        connection.request(scenario.method, scenario.target, scenario.body or None, headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def check_conformance(servers: Sequence[Server]) -> list[str]:
    """The in-process conformance check again, through gunicorn (statuses and JSON)."""
    problems = []
    for server in servers:
        for scenario in (*TIMED, USER_404):
            status, body = request(server.port, scenario)
            if status != scenario.status:
                problems.append(f"{server.name} {scenario.name}: HTTP status {status}")
            elif scenario.expected is not None and json.loads(body) != scenario.expected:
                problems.append(f"{server.name} {scenario.name}: HTTP body {body!r}")
    return problems


def run_wrk(port: int, scenario: Scenario, seconds: int) -> dict[str, Any]:
    """One wrk run; returns req/s, p50/p99 latency (µs) and error counts."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    command = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    command += ["-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}{scenario.target}"]
    if scenario.body:
        command += ["--", "POST", scenario.body.decode()]
    out = subprocess.run(
        _pinned(CLIENT_CPU, command), capture_output=True, text=True, timeout=seconds + 30
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if out.returncode or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    stats = json.loads(line[len("BENCH ") :])
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    return stats


def run_throughput(
    rounds: int, seconds: int, log_dir: Path, groups: dict[str, list[str]]
) -> dict[str, Any]:
    """``{group: {scenario: {app: {rps, p50_us, p99_us, ...}}}}``, medians of rounds (and
    each round's ``rps`` and ``p99_us``), for each group of :func:`groups_available`.

    All apps of one group are up at once (idle ones cost nothing) so the rounds can
    interleave them: every round runs each scenario against each app in a rotated order.
    """
    results: dict[str, Any] = {}
    for group, apps in groups.items():
        with ExitStack() as stack:
            servers = [stack.enter_context(app_server(app, group, log_dir)) for app in apps]
            problems = check_conformance(servers)
            if problems:
                raise AssertionError("over HTTP the apps disagree:\n" + "\n".join(problems))
            samples: dict[str, dict[str, list[dict[str, Any]]]] = {
                s.name: {app: [] for app in apps} for s in TIMED
            }
            for round_ in range(rounds):
                shift = round_ % len(servers)
                # NOTE: scenario by scenario, the apps back to back, so the figures a
                # ratio compares were measured seconds apart, not a whole round apart
                # (a shared machine's speed drifts over tens of seconds).
                for scenario in TIMED:
                    for server in servers[shift:] + servers[:shift]:
                        stats = run_wrk(server.port, scenario, seconds)
                        samples[scenario.name][server.name].append(stats)
            results[group] = {
                scenario: {app: _summarise(runs) for app, runs in per_app.items()}
                for scenario, per_app in samples.items()
            }
    return results


def _summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    errors = ("connect_errors", "read_errors", "write_errors", "timeouts")
    return {
        "rps": statistics.median(r["rps"] for r in runs),
        "p50_us": statistics.median(r["p50_us"] for r in runs),
        "p99_us": statistics.median(r["p99_us"] for r in runs),
        # Per round, for the ratios (report.round_ratio).
        "rps_rounds": [r["rps"] for r in runs],
        "p99_us_rounds": [r["p99_us"] for r in runs],
        "errors": sum(r[e] for r in runs for e in errors),
        "status_errors": sum(r["status_errors"] for r in runs),
    }


def timed_exchange(
    port: int,
    scenario: Scenario,
    timeout: float = 30.0,
    then: Callable[[], Any] | None = None,
) -> dict[str, float]:
    """Seconds until the full response (Content-Length bytes) and until the server closed.

    ``then()`` is called as soon as the full response is in, before waiting for the close.
    """
    head = f"{scenario.method} {scenario.target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if scenario.body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(scenario.body)}\r\n"
    payload = (head + "Connection: close\r\n\r\n").encode() + scenario.body
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"connection closed before the headers: {data!r}")
            data += chunk
        header, body = data.split(b"\r\n\r\n", 1)
        length = re.search(rb"(?im)^content-length:\s*(\d+)", header)
        if length is None:
            raise RuntimeError(f"no Content-Length in {header!r}")
        while len(body) < int(length.group(1)):
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed before the body ended")
            body += chunk
        full = time.perf_counter() - started
        # NOTE: half-close, as a client done with a Connection: close response would close:
        # gunicorn's sync worker lingers (up to 2 s) until the peer's FIN before it accepts
        # the next connection, and keeping our read side open still shows the server's FIN.
        sock.shutdown(socket.SHUT_WR)
        if then is not None:
            then()
        while sock.recv(65536):
            pass
        closed = time.perf_counter() - started
    return {"full_response_s": full, "closed_s": closed}


#: The isolation part runs the lean funapi_sync app only: both shapes hand tasks over alike.
#: It runs the WSGI apps on gunicorn's sync worker.
ISOLATION_APPS = tuple(app for app in wsgi_apps(APPS) if app != "funapi_sync_seed")


def run_isolation(
    task_seconds: float, tries: int, log_dir: Path, apps: Sequence[str] = ISOLATION_APPS
) -> dict[str, Any]:
    """POST /signup with a trivial task vs one sleeping ``task_seconds``, on a sync worker.

    Per app: time to the full response with each task (median of ``tries``), time until the
    server closed the connection, and how long a ``GET /hello`` sent right after the slow
    signup's response took (a sync worker that runs the task in close() makes it wait).
    """
    results: dict[str, Any] = {}
    for app in apps:
        spec = module_path(app)
        with ExitStack() as stack:
            fast = stack.enter_context(
                gunicorn_server(f"{spec}:create_app(0.0)", "sync", log_dir, f"{app}-fast")
            )
            slow = stack.enter_context(
                gunicorn_server(f"{spec}:create_app({task_seconds!r})", "sync", log_dir, app)
            )
            for server in (fast, slow):  # warm-up, including funapi_sync's lazy pool
                timed_exchange(server.port, SIGNUP)
            time.sleep(task_seconds + 0.05)
            without: list[dict[str, float]] = []
            with_task: list[dict[str, float]] = []
            next_request: list[float] = []

            def follow(port: int = slow.port, times: list[float] = next_request) -> None:
                times.append(timed_exchange(port, HELLO)["full_response_s"])

            # NOTE: both signups of a try follow an idle pause, so neither is measured warm
            # while the other is measured cold.
            for _ in range(tries):
                without.append(timed_exchange(fast.port, SIGNUP))
                time.sleep(0.05)
                with_task.append(timed_exchange(slow.port, SIGNUP, then=follow))
                time.sleep(task_seconds + 0.05)  # let the task finish before the next try
            results[app] = {
                "without_task_s": statistics.median(r["full_response_s"] for r in without),
                "with_task_s": statistics.median(r["full_response_s"] for r in with_task),
                "closed_with_task_s": statistics.median(r["closed_s"] for r in with_task),
                "next_request_s": statistics.median(next_request),
            }
    return results


def temporary_log_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="funapi-bench-")
