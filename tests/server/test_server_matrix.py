"""Background tasks under every WSGI server from PyPI: after the response, and never lost silently.

Each server serves ``live_apps/matrix_app.py`` on 127.0.0.1: ``POST /tasks/<id>`` adds a
task that records ``started``, sleeps 0.4 s and records ``ran``. For each server and for
SIGTERM and SIGINT, the test checks that the client has its response before the task ran,
then signals the server while the task runs: every accepted task ran or is named at ERROR
in the server's log (``accepted == ran + named``). A server that is not installed is
skipped with the reason. Every wait is bounded; each server runs in its own process group,
killed on the way out.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "tests" / "server" / "live_apps"
BIN = Path(sys.executable).parent
APP = "matrix_app:app"
GRACEFUL_UWSGI = ["--hook-master-start", "unix_signal:15 gracefully_kill_them_all"]


def _uwsgi(*options: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        base = [str(BIN / "uwsgi"), "--http-socket", f"127.0.0.1:{port}", "--module", APP]
        return [*base, "--master", *options]

    return command


# name -> (what must be installed, command for a port)
SERVERS: dict[str, tuple[str, Callable[[int], list[str]]]] = {
    "waitress-1-thread": (
        "waitress",
        lambda port: (
            [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", "--threads=1", APP]
        ),
    ),
    "waitress-4-threads": (
        "waitress",
        lambda port: (
            [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", "--threads=4", APP]
        ),
    ),
    "cheroot": (
        "cheroot",
        lambda port: [sys.executable, "-m", "cheroot", "--bind", f"127.0.0.1:{port}", APP],
    ),
    "wsgiref": (
        "wsgiref",
        lambda port: [sys.executable, str(APPS / "wsgiref_serve.py"), str(port)],
    ),
    "werkzeug-dev": (
        "werkzeug",
        lambda port: [sys.executable, "-m", "funapi_sync", "dev", APP, "--port", str(port)],
    ),
    "uwsgi-die-on-term": ("pyuwsgi", _uwsgi("--die-on-term")),
    "uwsgi-die-on-term-threads": ("pyuwsgi", _uwsgi("--die-on-term", "--enable-threads")),
    "uwsgi-graceful": ("pyuwsgi", _uwsgi("--enable-threads", *GRACEFUL_UWSGI)),
    "granian": (
        "granian",
        lambda port: (
            [
                str(BIN / "granian"),
                "--interface",
                "wsgi",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                APP,
            ]
        ),
    ),
    "gunicorn-gevent": (
        "gevent",
        lambda port: (
            [sys.executable, "-m", "gunicorn", "-k", "gevent", "--bind", f"127.0.0.1:{port}", APP]
        ),
    ),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(port: int, method: str, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    tasks: Path
    log: Path

    def events(self) -> str:
        return self.tasks.read_text() if self.tasks.exists() else ""

    def server_log(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, event: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while event not in self.events():
            assert time.monotonic() < deadline, f"no {event!r}:\n{self.server_log()}"
            time.sleep(0.01)

    def stop(self, sig: int, timeout: float = 10.0) -> float:
        """Send ``sig`` to the server's main process; return how long it took to exit."""
        start = time.monotonic()
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server did not exit within {timeout} s:\n{self.server_log()}")
        return time.monotonic() - start

    def counts(self) -> tuple[int, int]:
        """(tasks that ran, tasks named at ERROR in the server's log)."""
        ran = len(re.findall(r"^ran ", self.events(), re.M))
        named = len(re.findall(r"ERROR .*background task", self.server_log()))
        return ran, named


