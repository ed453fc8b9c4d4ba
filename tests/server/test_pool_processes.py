"""The pool: fork safety, back-pressure and its bound, abort, terminating tasks, bounded exit.

On CPython 3.8+ a ThreadPoolExecutor that ran anything before ``fork()`` is dead in the
child: its worker thread did not survive the fork, but its idle semaphore still counts
that thread as free, so ``submit()`` never starts a new one and the future never
completes. gunicorn ``--preload`` forks workers from a master that may have used the
pool at import time, so funapi_sync's pool must be replaced in the child.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import pytest
from werkzeug.test import EnvironBuilder

from funapi_sync import App

pytestmark = pytest.mark.server


ROOT = Path(__file__).resolve().parents[2]


needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")


def in_child(body: Callable[[], str], timeout: float = 10.0) -> str:
    """Run ``body`` in a forked child and return what it reported through a pipe.

    The child always leaves through ``os._exit``: it must never run pytest's code (or
    the interpreter's exit hooks) after the fork.
    """
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a multi-threaded process may deadlock; that
        # is exactly the situation under test.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child process
        code = 0
        try:
            os.close(read_end)
            try:
                report = body()
            except BaseException as exc:
                report = f"child raised {exc!r}"
                code = 1
            os.write(write_end, report.encode())
        finally:
            os._exit(code)
    os.close(write_end)
    chunks: list[bytes] = []
    try:
        ready, _, _ = select.select([read_end], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"the child reported nothing within {timeout} s (killed)")
        while chunk := os.read(read_end, 4096):
            chunks.append(chunk)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    report = b"".join(chunks).decode()
    assert os.waitstatus_to_exitcode(status) == 0, report
    return report


@needs_fork
def test_a_plain_executor_used_before_fork_never_runs_tasks_in_the_child():
    executor = ThreadPoolExecutor(max_workers=2)
    try:
        assert executor.submit(lambda: "ran").result(timeout=5) == "ran"

        def child() -> str:
            future = executor.submit(lambda: "ran")
            try:
                return future.result(timeout=1.0)
            except FutureTimeout:
                return "hung"

        # This is the trap the pool guards against: the future never completes.
        assert in_child(child) == "hung"
        # The parent's executor is unaffected.
        assert executor.submit(lambda: "still ran").result(timeout=5) == "still ran"
    finally:
        executor.shutdown(wait=True)


@needs_fork
def test_the_pool_used_before_fork_runs_tasks_in_the_child():
    app = App()
    ran_in: list[int] = []

    @app.get("/")
    def index(*, background):
        background.add_task(lambda: ran_in.append(os.getpid()))
        background.add_task(lambda: ran_in.append(threading.get_ident()))
        return {}

    client = app.test_client()
    client.get("/")
    assert ran_in[0] == os.getpid()
    assert app.background.stats()["completed"] >= 2

    def child() -> str:
        fresh = app.background.stats()
        ran_in.clear()
        environ = EnvironBuilder(path="/").get_environ()
        iterable = app(environ, lambda status, headers, exc_info=None: None)
        b"".join(iterable)
        iterable.close()
        if not app.background.drain(timeout=5):
            return "the child's tasks did not run"
        return (
            f"completed before={fresh['completed']} after={app.background.stats()['completed']}"
            f" pid={ran_in[0] if ran_in else None} other_thread={ran_in[1:] != [main]}"
        )

    main = threading.get_ident()
    report = in_child(child)
    # The child got a fresh pool (its counts start at zero), ran both tasks in its own
    # process, and on a pool thread rather than inline.
    assert report.startswith("completed before=0 after=2 pid=")
    child_pid = int(report.split("pid=")[1].split()[0])
    assert child_pid != os.getpid()
    assert report.endswith("other_thread=True")
    # The parent's pool keeps working after the fork.
    ran_in.clear()
    client.get("/")
    assert ran_in[0] == os.getpid()


@needs_fork
def test_the_pool_used_before_fork_still_drains_in_the_child_with_the_test_client():
    app = App()
    calls: list[str] = []

    @app.post("/jobs")
    def jobs(*, background):
        for number in range(3):
            background.add_task(calls.append, f"job {number}")
        return {}, 202

    client = app.test_client()
    assert client.post("/jobs").status_code == 202

    def child() -> str:
        calls.clear()
        status = client.post("/jobs").status_code
        return f"{status} {calls}"

    assert in_child(child) == "202 ['job 0', 'job 1', 'job 2']"


#: Drive an app as a server does, in a thread: body read, then close(); `returned` is set
#: once close() has returned.
PRELUDE = """
import logging, os, signal, sys, threading, time
from werkzeug.test import EnvironBuilder
from funapi_sync import App
from funapi_sync import pool

logging.basicConfig(format="%(levelname)s %(name)s %(message)s")

