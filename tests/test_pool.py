"""The pool: fork safety, back-pressure and its bound, abort, terminating tasks, bounded exit.

On CPython 3.8+ a ThreadPoolExecutor that ran anything before ``fork()`` is dead in the
child: its worker thread did not survive the fork, but its idle semaphore still counts
that thread as free, so ``submit()`` never starts a new one and the future never
completes. gunicorn ``--preload`` forks workers from a master that may have used the
pool at import time, so funapi_sync's pool must be replaced in the child.
"""

from __future__ import annotations

import functools
import logging
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
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import pytest
from server import ROOT
from werkzeug.test import EnvironBuilder

from funapi_sync import App, BackgroundTasks
from funapi_sync.pool import Batch, PoolSettings, TaskPool, set_heartbeat

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


def test_process_wide_state_has_one_at_fork_reset():
    # STYLE: the pool, the fan-out executor and the lifecycle reset in one place.
    package = ROOT / "funapi_sync"
    calls = {
        str(path.relative_to(package)): path.read_text().count("os.register_at_fork(")
        for path in package.rglob("*.py")
    }
    assert {name: count for name, count in calls.items() if count} == {"_process.py": 1}


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


# -- in a process of its own: each of these ends or breaks its pool ----------------------

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


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("ERROR")]


HELD_APP = """
app = App(background_workers=1, background_queue_size=1, **SETTINGS)
release = threading.Event()
holding = threading.Event()
ran = []

def hold():
    holding.set()
    assert release.wait(30)

@app.get("/hold")
def hold_route(*, background):
    background.add_task(hold)
    background.add_task(ran.append, "after hold")
    return {}

@app.get("/<name>")
def other(input, *, background):
    background.add_task(ran.append, input.path["name"])
    background.add_task(ran.append, input.path["name"] + " 2")
    return {}

assert in_thread(app, "/hold").wait(5)
assert holding.wait(5)                  # the one thread is busy
assert in_thread(app, "/queued").wait(5)   # fills the queue
"""


