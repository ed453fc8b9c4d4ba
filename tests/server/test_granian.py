"""funapi_sync under a real granian (``funapi-sync run --server granian``) on 127.0.0.1.

The app is ``live_apps/background_app.py`` (each task event is one line appended to
``$BG_LOG``), wrapped by a module written into ``tmp_path`` that adds startup and shutdown
hooks which record themselves too.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from _helpers import ROOT, run_server
from test_gunicorn import _UNFINISHED, LIVE_APPS, events, named, request, wait_for_events

pytest.importorskip("granian", reason="granian is not installed (pip install funapi_sync[granian])")

pytestmark = [pytest.mark.server, pytest.mark.timeout(90)]

HOOKED_APP = """
from background_app import app, record

app.on_startup(lambda: record("startup"))
app.on_shutdown(lambda: record("shutdown"))
"""


def _free_port() -> int:
    # NOTE: granian reports the port it was given, so port 0 would leave the test blind.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_granian(tmp_path: Path, bg_log: Path, *args: str, workers: int = 1, **env: str):
    (tmp_path / "hooked_app.py").write_text(textwrap.dedent(HOOKED_APP))
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "funapi_sync",
        "run",
        "--server",
        "granian",
        "hooked_app:app",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        *args,
    ]
    return run_server(
        command,
        log_path=tmp_path / f"granian-{time.monotonic_ns()}.log",
        cwd=tmp_path,
        env={"BG_LOG": str(bg_log), "PYTHONPATH": str(LIVE_APPS), **env},
        wait_workers=False,
    )


def wait_until_serving(server, bg_log: Path, workers: int = 1) -> None:
    """Bounded: each worker ran its startup hooks, and one of them answers."""
    wait_for_events(bg_log, lambda rows: len(named(rows, "startup")) == workers)
    deadline = time.monotonic() + 15
    while True:
        try:
            if request(server, "/pid")[0] == 200:
                return
        except ConnectionError:
            # NOTE: the hooks ran before granian's serve loop starts listening.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@pytest.fixture
def bg_log(tmp_path: Path) -> Path:
    return tmp_path / "events.log"


def test_hooks_run_once_per_worker_and_every_task_runs(tmp_path, bg_log):
    with serve_granian(tmp_path, bg_log, "--threads", "4", workers=2) as server:
        wait_until_serving(server, bg_log, workers=2)
        with ThreadPoolExecutor(max_workers=8) as clients:
            statuses = list(
                clients.map(lambda _: request(server, "/count?n=2", "POST")[0], range(300))
            )
        assert statuses == [200] * 300
        assert server.stop() == 0
    rows = events(bg_log)
    workers = {pid for _, pid, _ in named(rows, "startup")}
    assert len(workers) == 2
    counted = named(rows, "count")
    print(f"task executions counted after 300 requests x 2 tasks under granian: {len(counted)}")
    assert Counter(event for event, _, _ in counted) == {"count 0": 300, "count 1": 300}
    assert {pid for _, pid, _ in counted} <= workers
    # Startup once per worker; at exit each worker drained, then ran its shutdown hook.
    assert Counter(pid for _, pid, _ in named(rows, "shutdown")) == dict.fromkeys(workers, 1)
    for pid in workers:
        last_task = max(t for _, task_pid, t in counted if task_pid == pid)
        (shutdown,) = [t for _, hook_pid, t in named(rows, "shutdown") if hook_pid == pid]
        assert last_task <= shutdown
    assert "did not finish" not in server.log()


def test_tasks_start_after_the_body_was_fully_sent(tmp_path, bg_log):
    gate = tmp_path / "gate"
    with serve_granian(tmp_path, bg_log) as server:
        wait_until_serving(server, bg_log)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            connection.request("GET", f"/paused-stream?gate={gate}")
            response = connection.getresponse()
            assert response.status == 200
            assert [response.readline() for _ in range(4)] == [
                f"chunk {number}\n".encode() for number in range(4)
            ]
            paused = wait_for_events(bg_log, lambda rows: len(named(rows, "body")) >= 1)
            assert [event for event, _, _ in named(paused, "body")] == ["body paused handed_over=0"]
            assert not named(events(bg_log), "task")
            gate.touch()
            assert response.read() == b"last chunk\n"
        finally:
            connection.close()
        rows = wait_for_events(bg_log, lambda rows: len(named(rows, "task started")) == 1)
        assert [event for event, _, _ in rows if not event.startswith("startup")] == [
            "body paused handed_over=0",
            "body done",
            "task started",
        ]
        assert server.stop() == 0


def test_sigterm_drains_queued_tasks_before_the_worker_exits(tmp_path, bg_log):
    with serve_granian(tmp_path, bg_log) as server:
        wait_until_serving(server, bg_log)
        for number in range(20):
            assert request(server, f"/sleep/t{number}?seconds=0.3")[0] == 200
        assert len(named(events(bg_log), "slept")) < 20  # most are still queued
        assert server.stop() == 0
    slept = {event.split()[1] for event, _, _ in named(events(bg_log), "slept")}
    assert slept == {f"t{number}" for number in range(20)}
    assert "ERROR" not in server.log()
    assert len(named(events(bg_log), "shutdown")) == 1


def test_sigterm_with_a_short_shutdown_timeout_names_every_unfinished_task(tmp_path, bg_log):
    with serve_granian(tmp_path, bg_log, BG_SHUTDOWN_TIMEOUT="1") as server:
        wait_until_serving(server, bg_log)
        for number in range(20):
            assert request(server, f"/sleep/t{number}?seconds=0.5")[0] == 200
        started = time.monotonic()
        server.stop()
        took = time.monotonic() - started
    log = server.log()
    slept = {event.split()[1] for event, _, _ in named(events(bg_log), "slept")}
    unfinished = {match["name"]: match["state"] for match in _UNFINISHED.finditer(log)}
    assert unfinished, log
    # Nothing is lost without a log line: each task either ran or is named at ERROR.
    assert slept | set(unfinished) == {f"t{number}" for number in range(20)}, (slept, log)
    assert any(state == "never started" for state in unfinished.values())
    assert took < 8, took


# -- the command line's options -------------------------------------------------------


def test_run_server_granian_options_and_their_defaults(monkeypatch):
    from funapi_sync.server import granian

    monkeypatch.delenv("PORT", raising=False)
    options, targets = granian.parse_options(["m:app"], default_workers=3)
    assert targets == ["m:app"]
    assert options == {
        "host": "127.0.0.1",
        "port": 8000,
        "workers": 3,
        "threads": 1,
        "backlog": 1024,
    }
    monkeypatch.setenv("PORT", "5000")
    options, _ = granian.parse_options(
        ["-w", "2", "--threads", "4", "--backlog", "256", "--workers-kill-timeout", "40", "m:app"],
        default_workers=3,
    )
    assert options == {
        "host": "0.0.0.0",
        "port": 5000,
        "workers": 2,
        "threads": 4,
        "backlog": 256,
        "workers_kill_timeout": 40,
    }


def test_run_server_granian_refuses_a_bind_without_a_port(capsys):
    from funapi_sync.server import granian

    with pytest.raises(SystemExit):
        granian.parse_options(["--bind", "localhost", "m:app"], default_workers=1)
    assert (
        "--bind takes HOST:PORT, got 'localhost'; e.g. --bind 0.0.0.0:8000"
        in capsys.readouterr().err
    )


def test_a_failing_startup_hook_fails_the_server(tmp_path):
    (tmp_path / "failing_app.py").write_text(
        textwrap.dedent(
            """
            from funapi_sync import App

            app = App()

            @app.on_startup
            def connect():
                raise RuntimeError("database unreachable")
            """
        )
    )
    command = [sys.executable, "-m", "funapi_sync", "run", "--server", "granian"]
    command += ["failing_app:app", "--bind", f"127.0.0.1:{_free_port()}"]
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "RuntimeError: database unreachable" in done.stdout + done.stderr
