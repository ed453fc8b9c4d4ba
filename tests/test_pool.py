"""The pool across fork(): the trap gunicorn --preload sets, and how the pool avoids it.

On CPython 3.8+ a ThreadPoolExecutor that ran anything before ``fork()`` is dead in the
child: its worker thread did not survive the fork, but its idle semaphore still counts
that thread as free, so ``submit()`` never starts a new one and the future never
completes. gunicorn ``--preload`` forks workers from a master that may have used the
pool at import time, so funapi_sync's pool must be replaced in the child.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import pytest
from werkzeug.test import EnvironBuilder

from funapi_sync import App

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")


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
