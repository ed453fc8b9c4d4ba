"""The command line, run for real: ``python -m funapi_sync`` (and ``funapi-sync`` if installed).

Each test writes its app module into ``tmp_path`` and runs the command there, in a
subprocess, against 127.0.0.1: the dev server on a free port, gunicorn on an ephemeral one.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _helpers import ROOT, _version, run_server

from funapi_sync import cli

pytestmark = pytest.mark.server


MODULE = [sys.executable, "-m", "funapi_sync"]
SCRIPT = shutil.which("funapi-sync")
COMMANDS = [pytest.param(MODULE, id="python-m")]
if SCRIPT is not None:
    COMMANDS.append(pytest.param([SCRIPT], id="console-script"))


HOOKS_APP = """
    import logging
    import os
    import time

    from funapi_sync import App

    app = App(title="Hooks API")
    log = logging.getLogger("hooks")
    LOG = os.environ["HOOK_LOG"]


    def record(event):
        with open(LOG, "a") as file:
            file.write(f"{event} {os.getpid()}\\n")


    @app.on_startup
    def started():
        record("startup")
        log.info("hooks app started in %d", os.getpid())


    @app.on_shutdown
    def stopped():
        time.sleep(float(os.environ.get("SHUTDOWN_SECONDS", "0")))  # a slow cleanup
        record("shutdown")


    def slow_task(name):
        time.sleep(0.5)
        record(f"task {name}")


    @app.get("/ping")
    def ping(*, background):
        return {"pid": os.getpid()}


    @app.post("/task/<name>")
    def task(input, *, background):
        background.add_task(slow_task, input.path["name"])
        return {"queued": input.path["name"]}
