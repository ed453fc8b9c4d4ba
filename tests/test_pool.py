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
import signal
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest
from werkzeug.test import EnvironBuilder

from funapi_sync import App, BackgroundTasks
from funapi_sync.backends import ThreadBackend
from funapi_sync.pool import Batch, PoolSettings, TaskPool, set_heartbeat

ROOT = Path(__file__).resolve().parents[1]


def test_process_wide_state_has_one_at_fork_reset():
    # STYLE: the pool, the fan-out executor and the lifecycle reset in one place.
    package = ROOT / "funapi_sync"
    calls = {
        str(path.relative_to(package)): path.read_text().count("os.register_at_fork(")
        for path in package.rglob("*.py")
    }
    assert {name: count for name, count in calls.items() if count} == {"_process.py": 1}


# -- in a process of its own: each of these ends or breaks its pool ----------------------


# -- an app on a pool of its own: each of these ends or breaks its pool -----------------


def request(app: App, path: str, returned: threading.Event | None = None) -> None:
    """Drive ``app`` as a server does: read the body, then close()."""
    environ = EnvironBuilder(path=path).get_environ()
    iterable = app(environ, lambda status, headers, exc_info=None: None)
    b"".join(iterable)
    try:
        iterable.close()
    finally:
        if returned is not None:
            returned.set()


def in_thread(app: App, path: str) -> threading.Event:
    returned = threading.Event()
    threading.Thread(target=request, args=(app, path, returned), daemon=True).start()
    return returned


class HeldApp:
    """An app on a pool of its own with one thread and room for one batch, both taken.

    The bound counts tasks: each batch here has two, so one thread plus three queued
    tasks hold the running batch and one queued batch.
    """

    def __init__(self, **settings: float) -> None:
        self.app = app = App(
            background_workers=1,
            background_queue_size=3,
            background_backend=ThreadBackend(own_pool=True),
            **settings,
        )
        self.release = threading.Event()
        holding = threading.Event()
        self.ran: list[str] = []

        def hold():
            holding.set()
            assert self.release.wait(30)

        @app.get("/hold")
        def hold_route(*, background):
            background.add_task(hold)
            background.add_task(self.ran.append, "after hold")
            return {}

        @app.get("/<name>")
        def other(input, *, background):
            background.add_task(self.ran.append, input.path["name"])
            background.add_task(self.ran.append, input.path["name"] + " 2")
            return {}

        assert in_thread(app, "/hold").wait(5)
        assert holding.wait(5)  # the one thread is busy
        assert in_thread(app, "/queued").wait(5)  # fills the queue


@pytest.fixture
def held_app():
    made: list[HeldApp] = []

    def make(**settings: float) -> HeldApp:
        made.append(HeldApp(**settings))
        return made[-1]

    yield make
    for held in made:
        held.release.set()


def test_a_close_blocked_on_a_full_queue_gives_up_after_the_bound_naming_its_tasks(
    held_app, caplog
):
    held = held_app(background_submit_timeout=0.3)
    started = time.monotonic()
    request(held.app, "/late")  # the queue is full: waits 0.3 s, then gives up
    waited = time.monotonic() - started
    assert 0.3 <= waited < 5, waited
    stats = held.app.background.stats()
    assert (stats["running"], stats["queued"]) == (1, 3), stats
    held.release.set()
    assert held.app.background.drain(10)
    assert sorted(held.ran) == ["after hold", "queued", "queued 2"]
    reason = (
        "was not queued: the queue stayed full for 0.3 s (background_queue_size=3,"
        " background_submit_timeout=0.3) (never started)"
    )
    assert pool_errors(caplog) == [f"background task list.append of GET /late {reason}"] * 2
    stats = held.app.background.stats()
    assert (stats["queued"], stats["running"], stats["completed"], stats["failed"]) == (0, 0, 4, 0)


