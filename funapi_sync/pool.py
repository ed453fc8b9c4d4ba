"""The pool: one per-process ThreadPoolExecutor whose threads run request batches."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _process

if TYPE_CHECKING:
    from .background import BackgroundTask

logger = logging.getLogger("funapi_sync.background")

#: The states a task not yet finished can be in, as named in ERROR lines.
RUNNING, NOT_STARTED = "still running", "never started"


class PoolSettings(NamedTuple):
    """An app's background settings; the pool is sized by the first app that uses it.

    ``workers``, ``queue_size`` and ``shutdown_timeout`` are the pool's (process-wide);
    ``slow_warning`` and ``submit_timeout`` stay the app's own: each batch carries them.
    """

    workers: int = 4
    queue_size: int = 1024
    slow_warning: float = 30.0
    shutdown_timeout: float = 25.0
    submit_timeout: float = 10.0


#: The pool-wide fields of :class:`PoolSettings`, with the App setting that sets each.
POOL_WIDE = {
    "workers": "background_workers",
    "queue_size": "background_queue_size",
    "shutdown_timeout": "background_shutdown_timeout",
}


class Batch:
    """One request's tasks, run in order on one pool thread, then its ``after`` callback.

    :param slow_warning: seconds after which a task of this batch is logged as slow
        (its app's ``background_slow_warning``).
    """

    __slots__ = (
        "after",
        "cancelled",
        "current",
        "done",
        "failed",
        "finished",
        "label",
        "reported",
        "slow_warning",
        "tasks",
    )

    def __init__(
        self,
        tasks: list[BackgroundTask],
        label: str,
        after: Callable[[], Any] | None,
        *,
        slow_warning: float = 30.0,
    ) -> None:
        self.tasks = tasks
        self.label = label
        self.after = after
        self.slow_warning = slow_warning
        #: Index of the task running now, or -1 between tasks.
        self.current = -1
        #: How many tasks have finished (returned or raised).
        self.done = 0
        self.failed = 0
        #: Set once its unfinished tasks were named at ERROR: run none of them any more.
        self.cancelled = False
        self.reported = False
        self.finished = False

    def unfinished(self) -> list[tuple[str, str]]:
        """``(task name, state)`` of each task that has not finished."""
        current = self.current
        return [
            (self.tasks[index].name, RUNNING if index == current else NOT_STARTED)
            for index in range(self.done, len(self.tasks))
        ]


def report(batch: Batch, what: str) -> int:
    """Name each unfinished task of ``batch`` at ERROR (once); return how many."""
    if batch.reported:
        return 0
    batch.reported = True
    batch.cancelled = True
    lines = batch.unfinished()
    for name, state in lines:
        logger.error("background task %s of %s %s (%s)", name, batch.label, what, state)
    return len(lines)


def report_never_closed(tasks: list[BackgroundTask], label: str) -> None:
    """Name each of ``tasks`` of request ``label`` at ERROR: its response was never closed."""
    for task in tasks:
        logger.error(
            "background task %s of %s never ran: the response was garbage-collected without"
            " close() (a middleware that does not forward close(), or a client that never"
            " closed the response) (%s)",
            task.name,
            label,
            NOT_STARTED,
        )


class Heartbeat(NamedTuple):
    """How a blocked ``close()`` tells its server it is alive (gunicorn's ``worker.notify``)."""

    notify: Callable[[], Any]
    interval: float


class TaskPool:
    """The process's background executor: long-lived consumers on a ``SimpleQueue``.

    PERF: the executor's threads each run one :meth:`_consume` loop for the pool's
    lifetime, blocked in ``SimpleQueue.get()`` (C code, no timeout, so an idle pool takes
    no GIL turns). ``submit`` takes a slot of a ``BoundedSemaphore``, notes the batch in a
    dict and puts it on the queue: no ``Future``, no work item, no thread start per
    request, and an idle consumer wakes at once.

    NOTE: the semaphore bounds the batches waiting for a thread to ``queue_size``; a full
    queue blocks the submitting ``close()`` (back-pressure on that server thread; the
    client already has its response), heart-beating to the server while it waits, and
    gives up after the app's ``submit_timeout`` with the batch's tasks named at ERROR.
    Nothing accepted is dropped without a line: see :meth:`abort` and :meth:`shutdown`.
    """

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        #: Settings already compared with the pool's, by id (kept alive so ids stay unique).
        self.checked: dict[int, PoolSettings] = {id(settings): settings}
        self._queue: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self._slots = threading.BoundedSemaphore(settings.queue_size)
        # NOTE: abort() runs in a signal handler, on a thread that may hold this lock:
        # it takes no lock; everything else does.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # Insertion-ordered sets: accepted but not yet taken by a thread, and running.
        self._pending: dict[Batch, None] = {}
        self._running: dict[Batch, None] = {}
        self._waiters = 0
        self._submitted = self._finished = 0
        self._tasks_submitted = self._completed = self._failed = self._skipped = 0
        self._closed = False
        self._aborted = False
        self._executor = ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="funapi_sync-background"
        )
        try:
            for _ in range(settings.workers):
                self._executor.submit(self._consume)
        except RuntimeError:
            # NOTE: the interpreter is exiting and refuses new threads: run batches inline.
            self._closed = True

    # -- the request side -------------------------------------------------------------

    def submit(self, batch: Batch, timeout: float | None = None) -> None:
        """Queue ``batch``; while the queue is full, wait up to ``timeout`` seconds.

        A batch that cannot be queued is never dropped silently: after ``timeout`` (or
        when the wait is interrupted, e.g. by gunicorn's ``SystemExit`` on a worker
        timeout) each of its tasks is named at ERROR.
        """
        if self._aborted:
            self._run_unqueued(batch)
            return
        if self._slots.acquire(blocking=False):
            with self._lock:
                # NOTE: put under the lock that shutdown() holds while it closes and
                # queues its sentinels, so no batch can land behind them.
                if not self._closed:
                    self._pending[batch] = None
                    self._submitted += 1
                    self._tasks_submitted += len(batch.tasks)
                    self._queue.put(batch)
                    return
            self._slots.release()
            self._run_unqueued(batch)
            return
        self._submit_when_free(batch, self.settings.submit_timeout if timeout is None else timeout)

    def _submit_when_free(self, batch: Batch, timeout: float) -> None:
        with self._lock:
            # Noted first: drain() waits for it, and abort() names it while it waits.
            self._pending[batch] = None
            self._submitted += 1
            self._tasks_submitted += len(batch.tasks)
        if not self._wait_for_slot(batch, timeout):
            return
        with self._lock:
            if not self._closed:
                self._queue.put(batch)
                return
        self._slots.release()
        report(batch, "was not queued: the pool shut down while close() waited")
        self._finish_unqueued(batch)

    def _wait_for_slot(self, batch: Batch, timeout: float) -> bool:
        heartbeat = _heartbeat
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    report(
                        batch,
                        f"was not queued: the queue stayed full for {timeout:g} s"
                        f" (background_queue_size={self.settings.queue_size},"
                        f" background_submit_timeout={timeout})",
                    )
                    self._finish_unqueued(batch)
                    return False
                # NOTE: timed waits only while close() is blocked on a full queue, so a
                # sync worker keeps heart-beating to the gunicorn arbiter.
                step = remaining if heartbeat is None else min(remaining, heartbeat.interval)
                if self._slots.acquire(timeout=step):
                    return True
                if heartbeat is not None:
                    heartbeat.notify()
        except BaseException as exc:
            report(batch, f"was not queued: close() was interrupted by {type(exc).__name__}")
            self._finish_unqueued(batch)
            raise

    def _finish_unqueued(self, batch: Batch) -> None:
        with self._lock:
            self._pending.pop(batch, None)
            self._skipped += len(batch.tasks) - batch.done
            self._end(batch)

    def _run_unqueued(self, batch: Batch) -> None:
        # NOTE: a response closed after shutdown (interpreter exit) or after an abort.
        if self._aborted:
            report(batch, "was not run: the worker was aborted")
            try:
                if batch.after is not None:
                    batch.after()
            finally:
                batch.finished = True
            return
        logger.warning("the background pool is shut down; running %s's tasks inline", batch.label)
        self._run(batch)
        batch.finished = True

    # -- the pool threads -------------------------------------------------------------

    def _consume(self) -> None:
        get = self._queue.get
        while True:
            batch = get()
            if batch is None:
                return
            self._slots.release()
            with self._lock:
                self._pending.pop(batch, None)
                self._running[batch] = None
            try:
                self._run(batch)
            finally:
                with self._lock:
                    del self._running[batch]
                    self._completed += batch.done - batch.failed
                    self._failed += batch.failed
                    self._skipped += len(batch.tasks) - batch.done
                    self._end(batch)

    def _end(self, batch: Batch) -> None:
        # Called with the lock held.
        self._finished += 1
        batch.finished = True
        if self._waiters:
            self._changed.notify_all()

    def _run(self, batch: Batch) -> None:
        slow = batch.slow_warning
        for index, task in enumerate(batch.tasks):
            if batch.cancelled:
                break
            batch.current = index
            started = time.monotonic()
            try:
                task.run()
            except Exception:
                batch.failed += 1
                logger.warning(
                    "background task %s of %s failed", task.name, batch.label, exc_info=True
                )
            except (KeyboardInterrupt, SystemExit) as exc:
                # NOTE: a task that tries to end the process only ends its request's
                # batch: a pool thread is shared, and these never come from a signal
                # here (Python delivers signals to the main thread only).
                batch.failed += 1
                batch.current = -1
                batch.done = index + 1
                logger.error(
                    "background task %s of %s raised %s; the request's remaining tasks are skipped",
                    task.name,
                    batch.label,
                    type(exc).__name__,
                    exc_info=True,
                )
                report(batch, f"was skipped: an earlier task raised {type(exc).__name__}")
                break
            except BaseException:
                batch.failed += 1
                logger.warning(
                    "background task %s of %s failed", task.name, batch.label, exc_info=True
                )
            batch.done = index + 1
            batch.current = -1
            elapsed = time.monotonic() - started
            if elapsed > slow:
                logger.warning(
                    "background task %s of %s was slow: %.1f s (background_slow_warning=%s)",
                    task.name,
                    batch.label,
                    elapsed,
                    slow,
                )
        if batch.after is not None:
            try:
                batch.after()
            except BaseException:
                logger.exception("cleanup after the tasks of %s failed", batch.label)

    # -- introspection ----------------------------------------------------------------

    def wait(self, batch: Batch, timeout: float | None = None) -> bool:
        """Wait until ``batch`` has finished; False on timeout."""
        with self._changed:
            self._waiters += 1
            try:
                return self._changed.wait_for(lambda: batch.finished, timeout)
            finally:
                self._waiters -= 1

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every batch submitted so far has finished; False on timeout."""
        with self._changed:
            target = self._submitted
            self._waiters += 1
            try:
                return self._changed.wait_for(lambda: self._finished >= target, timeout)
            finally:
                self._waiters -= 1

    def stats(self) -> dict[str, int]:
        """Task counts: ``queued``, ``running``, ``completed``, ``failed`` (and settings)."""
        with self._lock:
            running = tuple(self._running)
            completed = self._completed + sum(b.done - b.failed for b in running)
            failed = self._failed + sum(b.failed for b in running)
            busy = sum(1 for b in running if b.current >= 0)
            queued = self._tasks_submitted - completed - failed - self._skipped - busy
        return {
            "queued": max(0, queued),
            "running": busy,
            "completed": completed,
            "failed": failed,
            "workers": self.settings.workers,
            "queue_size": self.settings.queue_size,
        }

    def unfinished(self) -> list[Batch]:
        """The batches accepted and not finished: running first, then waiting."""
        # PERF: tuple(dict) copies the keys without releasing the GIL: safe without the
        # lock, which abort() must not take.
        return [*tuple(self._running), *tuple(self._pending)]

    def still_running(self) -> int:
        """How many tasks are running now (a hung task keeps its thread)."""
        return sum(1 for batch in tuple(self._running) if batch.current >= 0)

    # -- the end ----------------------------------------------------------------------

    def abort(self, reason: str) -> int:
        """Name every queued and running task at ERROR at once; run no queued task after.

        For a process about to be killed (gunicorn's ``worker_abort``: the arbiter sends
        SIGKILL a second later). Safe in a signal handler: it takes no lock.
        """
        self._aborted = True
        return sum(report(batch, f"did not finish: {reason}") for batch in self.unfinished())

    def shutdown(self, timeout: float | None = None) -> bool:
        """Drain for up to ``timeout`` seconds, then name every task that did not finish.

        Tasks not yet started are skipped (each named at ERROR); a task still running is
        named too, since a thread cannot be stopped from outside. After an :meth:`abort`
        there is no drain: everything left was named already.
        """
        if timeout is None:
            timeout = self.settings.shutdown_timeout
        drained = not self._aborted and self.drain(timeout)
        with self._lock:
            self._closed = True
            for _ in range(self.settings.workers):
                self._queue.put(None)  # one sentinel per thread: the idle ones leave
        if not drained:
            what = f"did not finish within the {timeout:.1f} s shutdown timeout"
            for batch in self.unfinished():
                report(batch, what)
        self._executor.shutdown(wait=False)
        return drained


# -- the process's pool ---------------------------------------------------------------

_pool: TaskPool | None = None
_pool_lock = threading.Lock()
_heartbeat: Heartbeat | None = None


def get_pool(settings: PoolSettings) -> TaskPool:
    """The process's pool, created on first use with ``settings``.

    An app whose settings differ from the pool's gets a WARNING the first time it
    uses the pool (or when it is created, if the pool exists then).
    """
    pool = _pool
    if pool is not None and id(settings) in pool.checked:
        return pool
    return _create(settings)


def _create(settings: PoolSettings) -> TaskPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = TaskPool(settings)
        else:
            _compare(_pool, settings)
        return _pool


def _compare(pool: TaskPool, settings: PoolSettings) -> None:
    if id(settings) in pool.checked:
        return
    pool.checked[id(settings)] = settings
    for field, name in POOL_WIDE.items():
        ours, theirs = getattr(pool.settings, field), getattr(settings, field)
        if ours != theirs:
            logger.warning(
                "the background pool of this process already exists with %s=%s; an app's"
                " %s=%s is ignored (one pool per process, sized by the first app that uses"
                " it; give every app the same value)",
                name,
                ours,
                name,
                theirs,
            )


def current_pool() -> TaskPool | None:
    """The process's pool if one was created in this process, else None."""
    return _pool


def check_settings(settings: PoolSettings) -> None:
    """Warn when an app asks for pool-wide settings other than the existing pool's."""
    pool = _pool
    if pool is not None:
        with _pool_lock:
            _compare(pool, settings)


def set_heartbeat(notify: Callable[[], Any] | None, interval: float = 1.0) -> None:
    """Have a ``close()`` blocked on a full queue call ``notify()`` every ``interval`` s."""
    global _heartbeat
    _heartbeat = None if notify is None else Heartbeat(notify, interval)


def abort(reason: str) -> int:
    """Name every unfinished task of this process's pool at ERROR (see :meth:`TaskPool.abort`)."""
    pool = _pool
    return 0 if pool is None else pool.abort(reason)


def _forget_in_child() -> None:
    # NOTE: a ThreadPoolExecutor that ran anything before fork() is dead in the child:
    # its threads did not survive, but its idle semaphore says one is free, so it never
    # starts a new one and the future never completes (CPython 3.8+). Drop it; the child
    # makes its own on first use. The parent's server (heartbeat) is not the child's.
    global _pool, _pool_lock, _heartbeat
    _pool = None
    _pool_lock = threading.Lock()
    _heartbeat = None


_process.at_fork_in_child(_forget_in_child)


class PoolView:
    """``app.background``: the process pool as seen by one app (stats and drain)."""

    __slots__ = ("settings",)

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings

    def stats(self) -> dict[str, int]:
        """Counts of tasks ``queued``, ``running``, ``completed`` and ``failed``."""
        pool = _pool
        if pool is None:
            return {
                "queued": 0,
                "running": 0,
                "completed": 0,
                "failed": 0,
                "workers": self.settings.workers,
                "queue_size": self.settings.queue_size,
            }
        return pool.stats()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every task submitted so far has finished; False on timeout."""
        pool = _pool
        return True if pool is None else pool.drain(timeout)