def request(app, path, returned=None):
    environ = EnvironBuilder(path=path).get_environ()
    iterable = app(environ, lambda status, headers, exc_info=None: None)
    b"".join(iterable)
    try:
        iterable.close()
    finally:
        if returned is not None:
            returned.set()

def in_thread(app, path):
    returned = threading.Event()
    threading.Thread(target=request, args=(app, path, returned), daemon=True).start()
    return returned
"""


def run_script(source: str, tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(PRELUDE + textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


#: The id a task's log line ends with; the assertions compare the rest.
TASK_ID = re.compile(r" \[task [0-9a-f]{16}-[0-9a-f]+\]$")


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [
        TASK_ID.sub("", line) for line in result.stderr.splitlines() if line.startswith("ERROR")
    ]


def test_interpreter_exit_with_a_hung_task_exits_after_the_shutdown_timeout(tmp_path):
    result = run_script(
        """
app = App(background_shutdown_timeout=0.5)
hanging = threading.Event()

def hang():
    hanging.set()
    threading.Event().wait()  # a stuck network call: never returns

@app.get("/hang")
def hang_route(*, background):
    background.add_task(hang)
    background.add_task(print, "never")
    return {}

request(app, "/hang")
assert hanging.wait(5)
print("leaving", flush=True)
""",
        tmp_path,
        timeout=30,
    )
    # Without the bound, the executor's join at exit waits for ever (the run times out).
    assert result.returncode == 1, result.stderr
    assert result.stdout == "leaving\n"
    what = "did not finish within the 0.5 s shutdown timeout"
    assert error_lines(result) == [
        f"ERROR funapi_sync.background background task __main__.hang of GET /hang {what}"
        " (still running)",
        f"ERROR funapi_sync.background background task print of GET /hang {what} (never started)",
        f"ERROR funapi_sync process {result.stderr.split('process ')[1].split()[0]} exits"
        " with 1 background task(s) still running (named above); they are abandoned",
    ]


def test_app_run_with_a_hung_task_exits_after_the_shutdown_timeout_on_sigterm(tmp_path):
    script = tmp_path / "dev.py"
    script.write_text(
        textwrap.dedent(
            """
            import logging, threading
            from funapi_sync import App

            logging.basicConfig(format="%(levelname)s %(name)s %(message)s")
            app = App(background_shutdown_timeout=1)

            def hang():
                print("hanging", flush=True)
                threading.Event().wait()

            @app.get("/hang")
            def hang_route(*, background):
                background.add_task(hang)
                return {}

            app.run(port=0)
            """
        )
    )
    log_path = tmp_path / "dev.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(script)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
            cwd=tmp_path,
        )
    try:
        port = wait_for(log_path, r"Running on http://127\.0\.0\.1:(\d+)", process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hang", timeout=10) as response:
            # NOTE: read it all: a client closing with unread data resets the connection,
            # and werkzeug's dev server then skips close() (reported, but no task runs).
            assert (response.status, response.read()) == (200, b"{}")
        wait_for(log_path, r"hanging", process)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(20)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    text = log_path.read_text()
    assert code == 1, text
    assert 1 <= took < 10, took
    assert (
        "ERROR funapi_sync.background background task __main__.hang of GET /hang did not"
        " finish within the 1.0 s shutdown timeout (still running)"
    ) in text
    assert "background task(s) still running (named above); they are abandoned" in text


def wait_for(log_path: Path, pattern: str, process: subprocess.Popen, timeout: float = 15) -> str:
    """Wait (bounded) until ``pattern`` is in the log; return its first group (or match)."""
    deadline = time.monotonic() + timeout
    regex = re.compile(pattern)
    while time.monotonic() < deadline:
        match = regex.search(log_path.read_text())
        if match:
            return match.group(1) if regex.groups else match.group(0)
        if process.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError(f"{pattern!r} not in the log:\n{log_path.read_text()}")


@needs_fork
def test_an_apps_own_pool_used_before_fork_is_replaced_in_the_child():
    from funapi_sync.backends import ThreadBackend

    app = App(background_workers=1, background_backend=ThreadBackend(own_pool=True))
    ran_in: list[int] = []

    @app.get("/")
    def index(*, background):
        background.add_task(lambda: ran_in.append(os.getpid()))
        return {}

    client = app.test_client()
    client.get("/")
    parents = app.background.pool()
    assert ran_in == [os.getpid()]

    def child() -> str:
        ran_in.clear()
        client.get("/")
        fresh = app.background.pool() is not parents
        return f"fresh={fresh} ran_here={ran_in == [os.getpid()]}"

    assert in_child(child) == "fresh=True ran_here=True"
    # The parent's own pool keeps working after the fork.
    ran_in.clear()
    client.get("/")
    assert ran_in == [os.getpid()]
    assert app.background.pool() is parents
