"""Startup and shutdown hooks: test client, in-process shutdown, and real gunicorn workers."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from _helpers import ROOT, Server, run_gunicorn, run_server

pytestmark = pytest.mark.server


def run_python(source: str, tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


SHUTDOWN_APP = """
    import time
    from werkzeug.test import EnvironBuilder
    from funapi_sync import App
    from funapi_sync._process import shutdown_process

    events = []
    app = App()

    def resource():
        events.append("resource open")
        yield "resource"
        events.append("resource closed")

    app.register("resource", resource, scope="app")

    @app.on_shutdown
    def first():
        events.append("shutdown first")
        raise RuntimeError("first hook broke")

    @app.on_shutdown
    def second():
        events.append("shutdown second")

    def slow_task():
        events.append("task start")
        time.sleep(0.3)  # the work itself: it must be finished before the hooks run
        events.append("task end")

    @app.get("/", depends=["resource"])
    def index(*, resource, background):
        background.add_task(slow_task)
        return {}

    # Drive the app as a server does: read the body, close() -> tasks are queued.
    environ = EnvironBuilder(path="/").get_environ()
    iterable = app(environ, lambda *args: None)
    b"".join(iterable)
    iterable.close()
"""


#: Drain the pool, close app-scoped values, then run the shutdown hooks in order.
SHUTDOWN_ORDER = [
    "resource open",
    "task start",
    "task end",
    "resource closed",
    "shutdown first",
    "shutdown second",
]


def printed_events(result: subprocess.CompletedProcess[str]) -> list[str]:
    line = next(x for x in result.stdout.splitlines() if x.startswith("EVENTS "))
    return ast.literal_eval(line[len("EVENTS ") :])


def test_shutdown_hooks_run_after_the_pool_drained_and_failures_are_logged(tmp_path):
    result = run_python(
        SHUTDOWN_APP
        + """
    shutdown_process()
    shutdown_process()  # once per process: the second call does nothing
    print("EVENTS", events)
    """,
        tmp_path,
    )
    assert printed_events(result) == SHUTDOWN_ORDER
    assert "shutdown hook first failed" in result.stderr
    assert "RuntimeError: first hook broke" in result.stderr


def test_shutdown_runs_at_interpreter_exit(tmp_path):
    result = run_python(
        SHUTDOWN_APP
        + """
    import atexit
    atexit.register(lambda: print("EVENTS", events))
    """,
        tmp_path,
    )
    assert printed_events(result) == SHUTDOWN_ORDER


LIFECYCLE_APP = """
import os
import time

from funapi_sync import App

RECORD = os.environ["RECORD_FILE"]


def record(line):
    with open(RECORD, "a") as f:
        f.write(f"{line} {os.getpid()}\\n")


app = App()


@app.on_startup
def first():
    record("startup-first")


app.on_startup(lambda: record("startup-second"))

if os.environ.get("FAIL_STARTUP"):

    @app.on_startup
    def connect_database():
        raise RuntimeError("database unreachable")


@app.on_shutdown
def goodbye():
    record("shutdown")


def make_client():
    record("app-scope-create")
    time.sleep(0.1)  # widens the race window between the 8 threads
    yield object()
    record("app-scope-close")


app.register("http", make_client, scope="app")


@app.get("/pid", depends=["http"])
def pid(*, http):
    return {"pid": os.getpid(), "http": id(http)}


if __name__ == "__main__":
    from funapi_sync.server import gunicorn

    # control_socket_disable: parallel test servers must not share gunicorn's control socket.
    gunicorn.start(
        app, port=0, workers=int(os.environ.get("WORKERS", "1")), control_socket_disable=True
    )