def test_a_heartbeat_is_sent_while_close_waits_for_room(held_app, caplog):
    held = held_app(background_submit_timeout=30)
    beats: list[float] = []

    def beat():
        beats.append(time.monotonic())
        if len(beats) == 3:
            held.release.set()  # the server saw the worker alive three times: let tasks go

    set_heartbeat(beat, 0.02)
    try:
        request(held.app, "/late")  # blocks until room frees, beating meanwhile
    finally:
        set_heartbeat(None)
    assert held.app.background.drain(10)
    assert len(beats) == 3
    assert sorted(held.ran) == ["after hold", "late", "late 2", "queued", "queued 2"]
    assert pool_errors(caplog) == []


def test_a_close_interrupted_while_waiting_names_its_tasks_and_reraises(held_app, caplog):
    # gunicorn's worker timeout raises SystemExit in the main thread, wherever it is: here,
    # inside a close() waiting for room.
    held = held_app(background_submit_timeout=30)

    def interrupt(signum, frame):
        raise SystemExit(1)

    previous = signal.signal(signal.SIGUSR1, interrupt)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1))
    try:
        timer.start()
        with pytest.raises(SystemExit):
            request(held.app, "/late")
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)
    held.release.set()
    assert held.app.background.drain(10)
    assert sorted(held.ran) == ["after hold", "queued", "queued 2"]
    reason = "was not queued: close() was interrupted by SystemExit (never started)"
    assert pool_errors(caplog) == [f"background task list.append of GET /late {reason}"] * 2


def test_abort_names_every_queued_and_running_task_at_once_and_runs_no_more(held_app, caplog):
    held = held_app()
    own = held.app.background.pool()
    # What gunicorn's worker_abort calls (pool.abort), on this app's pool alone: the
    # process's shared pool serves the other tests.
    reason = "gunicorn aborted worker 1 (worker timeout; SIGKILL follows)"
    assert own.abort(reason) == 4
    held.release.set()
    assert held.app.background.drain(10)
    request(held.app, "/after-abort")
    assert held.ran == []
    assert own.abort("twice") == 0
    what = f"did not finish: {reason}"
    assert pool_errors(caplog) == [
        f"background task test_pool.HeldApp.__init__.<locals>.hold of GET /hold {what}"
        " (still running)",
        f"background task list.append of GET /hold {what} (never started)",
        f"background task list.append of GET /queued {what} (never started)",
        f"background task list.append of GET /queued {what} (never started)",
        "background task list.append of GET /after-abort was not run: the worker was aborted"
        " (never started)",
        "background task list.append of GET /after-abort was not run: the worker was aborted"
        " (never started)",
    ]


@pytest.mark.parametrize("exc", [SystemExit, KeyboardInterrupt])
def test_a_task_raising_a_terminating_exception_ends_only_its_batch(exc, caplog):
    app = App(background_workers=1, background_backend=ThreadBackend(own_pool=True))
    ran: list[str] = []
    cleaned: list[str] = []

    def leave():
        raise exc()

    def resource():
        yield "r"
        cleaned.append("cleaned")

    app.register("resource", resource)

    @app.get("/leave", depends=["resource"])
    def leave_route(*, resource, background):
        background.add_task(ran.append, "before")
        background.add_task(leave)
        background.add_task(ran.append, "skipped")
        return {}

    @app.get("/next")
    def next_route(*, background):
        background.add_task(ran.append, "next request")
        return {}

    client = app.test_client()
    client.get("/leave")
    client.get("/next")  # the pool's one thread is still there
    assert (ran, cleaned) == (["before", "next request"], ["cleaned"])
    stats = app.background.stats()
    assert (stats["queued"], stats["running"], stats["completed"], stats["failed"]) == (0, 0, 2, 1)
    name = exc.__name__
    assert pool_errors(caplog) == [
        "background task test_pool.test_a_task_raising_a_terminating_exception_ends_only_its"
        f"_batch.<locals>.leave of GET /leave raised {name}; the request's remaining tasks are"
        " skipped",
        "background task list.append of GET /leave was skipped: an earlier task raised"
        f" {name} (never started)",
    ]
    # the traceback is logged
    assert any(r.exc_info and r.exc_info[0] is exc for r in caplog.records)


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