def test_a_close_blocked_on_a_full_queue_gives_up_after_the_bound_naming_its_tasks(tmp_path):
    result = run_script(
        "SETTINGS = {'background_submit_timeout': 0.3}\n"
        + HELD_APP
        + """
started = time.monotonic()
request(app, "/late")     # the queue is full: waits 0.3 s, then gives up
waited = time.monotonic() - started
assert 0.3 <= waited < 5, waited
stats = app.background.stats()
assert (stats["running"], stats["queued"]) == (1, 3), stats
release.set()
assert app.background.drain(10)
print(sorted(ran))
print(app.background.stats())
""",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "['after hold', 'queued', 'queued 2']"
    reason = (
        "was not queued: the queue stayed full for 0.3 s (background_queue_size=1,"
        " background_submit_timeout=0.3) (never started)"
    )
    assert error_lines(result) == [
        f"ERROR funapi_sync.background background task list.append of GET /late {reason}",
        f"ERROR funapi_sync.background background task list.append of GET /late {reason}",
    ]
    assert "'queued': 0, 'running': 0, 'completed': 4, 'failed': 0" in result.stdout


def test_a_heartbeat_is_sent_while_close_waits_for_room(tmp_path):
    result = run_script(
        "SETTINGS = {'background_submit_timeout': 30}\n"
        + HELD_APP
        + """
beats = []

def beat():
    beats.append(time.monotonic())
    if len(beats) == 3:
        release.set()   # the server saw the worker alive three times: let the tasks go

pool.set_heartbeat(beat, 0.02)
request(app, "/late")   # blocks until room frees, beating meanwhile
assert app.background.drain(10)
print(len(beats), sorted(ran))
""",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 1) == [
        "3",
        "['after hold', 'late', 'late 2', 'queued', 'queued 2']\n",
    ]
    assert error_lines(result) == []


def test_a_close_interrupted_while_waiting_names_its_tasks_and_reraises(tmp_path):
    # gunicorn's worker timeout raises SystemExit in the main thread, wherever it is: here,
    # inside a close() waiting for room.
    result = run_script(
        "SETTINGS = {'background_submit_timeout': 30}\n"
        + HELD_APP
        + """
def interrupt(signum, frame):
    raise SystemExit(1)

signal.signal(signal.SIGUSR1, interrupt)
threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1)).start()
try:
    request(app, "/late")
except SystemExit:
    print("interrupted")
release.set()
assert app.background.drain(10)
print(sorted(ran))
""",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "interrupted",
        "['after hold', 'queued', 'queued 2']",
    ]
    reason = "was not queued: close() was interrupted by SystemExit (never started)"
    assert (
        error_lines(result)
        == [
            f"ERROR funapi_sync.background background task list.append of GET /late {reason}",
        ]
        * 2
    )


def test_abort_names_every_queued_and_running_task_at_once_and_runs_no_more(tmp_path):
    result = run_script(
        "SETTINGS = {}\n"
        + HELD_APP
        + """
print("named", pool.abort("gunicorn aborted worker 1 (worker timeout; SIGKILL follows)"))
release.set()
assert app.background.drain(10)
request(app, "/after-abort")
print(sorted(ran))
print("again", pool.abort("twice"))
""",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["named 4", "[]", "again 0"]
    reason = "did not finish: gunicorn aborted worker 1 (worker timeout; SIGKILL follows)"
    assert error_lines(result) == [
        f"ERROR funapi_sync.background background task __main__.hold of GET /hold {reason}"
        " (still running)",
        f"ERROR funapi_sync.background background task list.append of GET /hold {reason}"
        " (never started)",
        f"ERROR funapi_sync.background background task list.append of GET /queued {reason}"
        " (never started)",
        f"ERROR funapi_sync.background background task list.append of GET /queued {reason}"
        " (never started)",
        "ERROR funapi_sync.background background task list.append of GET /after-abort was"
        " not run: the worker was aborted (never started)",
        "ERROR funapi_sync.background background task list.append of GET /after-abort was"
        " not run: the worker was aborted (never started)",
    ]


@pytest.mark.parametrize("exc", ["SystemExit", "KeyboardInterrupt"])
def test_a_task_raising_a_terminating_exception_ends_only_its_batch(tmp_path, exc):
    result = run_script(
        f"""
app = App(background_workers=1)
ran = []
cleaned = []

def leave():
    raise {exc}()

def resource():
    yield "r"
    cleaned.append("cleaned")

app.register("resource", resource)

@app.get("/leave", depends=["resource"])
def leave_route(*, resource, background):
    background.add_task(ran.append, "before")
    background.add_task(leave)
    background.add_task(ran.append, "skipped")
    return {{}}

@app.get("/next")
def next_route(*, background):
    background.add_task(ran.append, "next request")
    return {{}}

client = app.test_client()
client.get("/leave")
client.get("/next")   # the pool's one thread is still there
print(ran, cleaned, app.background.stats())
""",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "['before', 'next request'] ['cleaned'] {'queued': 0, 'running': 0, 'completed': 2,"
        " 'failed': 1,"
    )
    errors = error_lines(result)
    assert errors == [
        f"ERROR funapi_sync.background background task __main__.leave of GET /leave raised"
        f" {exc}; the request's remaining tasks are skipped",
        "ERROR funapi_sync.background background task list.append of GET /leave was skipped:"
        f" an earlier task raised {exc} (never started)",
    ]
    assert f"\n{exc}\n" in result.stderr  # the traceback is logged


# -- exit is bounded --------------------------------------------------------------------


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


# -- a private pool, in this process: the same code paths, measured in place -------------


@pytest.fixture
def private_pool():
    """Make TaskPools of their own (never the process's); shut each down afterwards."""
    made: list[TaskPool] = []
    gates: list[threading.Event] = []

    def make(**settings: float) -> tuple[TaskPool, threading.Event]:
        pool = TaskPool(PoolSettings(**{"workers": 1, "queue_size": 1, **settings}))
        gate = threading.Event()
        made.append(pool)
        gates.append(gate)
        return pool, gate

    yield make
    for gate in gates:
        gate.set()
    for pool in made:
        pool.shutdown(timeout=10)


def noop() -> None:
    """A task that does nothing."""


def batch_of(label: str, *fns: Callable[[], object], after=None) -> Batch:
    tasks = BackgroundTasks()
    for fn in fns:
        tasks.add_task(fn)
    return Batch(tasks.to_run(False), label, after)


def hold_the_thread(pool: TaskPool, gate: threading.Event) -> Batch:
    holding = threading.Event()

    def held() -> None:
        holding.set()
        assert gate.wait(30)

    batch = batch_of("GET /hold", held)
    pool.submit(batch)
    assert holding.wait(5)
    return batch


def pool_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "funapi_sync.background" and r.levelno == logging.ERROR
    ]


def test_private_pool_stats_count_a_blocked_batch_as_queued_and_the_bound_gives_up(
    private_pool, caplog
):
    caplog.set_level(logging.WARNING, logger="funapi_sync.background")
    pool, gate = private_pool(submit_timeout=0.05)
    ran: list[str] = []
    hold_the_thread(pool, gate)
    pool.submit(batch_of("GET /queued", functools.partial(ran.append, "queued")))
    assert pool.stats()["queued"] == 1
    late = batch_of("GET /late", functools.partial(ran.append, "late"))
    pool.submit(late)  # the queue is full: gives up after 0.05 s
    assert late.finished
    assert late.reported
    assert pool_errors(caplog) == [
        "background task partial(list.append) of GET /late was not queued: the queue stayed full"
        " for 0.05 s (background_queue_size=1, background_submit_timeout=0.05) (never started)"
    ]
    gate.set()
    assert pool.drain(5)
    assert ran == ["queued"]
    assert pool.stats() | {"workers": 0, "queue_size": 0} == {
        "queued": 0,
        "running": 0,
        "completed": 2,
        "failed": 0,
        "workers": 0,
        "queue_size": 0,
    }


def test_private_pool_heartbeat_that_raises_interrupts_the_wait_and_names_the_batch(
    private_pool, caplog
):
    caplog.set_level(logging.ERROR, logger="funapi_sync.background")
    pool, gate = private_pool(submit_timeout=30)
    hold_the_thread(pool, gate)
    pool.submit(batch_of("GET /queued", noop))
    beats: list[float] = []

    def beat() -> None:
        beats.append(time.monotonic())
        if len(beats) == 2:
            raise KeyboardInterrupt  # what a signal handler raising in the wait looks like

    set_heartbeat(beat, 0.01)
    try:
        with pytest.raises(KeyboardInterrupt):
            pool.submit(batch_of("GET /late", noop))
    finally:
        set_heartbeat(None)
    assert len(beats) == 2
    assert pool_errors(caplog) == [
        "background task test_pool.noop of GET /late was not queued: close() was"
        " interrupted by KeyboardInterrupt (never started)"
    ]
    gate.set()
    assert pool.drain(5)


def test_private_pool_abort_then_shutdown_names_each_task_once(private_pool, caplog):
    caplog.set_level(logging.ERROR, logger="funapi_sync.background")
    pool, gate = private_pool(queue_size=4)
    cleaned: list[str] = []
    hold_the_thread(pool, gate)
    pool.submit(batch_of("GET /a", noop, noop, after=lambda: cleaned.append("a")))
    assert pool.abort("the test aborted it") == 3
    assert pool.abort("again") == 0
    after_abort = batch_of("GET /b", noop, after=lambda: cleaned.append("b"))
    pool.submit(after_abort)
    assert after_abort.finished
    gate.set()
    assert pool.shutdown(timeout=5) is False  # no drain after an abort
    assert pool_errors(caplog) == [
        "background task test_pool.hold_the_thread.<locals>.held of GET /hold did not finish:"
        " the test aborted it (still running)",
        "background task test_pool.noop of GET /a did not finish: the test aborted it"
        " (never started)",
        "background task test_pool.noop of GET /a did not finish: the test aborted it"
        " (never started)",
        "background task test_pool.noop of GET /b was not run: the worker was aborted"
        " (never started)",
    ]
    assert cleaned[-1] == "b"  # dependency cleanup still runs for a batch not run


def test_private_pool_shutdown_timeout_names_running_and_queued_then_runs_late_ones_inline(
    private_pool, caplog
):
    caplog.set_level(logging.WARNING, logger="funapi_sync.background")
    pool, gate = private_pool(queue_size=4)
    hold_the_thread(pool, gate)
    pool.submit(batch_of("GET /queued", noop))
    assert pool.still_running() == 1
    assert pool.shutdown(timeout=0.05) is False
    assert pool_errors(caplog) == [
        "background task test_pool.hold_the_thread.<locals>.held of GET /hold did not finish"
        " within the 0.1 s shutdown timeout (still running)",
        "background task test_pool.noop of GET /queued did not finish within the 0.1 s"
        " shutdown timeout (never started)",
    ]
    gate.set()
    ran: list[str] = []
    late = batch_of("GET /late", functools.partial(ran.append, "inline"))
    pool.submit(late)  # after shutdown: run here, with a WARNING
    assert ran == ["inline"]
    assert late.finished
    assert "the background pool is shut down; running GET /late's tasks inline" in caplog.text


@pytest.mark.parametrize("held", [False, True], ids=["finishes", "held past the timeout"])
def test_private_pool_a_batch_submitted_while_shutdown_drains_is_waited_for_or_named(
    private_pool, caplog, held
):
    caplog.set_level(logging.ERROR, logger="funapi_sync.background")
    pool, gate = private_pool(queue_size=4)
    late_gate = threading.Event()
    if not held:
        late_gate.set()
    ran: list[str] = []

    def late() -> None:
        assert late_gate.wait(30)  # held until shutdown() has returned
        ran.append("late")

    def first() -> None:
        assert gate.wait(30)
        pool.submit(batch_of("GET /late", late))  # accepted after the drain's target

    pool.submit(batch_of("GET /first", first))
    results: list[bool] = []
    stopping = threading.Thread(target=lambda: results.append(pool.shutdown(timeout=2)))
    stopping.start()
    for _ in range(500):  # bounded: until shutdown() waits in its drain
        with pool._lock:
            if pool._waiters:
                break
        time.sleep(0.01)
    else:
        raise AssertionError("shutdown() never started draining")
    gate.set()
    stopping.join(30)
    if not held:  # waited for: it ran before shutdown() returned, and nothing is named
        assert (results, ran, pool_errors(caplog)) == ([True], ["late"], [])
        return
    assert results == [False]
    assert ran == []  # so it must have been named
    [error] = [e for e in pool_errors(caplog) if "GET /late" in e]
    assert re.fullmatch(
        r"background task \S+<locals>\.late of GET /late did not finish within the 2\.0 s"
        r" shutdown timeout \((still running|never started)\)",
        error,
    ), error
    late_gate.set()


def test_private_pool_a_failing_cleanup_is_logged_and_the_thread_serves_on(private_pool, caplog):
    caplog.set_level(logging.ERROR, logger="funapi_sync.background")
    pool, _ = private_pool()

    def broken_cleanup() -> None:
        raise SystemExit("cleanup tried to leave")

    pool.submit(batch_of("GET /a", noop, after=broken_cleanup))
    ran: list[str] = []
    second = batch_of("GET /b", functools.partial(ran.append, "b"))
    pool.submit(second)
    assert pool.wait(second, timeout=5)
    assert ran == ["b"]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "cleanup after the tasks of GET /a failed"
    assert isinstance(record.exc_info[1], SystemExit)


def test_private_pool_an_idle_thread_keeps_nothing_of_its_last_batch(private_pool):
    pool, _ = private_pool()

    class Payload:
        """A task argument, such as a request, that must not outlive its batch."""

    freed = threading.Event()
    payload = Payload()
    weakref.finalize(payload, freed.set)
    batch = batch_of("GET /a", functools.partial(noop_with, payload))
    del payload
    pool.submit(batch)
    assert pool.wait(batch, timeout=5)
    del batch
    # The thread is idle now, blocked for its next batch: it must hold no reference.
    assert freed.wait(5), "an idle pool thread kept its last batch alive"


def noop_with(_argument: object) -> None:
    """A task that takes an argument and does nothing with it."""


def test_private_pool_heartbeat_runs_without_the_pool_lock(private_pool):
    # A heartbeat that reads the pool (a server's health probe) must not deadlock on
    # the lock the waiting close() holds between its waits.
    pool, gate = private_pool(submit_timeout=30)
    hold_the_thread(pool, gate)
    pool.submit(batch_of("GET /queued", noop))
    seen: list[dict[str, int]] = []
    blocked: list[bool] = []

    def beat() -> None:
        # stats() takes the pool's lock: read it from another thread, bounded, so a
        # heartbeat called with the lock held fails this test instead of hanging it.
        probe = threading.Thread(target=lambda: seen.append(pool.stats()), daemon=True)
        probe.start()
        probe.join(2)
        blocked.append(probe.is_alive())
        gate.set()  # let the held thread go: room frees, the wait ends

    set_heartbeat(beat, 0.01)
    late = batch_of("GET /late", noop)
    done = threading.Event()
    submitter = threading.Thread(target=lambda: (pool.submit(late), done.set()), daemon=True)
    try:
        submitter.start()
        assert done.wait(10), "close() deadlocked in its heartbeat"
    finally:
        set_heartbeat(None)
    assert pool.drain(5)
    assert blocked
    assert not any(blocked), "the heartbeat ran with the pool's lock held"
    assert (seen[0]["queued"], seen[0]["running"]) == (2, 1)  # /queued and /late wait


def _can_batch_schedule() -> bool:
    # A thread of our own tries the call, so this process's threads are left as they are.
    if not hasattr(os, "SCHED_BATCH"):
        return False
    works: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
            works.append(True)
        except OSError:
            works.append(False)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join(5)
    return works == [True] and os.sched_getscheduler(0) == os.SCHED_OTHER


needs_sched_batch = pytest.mark.skipif(
    not _can_batch_schedule(),
    reason="SCHED_BATCH is Linux's, and the default policy must be the caller's",
)


@needs_sched_batch
def test_private_pool_threads_run_under_sched_batch_and_the_caller_keeps_its_policy(
    private_pool,
):
    # The pool thread gives up wake-up preemption (it would preempt the request thread
    # that holds the GIL); the thread that submits keeps its policy.
    before = os.sched_getscheduler(0)
    pool, _gate = private_pool()
    seen: list[int] = []
    batch = batch_of("GET /policy", lambda: seen.append(os.sched_getscheduler(0)))
    pool.submit(batch)
    assert pool.wait(batch, timeout=5)
    assert seen == [os.SCHED_BATCH]
    assert os.sched_getscheduler(0) == before


@needs_sched_batch
def test_a_thread_that_inherited_sched_batch_takes_the_main_threads_policy_back():
    # What the fan-out executor's threads run first: one started by a pool thread would
    # otherwise serve requests' spawns under SCHED_BATCH.
    from funapi_sync._scheduling import as_main_thread, yield_on_wakeup

    seen: list[int] = []

    def started_by_a_pool_thread() -> None:
        yield_on_wakeup()
        seen.append(os.sched_getscheduler(0))
        as_main_thread()
        seen.append(os.sched_getscheduler(0))

    thread = threading.Thread(target=started_by_a_pool_thread)
    thread.start()
    thread.join(5)
    assert seen == [os.SCHED_BATCH, os.sched_getscheduler(os.getpid())]


def test_an_after_close_sets_every_field_a_batch_has():
    # AfterClose sets Batch's fields itself (no super().__init__ on the request path):
    # a field added to Batch must be set there too.
    from funapi_sync import App
    from funapi_sync.after_close import AfterClose

    app = App()

    @app.post("/signup")
    def signup(*, background):
        background.add_task(noop)
        return {}

    endpoint, _ = app.routes.match("/signup", "POST")
    after_close = AfterClose({}, endpoint.runtime, None, None, None, None, False)
    for name in Batch.__slots__:
        getattr(after_close, name)  # AttributeError if one was left unset


# -- an app's own pool ------------------------------------------------------------------


def test_an_app_given_its_own_pool_runs_its_tasks_there_sized_by_its_own_settings():
    from funapi_sync import pool as pool_module
    from funapi_sync.backends import ThreadBackend

    shared_app = App()
    own_app = App(background_workers=1, background_backend=ThreadBackend(own_pool=True))
    threads: list[str] = []

    for app in (shared_app, own_app):

        @app.get("/")
        def index(*, background):
            background.add_task(lambda: threads.append(threading.current_thread().name))
            return {}

    assert own_app.background.stats()["completed"] == 0  # nothing made before first use
    shared_app.test_client().get("/")
    own_app.test_client().get("/")  # the test client waits on whichever pool holds the batch
    own = own_app.background.pool()
    shared = shared_app.background.pool()
    assert own is not shared
    assert own.settings.workers == 1
    assert own_app.background.stats()["completed"] == 1
    assert len(threads) == 2
    # The process's pools are what its end drains and gunicorn's abort names.
    pools = pool_module.current_pool()
    assert pools is not None
    assert pools.pools()[0] is shared
    assert own in pools.pools()


def test_the_process_end_and_abort_reach_an_apps_own_pool(caplog, monkeypatch):
    from funapi_sync import pool as pool_module
    from funapi_sync.backends import ThreadBackend

    app = App(background_workers=1, background_backend=ThreadBackend(own_pool=True))
    gate = threading.Event()
    own = app.background.pool()
    # The process's shared pool serves the other tests: an abort must not reach it.
    monkeypatch.setattr(pool_module, "_pool", None)
    try:
        batch = hold_the_thread(own, gate)
        pools = pool_module.current_pool()
        assert pools is not None
        assert pools.still_running() >= 1
        assert pools.drain(timeout=0.05) is False  # its held task counts for the process
        assert pool_module.abort("the test aborted it") >= 1
        assert pool_errors(caplog) == [
            "background task test_pool.hold_the_thread.<locals>.held of GET /hold did not"
            " finish: the test aborted it (still running)"
        ]
    finally:
        gate.set()
        assert own.wait(batch, timeout=10)


def test_the_process_end_shuts_an_apps_own_pool_down_within_the_timeout(caplog, monkeypatch):
    from funapi_sync import pool as pool_module
    from funapi_sync.backends import ThreadBackend

    app = App(background_workers=1, background_backend=ThreadBackend(own_pool=True))
    gate = threading.Event()
    own = app.background.pool()
    # The process's shared pool serves the other tests: out of sight while this one ends.
    monkeypatch.setattr(pool_module, "_pool", None)
    hold_the_thread(own, gate)
    own.submit(batch_of("GET /queued", noop))
    pools = pool_module.current_pool()
    assert pools is not None
    try:
        # What lifecycle.shutdown_process calls: the own pool is shut down with the rest.
        assert pools.shutdown(timeout=0.1) is False
        assert pools.still_running() == 1
    finally:
        gate.set()
    assert own.drain(timeout=10)
    assert pool_errors(caplog) == [
        "background task test_pool.hold_the_thread.<locals>.held of GET /hold did not finish"
        " within the 0.1 s shutdown timeout (still running)",
        "background task test_pool.noop of GET /queued did not finish within the 0.1 s"
        " shutdown timeout (never started)",
    ]