"""


CONF = ("-c", "python:funapi_sync.server.gunicorn_conf")


def records(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [
        (event, int(pid))
        for event, pid in (line.split() for line in path.read_text().splitlines() if line)
    ]


def wait_until(check: Callable[[], bool], what: str, timeout: float = 15) -> None:
    """Poll ``check`` (bounded in time) until it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def booted_pids(server: Server) -> list[int]:
    return [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", server.log())]


def write_app(tmp_path: Path) -> Path:
    (tmp_path / "lifeapp.py").write_text(LIFECYCLE_APP)
    return tmp_path / "record.txt"


def check_worker_lifecycle(server: Server, record: Path, workers: int) -> None:
    pids = set(server.worker_pids)
    assert len(pids) == workers
    # post_worker_init runs the hooks before a worker accepts a connection.
    wait_until(lambda: len(records(record)) == 2 * workers, "the startup hooks")
    for pid in pids:
        assert [e for e, p in records(record) if p == pid] == ["startup-first", "startup-second"]
    served = {get_json(f"{server.url}/pid")["pid"] for _ in range(20)}
    assert served <= pids
    assert server.stop() == 0
    events = records(record)
    for pid in pids:
        mine = [e for e, p in events if p == pid]
        assert mine[:2] == ["startup-first", "startup-second"]
        assert mine.count("startup-first") == 1
        assert mine[-1] == "shutdown", mine
        if "app-scope-create" in mine:
            assert mine[-2] == "app-scope-close"


@pytest.mark.server
def test_gunicorn_conf_runs_startup_once_per_worker_and_shutdown_at_exit(tmp_path):
    record = write_app(tmp_path)
    env = {"RECORD_FILE": str(record)}
    with run_gunicorn("lifeapp:app", *CONF, tmp_path=tmp_path, env=env, workers=2) as server:
        check_worker_lifecycle(server, record, workers=2)


@pytest.mark.server
def test_gunicorn_start_wires_the_same_worker_hooks(tmp_path):
    record = write_app(tmp_path)
    env = {"RECORD_FILE": str(record), "WORKERS": "2"}
    with run_server(
        [sys.executable, "lifeapp.py"],
        log_path=tmp_path / "start.log",
        cwd=tmp_path,
        env=env,
        workers=2,
    ) as server:
        wait_until(lambda: len(booted_pids(server)) >= 2, "two workers")
        server.worker_pids = booted_pids(server)
        check_worker_lifecycle(server, record, workers=2)


@pytest.mark.server
def test_failing_startup_hook_fails_the_worker_boot_with_a_clear_log(tmp_path):
    record = write_app(tmp_path)
    env = {"RECORD_FILE": str(record), "FAIL_STARTUP": "1"}
    with run_gunicorn("lifeapp:app", *CONF, tmp_path=tmp_path, env=env) as server:
        try:
            returncode = server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"gunicorn kept running:\n{server.log()}") from None
        log = server.log()
    [pid] = server.worker_pids
    assert returncode == 3, log  # gunicorn's WORKER_BOOT_ERROR halts the master
    assert (
        f"startup hook connect_database failed in process {pid}; this process serves no"
        " request until its startup hooks succeed"
    ) in log
    assert "RuntimeError: database unreachable" in log
    assert "Worker failed to boot" in log
    # The hooks before the failing one ran; no shutdown hook for a worker that never started.
    assert [e for e, p in records(record) if p == pid] == ["startup-first", "startup-second"]


@pytest.mark.server
def test_app_scoped_value_is_made_once_per_worker_under_concurrent_requests(tmp_path):
    record = write_app(tmp_path)
    env = {"RECORD_FILE": str(record)}
    args = ("--threads", "8", *CONF)
    with run_gunicorn("lifeapp:app", *args, tmp_path=tmp_path, env=env) as server:
        wait_until(lambda: len(records(record)) == 2, "the startup hooks")
        with ThreadPoolExecutor(max_workers=16) as executor:
            answers = list(executor.map(lambda _: get_json(f"{server.url}/pid"), range(50)))
        assert "gthread" in server.log()
        assert server.stop() == 0
    [pid] = server.worker_pids
    assert {a["pid"] for a in answers} == {pid}
    assert len({a["http"] for a in answers}) == 1
    events = [e for e, p in records(record) if p == pid]
    assert events.count("app-scope-create") == 1
    assert events[-2:] == ["app-scope-close", "shutdown"]