def test_the_queue_bound_counts_tasks_not_requests(private_pool, caplog):
    # 10 requests x 100 000 tasks took +315 MiB when the bound counted requests.
    caplog.set_level(logging.WARNING, logger="funapi_sync.background")
    pool, gate = private_pool(queue_size=4, submit_timeout=0.05)
    hold_the_thread(pool, gate)  # 1 task of the 5 the pool may hold
    ran: list[int] = []
    pool.submit(batch_of("GET /four", *[functools.partial(ran.append, n) for n in range(4)]))
    assert pool.stats()["queued"] == 4
    late = batch_of("GET /one-more", functools.partial(ran.append, 99))
    pool.submit(late)  # one task over the bound: it waits, then is named
    assert late.reported
    assert len(pool_errors(caplog)) == 1
    gate.set()
    assert pool.drain(5)
    assert ran == [0, 1, 2, 3]


def test_a_batch_larger_than_the_bound_is_accepted_alone_once_the_pool_is_empty(private_pool):
    pool, gate = private_pool(queue_size=2, submit_timeout=5)
    ran: list[int] = []
    hold_the_thread(pool, gate)
    big = batch_of("GET /big", *[functools.partial(ran.append, n) for n in range(10)])
    submitted = threading.Event()

    def submit() -> None:
        pool.submit(big)
        submitted.set()

    threading.Thread(target=submit, daemon=True).start()
    assert not submitted.wait(0.2), "a batch over the bound went in beside a running one"
    gate.set()
    assert submitted.wait(5), "a batch over the bound never went in on an empty pool"
    assert pool.drain(5)
    assert ran == list(range(10))
    # and on an idle pool at once, without waiting
    started = time.monotonic()
    pool.submit(batch_of("GET /big2", *[noop] * 10))
    assert time.monotonic() - started < 1
    assert pool.drain(5)


def test_when_every_thread_is_stuck_a_full_pool_names_new_tasks_at_once(private_pool, caplog):
    # A hung task used to hold every later close() for background_submit_timeout.
    caplog.set_level(logging.WARNING, logger="funapi_sync.background")
    pool, gate = private_pool(submit_timeout=30)
    holding = threading.Event()

    def stuck_in_a_read() -> None:
        holding.set()
        assert gate.wait(30)

    tasks = BackgroundTasks()
    tasks.add_task(stuck_in_a_read)
    # slow_warning=0: the running task counts as stuck at once, without a sleep here.
    pool.submit(Batch(tasks.to_run(False), "GET /hang", None, slow_warning=0.0))
    assert holding.wait(5)
    ran: list[str] = []
    pool.submit(batch_of("GET /queued", functools.partial(ran.append, "queued")))  # fits
    started = time.monotonic()
    late = [batch_of(f"GET /late{n}", noop) for n in range(3)]
    for batch in late:
        pool.submit(batch)
    assert time.monotonic() - started < 5  # not 3 x 30 s
    assert all(batch.finished and batch.reported for batch in late)
    assert pool_errors(caplog) == [
        f"background task test_pool.noop of GET /late{n} was not queued: the queue is full and"
        " every pool thread is stuck in a task (running longer than its"
        " background_slow_warning; named above) (never started)"
        for n in range(3)
    ]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(
        "background task test_pool.test_when_every_thread_is_stuck_a_full_pool_names_new_tasks"
        "_at_once.<locals>.stuck_in_a_read of GET /hang has held its pool thread for "
    )
    assert "in stuck_in_a_read\n    assert gate.wait(30)" in warning  # its stack, once
    gate.set()
    assert pool.drain(5)
    assert ran == ["queued"]


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
        # What _process.shutdown_process calls: the own pool is shut down with the rest.
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


def test_an_app_with_its_own_pool_is_not_warned_about_the_shared_pools_settings(caplog_funapi):
    from funapi_sync import pool as pool_module

    shared = pool_module.get_pool(PoolSettings())  # the process's shared pool exists
    other = shared.settings.workers + 1
    App(background_workers=other, background_backend=ThreadBackend(own_pool=True))
    assert "is ignored" not in caplog_funapi.text  # its own pool is sized by it
    App(background_workers=other)
    assert f"background_workers={other} is ignored" in caplog_funapi.text