@contextmanager
def serving(
    name: str, tmp_path: Path, command: list[str] | None = None, **env: str
) -> Iterator[Running]:
    """Start server ``name`` on a free loopback port; yield once it answers /ping."""
    requirement, make = SERVERS.get(name, ("gunicorn", None))
    if importlib.util.find_spec(requirement) is None:
        pytest.skip(f"{requirement} is not installed (pip install -e '.[test]')")
    port = _free_port()
    tasks, log = tmp_path / f"{name}.tasks", tmp_path / f"{name}.log"
    full_env = {**os.environ, "MATRIX_LOG": str(tasks), "PYTHONUNBUFFERED": "1", **env}
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(APPS)])
    argv = command if command is not None else make(port)  # type: ignore[misc]
    argv = [part.replace("{port}", str(port)) for part in argv]
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            argv,
            cwd=APPS,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Running(process, port, tasks, log)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                _request(port, "GET", "/ping", timeout=1)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"{name} did not start here:\n{running.server_log()[-2000:]}")
                time.sleep(0.05)
        yield running
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("name", list(SERVERS))
def test_a_task_runs_after_the_response_and_a_stop_signal_drains_or_names_it(
    name: str, sig: int, tmp_path: Path
) -> None:
    with serving(name, tmp_path) as server:
        status, _ = _request(server.port, "POST", "/tasks/1")
        events_at_response = server.events()
        assert status == 202
        assert "ran 1" not in events_at_response  # the client had its answer first
        if name == "waitress-1-thread":
            # the task holds a pool thread, not waitress's one thread
            start = time.monotonic()
            assert _request(server.port, "GET", "/ping")[0] == 200
            assert time.monotonic() - start < 0.3
        server.wait_for("started 1")
        assert "ran 1" not in server.events()
        took = server.stop(sig)
        ran, named = server.counts()
    print(
        f"\n{name} {signal.Signals(sig).name}: accepted=1 ran={ran} named={named} exit={took:.2f}s"
    )
    assert ran + named >= 1, f"the task was lost silently:\n{server.server_log()}"


def _busy_stop(server: Running) -> list[object]:
    """Signal SIGTERM while a task runs and a slow request is in flight; return its answer."""
    assert _request(server.port, "POST", "/tasks/1")[0] == 202
    answers: list[object] = []

    def slow() -> None:
        try:
            answers.append(_request(server.port, "GET", "/slow")[0])
        except OSError as exc:
            answers.append(type(exc).__name__)

    thread = threading.Thread(target=slow)
    thread.start()
    server.wait_for("started 1")
    time.sleep(0.15)  # NOTE: no event says the worker took the slow request; 1 s request
    server.stop(signal.SIGTERM)
    thread.join(10)
    return answers


def test_uwsgi_die_on_term_loses_a_busy_workers_tasks_silently_and_warns_at_boot(tmp_path):
    # What docs/deployment.md says: uWSGI skips Python's exit for a busy worker.
    with serving("uwsgi-die-on-term-threads", tmp_path) as server:
        answers = _busy_stop(server)
        ran, named = server.counts()
        log = server.server_log()
    assert "WARNING funapi_sync" in log
    assert "--die-on-term" in log
    assert answers != [200]
    assert (ran, named) == (0, 0), "uWSGI now drains a busy worker: update the docs"


def test_uwsgi_graceful_stop_finishes_the_request_and_drains_a_busy_worker(tmp_path):
    with serving("uwsgi-graceful", tmp_path) as server:
        answers = _busy_stop(server)
        ran, named = server.counts()
        log = server.server_log()
    assert "--die-on-term" not in log.split("spawned uWSGI master")[-1]
    assert answers == [200]
    assert (ran, named) == (1, 0)


@pytest.mark.parametrize("conf", [False, True], ids=["plain", "conf-hooks"])
def test_a_graceful_timeout_below_the_drain_is_a_boot_warning_and_the_rest_is_named(
    conf: bool, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "gunicorn", "--graceful-timeout", "3"]
    command += ["--bind", "127.0.0.1:{port}", "--no-control-socket"]
    if conf:
        command += ["-c", "python:funapi_sync.server.gunicorn_conf"]
    with serving(
        "gunicorn", tmp_path, [*command, APP], MATRIX_TASK="60", MATRIX_BG_WORKERS="1"
    ) as server:
        for task_id in range(6):  # one hung task and five queued behind it
            assert _request(server.port, "POST", f"/tasks/{task_id}")[0] == 202
        server.wait_for("started 0")
        took = server.stop(signal.SIGTERM)
        log = server.server_log()
    assert re.search(r"WARNING .*--graceful-timeout is 3 s but background_shutdown_timeout", log)
    assert len(re.findall(r"ERROR .*background task .* did not finish", log)) == 6, log
    assert "SIGKILL" not in log, log  # named before the arbiter's kill
    assert took < 3.5