"""


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    return path


def environment(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def hook_events(log: Path) -> list[tuple[str, int]]:
    if not log.exists():
        return []
    rows = []
    for line in log.read_text().splitlines():
        event, pid = line.rsplit(" ", 1)
        rows.append((event, int(pid)))
    return rows


def get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_until(condition, what: str, timeout: float = 20.0):
    """Poll ``condition`` (bounded) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
        except OSError:
            result = None
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.mark.server
@pytest.mark.timeout(60)
def test_dev_serves_prints_the_urls_and_runs_the_hooks_in_its_process(tmp_path):
    write(tmp_path, "hooks_app.py", HOOKS_APP)
    hook_log = tmp_path / "hooks.log"
    port = free_port()
    out = tmp_path / "dev.out"
    with open(out, "w") as output:
        process = subprocess.Popen(
            [*MODULE, "dev", "hooks_app:app", "--port", str(port)],
            cwd=tmp_path,
            env=environment(HOOK_LOG=str(hook_log)),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        status, body = wait_until(lambda: get(port, "/ping"), "the dev server")
        assert status == 200
        assert json.loads(body) == {"pid": process.pid}
        assert get(port, "/docs")[0] == 200
        assert hook_events(hook_log) == [("startup", process.pid)]
        text = out.read_text()
        assert f" * funapi_sync app 'Hooks API' (hooks_app:app) on http://127.0.0.1:{port}/" in text
        assert f" * interactive API docs on http://127.0.0.1:{port}/docs" in text
        # The app's INFO line reaches stderr with no logging configured.
        assert f"[INFO] hooks: hooks app started in {process.pid}" in text

        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        assert hook_events(hook_log) == [("startup", process.pid), ("shutdown", process.pid)]
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- the dev server's output:\n{out.read_text()}") from None
    finally:
        stop_group(process)


@pytest.mark.server
@pytest.mark.timeout(90)
def test_dev_reload_runs_the_hooks_only_in_each_serving_child_never_in_the_watcher(tmp_path):
    module = write(tmp_path, "hooks_app.py", HOOKS_APP)
    hook_log = tmp_path / "hooks.log"
    port = free_port()
    out = tmp_path / "dev.out"
    with open(out, "w") as output:
        watcher = subprocess.Popen(
            [*MODULE, "dev", "hooks_app:app", "--port", str(port), "--reload"],
            cwd=tmp_path,
            env=environment(HOOK_LOG=str(hook_log), SHUTDOWN_SECONDS="1"),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        first = json.loads(wait_until(lambda: get(port, "/ping")[1], "the first child"))["pid"]
        assert first != watcher.pid
        assert hook_events(hook_log) == [("startup", first)]

        # A source change: the watcher restarts the child; the old child shuts down.
        # NOTE: one change (the mtime only): a write and then a touch could be seen as two
        # changes, one by each child, and reload twice.
        later = time.time() + 5
        os.utime(module, (later, later))

        def new_child():
            pid = json.loads(get(port, "/ping")[1])["pid"]
            return pid if pid != first else None

        second = wait_until(new_child, "the reloaded child")
        assert second != watcher.pid
        wait_until(lambda: len(hook_events(hook_log)) >= 3, "the second startup")

        # Ctrl-C in the terminal: SIGINT to both processes. The watcher waits for the
        # child's slow shutdown hook (1 s) instead of killing it.
        os.killpg(watcher.pid, signal.SIGINT)
        assert watcher.wait(20) == 0
        assert hook_events(hook_log) == [
            ("startup", first),
            ("shutdown", first),
            ("startup", second),
            ("shutdown", second),
        ]
        # The banner is printed once, by the process the user started.
        assert out.read_text().count(" * funapi_sync app 'Hooks API'") == 1
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- the dev server's output:\n{out.read_text()}") from None
    finally:
        stop_group(watcher)


NO_CONTROL_SOCKET = ["--no-control-socket"] if _version() >= (25, 1) else []


@pytest.mark.server
@pytest.mark.timeout(90)
def test_run_passes_gunicorn_options_runs_hooks_per_worker_and_drains_at_sigterm(tmp_path):
    write(tmp_path, "hooks_app.py", HOOKS_APP)
    hook_log = tmp_path / "hooks.log"
    command = [
        *MODULE,
        "run",
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--threads",
        "2",
        *NO_CONTROL_SOCKET,
        "hooks_app:app",
    ]
    with run_server(
        command,
        log_path=tmp_path / "run.log",
        cwd=tmp_path,
        env={"HOOK_LOG": str(hook_log)},
        workers=2,
    ) as server:
        assert "Using worker: gthread" in server.log()
        # post_worker_init ran the startup hook in each worker before it served.
        for pid in server.worker_pids:
            server.wait_for_log(rf"\[{pid}\] \[INFO\] hooks app started in {pid}")
        assert sorted(pid for event, pid in hook_events(hook_log)) == sorted(server.worker_pids)
        assert get(server.port, "/task/drained", "POST")[0] == 200
        assert server.stop() == 0
    events = hook_events(hook_log)
    assert [event for event, _ in events].count("task drained") == 1
    # Each worker drained its pool, then ran its shutdown hook.
    assert sorted(pid for event, pid in events if event == "shutdown") == sorted(server.worker_pids)
    task_pid = next(pid for event, pid in events if event == "task drained")
    assert events.index(("task drained", task_pid)) < events.index(("shutdown", task_pid))


@pytest.mark.server
@pytest.mark.timeout(90)
def test_run_starts_one_worker_per_cpu_by_default(tmp_path):
    if "WEB_CONCURRENCY" in os.environ:
        pytest.skip("WEB_CONCURRENCY is set, so gunicorn's worker count comes from it")
    write(tmp_path, "hooks_app.py", HOOKS_APP)
    expected = cli._cpu_count()
    command = [*MODULE, "run", "hooks_app:app", "--bind", "127.0.0.1:0", *NO_CONTROL_SOCKET]
    with run_server(
        command,
        log_path=tmp_path / "run.log",
        cwd=tmp_path,
        env={"HOOK_LOG": str(tmp_path / "hooks.log")},
        workers=expected,
    ) as server:
        assert len(server.worker_pids) == expected
        assert get(server.port, "/ping")[0] == 200


def run_cli(command: list[str], *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- a real process: what the in-process tests (tests/test_cli.py) cannot show -----------


@pytest.mark.parametrize("command", COMMANDS)
def test_a_real_process_prints_the_routes_and_exits_0_or_2(tmp_path, command):
    # `python -m funapi_sync` (and the console script when installed) end to end: the
    # module's __main__, the working directory on sys.path, and the process's exit status.
    write(tmp_path, "one_route.py", ONE_ROUTE_APP)

    result = run_cli(command, "routes", "one_route", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2].split() == [
        "GET",
        "/ping",
        "one_route.ping",
        "-",
        "-",
        "-",
        "-",
    ]
    result = run_cli(command, "routes", "one_route:missing", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "funapi-sync: error: module 'one_route' has no attribute 'missing'; its App instances: app"
    ]


ONE_ROUTE_APP = """
    from funapi_sync import App

    app = App()


    @app.get("/ping")
    def ping():
        return {}
"""
